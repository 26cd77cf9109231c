"""Text for the small language models: an offline story corpus, TinyStories, tokenizers, windows.

Facts of the reference setting: shared/reference/masked_mixer.md (TinyStories, a 4096-token BPE,
512-token context). Offline we generate children's stories from a seeded grammar instead:

    stories(2, seed=0)[0][:120]
    -> 'Once upon a time, there was a shy cat named Tom. Tom lived near a big lake. One day, ...'

Every story is built from one of several plots (a lost object, a new friend, sharing, a trip,
a fear overcome) with random characters, places, objects and dialogue; about 300 distinct
words. A language model's loss falls far below the unigram entropy on it (the plot structure
and agreement of names, pronouns and objects across sentences are learnable), and the corpus is
generated in about a second, so nothing is downloaded.

Pipeline: documents -> split by document (a seeded permutation: a story is in train or in
validation, never both) -> tokenizer trained on the training documents only -> one token stream
per split with <eos> after every document -> fixed-length windows (random offsets for training,
consecutive non-overlapping windows for validation).
"""
from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lib.config import Config

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
class ByteTokenizer:
    """UTF-8 bytes are ids 0..255; <eos> = 256."""

    kind = "bytes"
    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind})


class BPETokenizer:
    """A byte-level BPE trained with HF `tokenizers` (the reference retrained a 4096-token BPE)."""

    kind = "bpe"

    def __init__(self, tok):
        self.tok = tok
        self.eos_id = tok.token_to_id("<eos>")
        self.vocab_size = tok.get_vocab_size()

    @classmethod
    def train(cls, docs: list[str], vocab_size: int = 4096) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>"], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(docs, trainer)
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode([i for i in ids if i != self.eos_id])

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "tokenizer": self.tok.to_str()})


def tokenizer_from_json(blob: str):
    """Rebuild a tokenizer saved with to_json() (e.g. from a checkpoint's task metadata)."""
    d = json.loads(blob)
    if d["kind"] == "bytes":
        return ByteTokenizer()
    from tokenizers import Tokenizer

    return BPETokenizer(Tokenizer.from_str(d["tokenizer"]))


# ---------------------------------------------------------------------------------------------
# The language-modelling task for lib.train
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextConfig(Config):
    corpus: str = "stories"  # 'stories' (offline generator) or 'tinystories' (local file or HF datasets)
    path: str = ""  # tinystories: a local .txt/.jsonl file ('' = HF datasets)
    n_docs: int = 20_000
    tokenizer: str = "bpe"  # 'bpe' or 'bytes'
    vocab: int = 4096  # BPE vocabulary size (an upper bound: a small corpus may need fewer merges)
    ctx: int = 256  # tokens a model sees; windows hold ctx + 1 tokens (inputs and shifted targets)
    val_frac: float = 0.05  # fraction of documents held out
    val_windows: int = 64  # validation windows evaluated (consecutive, non-overlapping)
    seed: int = 0  # corpus generation and the document split

    def __post_init__(self):
        if self.corpus not in ("stories", "tinystories"):
            raise ValueError(f"corpus must be one of ['stories', 'tinystories'], got {self.corpus!r}")
        if self.tokenizer not in ("bpe", "bytes"):
            raise ValueError(f"tokenizer must be one of ['bpe', 'bytes'], got {self.tokenizer!r}")
        if self.n_docs < 2 or self.ctx < 1 or self.val_windows < 1 or self.vocab < 258:
            raise ValueError("need n_docs >= 2, ctx >= 1, val_windows >= 1, vocab >= 258")
        if not 0 < self.val_frac < 1:
            raise ValueError(f"val_frac must be in (0, 1), got {self.val_frac}")


def split_documents(docs: list[str], val_frac: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded permutation of whole documents: (train, validation), disjoint by construction."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(val_frac * len(docs)))
    return [docs[i] for i in order[n_val:]], [docs[i] for i in order[:n_val]]


def token_stream(docs: list[str], tok) -> torch.Tensor:
    """All documents' tokens, each followed by <eos>, as one 1-D long tensor."""
    ids: list[int] = []
    for d in docs:
        ids += tok.encode(d) + [tok.eos_id]
    return torch.tensor(ids, dtype=torch.long)


def unigram_entropy(stream: torch.Tensor) -> float:
    """Entropy of the token frequencies, nats per token: the loss of the best context-free model."""
    counts = torch.bincount(stream).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


class Batch(NamedTuple):
    x: torch.Tensor  # (B, ctx + 1) token ids: inputs x[:, :-1], targets x[:, 1:]


class LMTask:
    """Next-token prediction on packed windows. loss = mean cross-entropy (nats/token)."""

    def __init__(self, cfg: TextConfig, docs: list[str] | None = None):
        self.cfg = cfg
        if docs is None:
            docs = stories(cfg.n_docs, cfg.seed) if cfg.corpus == "stories" else load_tinystories(cfg.path or None, n=cfg.n_docs)
        self.train_docs, self.val_docs = split_documents(docs, cfg.val_frac, cfg.seed)
        self.tok = ByteTokenizer() if cfg.tokenizer == "bytes" else BPETokenizer.train(self.train_docs, cfg.vocab)
        self.train_stream, self.val_stream = token_stream(self.train_docs, self.tok), token_stream(self.val_docs, self.tok)
        n = min(cfg.val_windows, (len(self.val_stream) - 1) // cfg.ctx)
        if n < 1 or len(self.train_stream) <= cfg.ctx + 1:
            raise ValueError(f"corpus too small for ctx={cfg.ctx}: {len(self.train_stream)} train / {len(self.val_stream)} validation tokens")
        self.val_x = torch.stack([self.val_stream[i * cfg.ctx : i * cfg.ctx + cfg.ctx + 1] for i in range(n)])
        self.spec = (cfg,)  # what identifies this task in a checkpoint key

    @property
    def vocab_size(self) -> int:
        return self.tok.vocab_size

    def stats(self) -> dict:
        return {"train_docs": len(self.train_docs), "val_docs": len(self.val_docs), "train_tokens": len(self.train_stream),
                "val_tokens": len(self.val_stream), "vocab": self.vocab_size,
                "unigram_entropy": unigram_entropy(self.train_stream),
                "chars_per_token": sum(map(len, self.train_docs)) / (len(self.train_stream) - len(self.train_docs))}

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> Batch:
        starts = torch.randint(0, len(self.train_stream) - self.cfg.ctx - 1, (batch_size,), generator=gen)
        return Batch(torch.stack([self.train_stream[s : s + self.cfg.ctx + 1] for s in starts.tolist()]))

    @staticmethod
    def loss(model, batch: Batch | tuple) -> torch.Tensor:
        x = batch[0]  # (B, ctx + 1)
        logits = model(x[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())

    @torch.no_grad()
    def evaluate(self, model, batch_size: int = 16) -> dict[str, float]:
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(self.val_x), batch_size):
            x = self.val_x[i : i + batch_size].to(device)
            total += self.loss(model, Batch(x)).item() * len(x)
        val = total / len(self.val_x)
        return {"val_loss": val, "val_ppl": math.exp(min(val, 50.0))}

    def meta(self) -> dict:
        """What generation needs from this task, saved in checkpoints: the tokenizer."""
        return {"tokenizer": self.tok.to_json()}


def word_counts(docs: list[str]) -> Counter:
    """Distinct lower-cased words (letters only) and their counts: the corpus's vocabulary."""
    import re

    return Counter(w.lower() for d in docs for w in re.findall(r"[A-Za-z']+", d))
