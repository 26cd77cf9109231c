"""The offline story corpus for the small language models, and the TinyStories loader.

Offline we generate children's stories from a seeded grammar instead of downloading TinyStories
(shared/reference/masked_mixer.md):

    stories(2, seed=0)[0][:120]
    -> 'Once upon a time, there was a shy cat named Tom. Tom lived near a big lake. One day, ...'

Every story is built from one of several plots (a lost object, a new friend, sharing, a trip,
a fear overcome) with random characters, places, objects and dialogue; about 300 distinct words.
It is generated in about a second, so nothing is downloaded. Tokenizers: lib/data/tokenizers.py;
the language-modelling task (split, stream, windows): lib/tasks/lm.py.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# The offline corpus
# ---------------------------------------------------------------------------------------------
GIRLS = ["Lily", "Mia", "Anna", "Lucy", "Sue", "Emma", "Zoe", "Ella", "Ruby", "Amy", "Sara", "Kim"]
BOYS = ["Tom", "Ben", "Sam", "Max", "Tim", "Jack", "Leo", "Finn", "Noah", "Jake", "Bob", "Dan"]
ANIMALS = ["cat", "dog", "bunny", "bird", "frog", "duck", "bear", "fox", "mouse", "puppy", "owl", "turtle", "pig", "lion"]
ADJS = ["little", "happy", "shy", "brave", "kind", "silly", "sleepy", "curious", "small", "friendly"]
PLACES = ["park", "garden", "forest", "beach", "farm", "lake", "hill", "town", "school", "river"]
PLACE_ADJS = ["big", "green", "quiet", "sunny", "pretty", "old"]
OBJECTS = ["ball", "kite", "hat", "book", "doll", "boat", "drum", "box", "shell", "cup", "car", "bell"]
COLORS = ["red", "blue", "green", "yellow", "pink", "purple", "orange", "white"]
HIDING = ["under a bush", "behind a tree", "in the grass", "under the bed", "next to a rock", "in a big box", "under a leaf"]
GAMES = ["tag", "hide and seek", "catch", "a race"]
SIGHTS = ["a tall tree", "a yellow flower", "a small fish", "a big rock", "a white cloud", "a red bird", "a long road", "a little boat"]
FEARS = [("the dark", "the night light"), ("the big waves", "the sand"), ("the loud thunder", "the warm blanket"), ("the tall slide", "the ladder")]
HELPERS = ["mom", "dad", "grandma", "grandpa"]
MORALS = ["It is good to help friends.", "Sharing makes everyone happy.", "Friends make every day better.",
          "Being brave is not so hard with a friend.", "It is fun to try new things."]


class _Story:
    """One story's cast and choices, drawn from `rng`; the plot methods write its sentences."""

    def __init__(self, rng: random.Random):
        self.r = rng
        girl = rng.random() < 0.5
        self.name = rng.choice(GIRLS if girl else BOYS)
        self.he, self.his, self.him = ("she", "her", "her") if girl else ("he", "his", "him")
        self.kind = rng.choice([rng.choice(ANIMALS), "girl" if girl else "boy"])
        self.adj = rng.choice(ADJS)
        friend_girl = rng.random() < 0.5
        self.friend = rng.choice([n for n in (GIRLS if friend_girl else BOYS) if n != self.name])
        self.fhe = "she" if friend_girl else "he"
        self.animal = rng.choice(ANIMALS)
        self.place = rng.choice(PLACES)
        self.obj = f"{rng.choice(COLORS)} {rng.choice(OBJECTS)}"
        self.helper = rng.choice(HELPERS)

    def opening(self) -> list[str]:
        a = "an" if self.adj[0] in "aeiou" else "a"
        return [f"Once upon a time, there was {a} {self.adj} {self.kind} named {self.name}.",
                f"{self.name} lived near a {self.r.choice(PLACE_ADJS)} {self.place}."]

    def lost(self) -> list[str]:
        n, o = self.name, self.obj
        s = [f"{n} had a {o}. {self.he.capitalize()} loved {self.his} {o} very much.",
             f"One day, {n} went to the {self.place} to play with {self.his} {o}.",
             f"When it was time to go home, {n} could not find the {o}. {self.he.capitalize()} was very sad.",
             f'"Where is my {o}?" {n} cried.',
             f"{self.friend} saw {n} and asked, \"Why are you sad?\"",
             f'"I lost my {o}," said {n}.', f'"I will help you look," said {self.friend}.']
        spots = self.r.sample(HIDING, 2)
        s += [f"They looked {spots[0]}, but the {o} was not there.",
              f"Then {self.friend} looked {spots[1]}. \"I found it!\" {self.fhe} said.",
              f"{n} was so happy. \"Thank you, {self.friend}!\" {self.he} said.",
              f"{n} and {self.friend} played with the {o} until the sun went down."]
        return s

    def new_friend(self) -> list[str]:
        n, a, g = self.name, self.animal, self.r.choice(GAMES)
        return [f"One day, {n} went to the {self.place}. There {self.he} saw a {self.r.choice(ADJS)} {a}.",
                f"The {a} was all alone. It looked sad.",
                f'{n} walked to the {a} and said, "Hello! Do you want to play with me?"',
                f'The {a} smiled and said, "Yes, I would like that!"',
                f"They played {g} all day. {n} laughed and the {a} laughed too.",
                f"When the sun went down, {n} said, \"Can we play again tomorrow?\"",
                f'"Yes," said the {a}. "You are my best friend now."',
                f"From that day on, {n} and the {a} played at the {self.place} every day."]

    def sharing(self) -> list[str]:
        n, f, o = self.name, self.friend, self.obj
        return [f"{n} got a new {o} from {self.his} {self.helper}. It was the best {o} in the {self.place}.",
                f"{f} came to play. \"Can I play with your {o}?\" {self.fhe} asked.",
                f'"No, it is my {o}!" said {n}. {f} was sad and went away.',
                f"{n} played alone, but it was not fun. {self.he.capitalize()} felt bad.",
                f"{self.his.capitalize()} {self.helper} said, \"It is more fun when you share.\"",
                f"{n} ran to {f}. \"I am sorry. Do you want to play with my {o}?\"",
                f"{f} smiled. They took turns with the {o} and had lots of fun.",
                f"{n} learned that sharing is better than playing alone."]

    def trip(self) -> list[str]:
        n, h = self.name, self.helper
        seen = self.r.sample(SIGHTS, 3)
        return [f"One sunny morning, {n} and {self.his} {h} went to the {self.place}.",
                f"On the way, {n} saw {seen[0]} and {seen[1]}.",
                f'"Look, {h}!" said {n}. "I see {seen[2]}!"',
                f"At the {self.place}, they ate a snack and played a game.",
                "Then the sky got dark and it began to rain.",
                f"{n} and {self.his} {h} ran home fast. They were wet but happy.",
                f"At home, {h} made warm milk. {n} said, \"That was a fun day!\""]

    def fear(self) -> list[str]:
        n, (scary, safe) = self.name, self.r.choice(FEARS)
        return [f"{n} was scared of {scary}. {self.he.capitalize()} did not want to go near it.",
                f"One day, {n} told {self.his} {self.helper}, \"I am scared of {scary}.\"",
                f"{self.his.capitalize()} {self.helper} gave {self.him} a hug and said, \"It is okay. I am here with you.\"",
                f"{self.helper.capitalize()} showed {n} {safe}. {n} held {self.his} {self.helper}'s hand.",
                f"{n} took a deep breath. {self.he.capitalize()} was brave.",
                f'"I am not scared anymore!" said {n}, and {self.he} smiled.']

    PLOTS = ("lost", "new_friend", "sharing", "trip", "fear")

    def write(self) -> str:
        s = self.opening() + getattr(self, self.r.choice(self.PLOTS))()
        if self.r.random() < 0.5:
            s.append(self.r.choice(MORALS))
        s.append("The end.")
        return " ".join(s)


def stories(n: int, seed: int = 0) -> list[str]:
    """n generated stories; the same seed gives the same stories."""
    rng = random.Random(seed)
    return [_Story(rng).write() for _ in range(n)]


def load_tinystories(path: str | Path | None = None, split: str = "train", n: int | None = None) -> list[str]:
    """TinyStories documents: from a local file, or through HF `datasets` (its cache or the hub).

    A local file is either JSON lines with a "text" field, or plain text with stories separated
    by `<|endoftext|>` (the format of the official TinyStories*.txt files). Never called by tests
    or by the offline default; `datasets` is the optional `tinystories` extra.
    """
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"TinyStories file {p} does not exist")
        raw = p.read_text(encoding="utf-8")
        if p.suffix in (".jsonl", ".json"):
            docs = [json.loads(line)["text"] for line in raw.splitlines() if line.strip()]
        else:
            docs = raw.split("<|endoftext|>")
    else:
        try:
            from datasets import load_dataset
        except ImportError as e:
            raise ImportError("TinyStories from the hub needs `pip install -e '.[tinystories]'`, or pass path= a local file") from e
        ds = load_dataset("roneneldan/TinyStories", split=split)
        docs = ds["text"] if n is None else ds.select(range(min(n, len(ds))))["text"]
    docs = [d.strip() for d in docs if d.strip()]
    return docs[:n] if n is not None else docs


# ---------------------------------------------------------------------------------------------
# Tokenizers: bytes, and a byte-level BPE (HF `tokenizers`)
# ---------------------------------------------------------------------------------------------


def word_counts(docs: list[str]) -> Counter:
    """Distinct lower-cased words (letters only) and their counts: the corpus's vocabulary."""
    return Counter(w.lower() for d in docs for w in re.findall(r"[A-Za-z']+", d))
