"""A probabilistic story grammar that knows its own entropy (the small LMs' offline corpus).

Every random choice is made by `Choices.pick` from a list of options with known probabilities,
and its text is written at once. Two rules make the text an injective function of the choices,
so the entropy of a story is exactly the sum of -log p of its choices:

1. the options of one choice are *prefix-free* strings (no option is a prefix of another;
   checked on every call), and
2. what is written next depends only on the choices made so far.

Reading a story from the start, at each choice exactly one option can match the remaining text
(two matching options would be prefixes of one another), so the choices are recovered from the
text. Hence H(story) = E[sum of -log p], and a set of stories' nats per character,
sum(nats) / sum(chars), is the cross-entropy of the best possible model that reads each story
from its start: the floor no language model can beat on average.

    docs = stories(2, seed=0)            # texts
    text, nats = story(random.Random(0))  # one story and its exact -log p in nats

The stories are long-range on purpose: a child, a friend, an object and a count are introduced
early and referred to in later episodes and in the ending (the count changes as objects are
given, found and lost, so the ending's number needs the whole story); about 1,500 words, Zipf
weights inside every list, a dozen episode kinds and a random number of episodes.
"""
from __future__ import annotations

import math
import random

# ------------------------------------------------------------------------------------------------
# Word lists (each prefix-free as written into the text: checked by tests/test_story_grammar.py)
# ------------------------------------------------------------------------------------------------
GIRLS = ("Lily Mia Anna Lucy Sue Emma Zoe Ella Ruby Amy Sara Kim Nora Ivy Rose Grace Hazel Chloe Alice Daisy Maya Olive "
         "Clara Ava Isla Jade Luna Molly Pippa Tess Wendy Fern Greta Holly Iris June Kate Lola Nina Opal Penny Quinn Rita "
         "Stella Tara Una Vera Willa Xena Yara").split()
BOYS = ("Tom Ben Sam Max Tim Jack Leo Finn Noah Jake Bob Dan Oscar Hugo Felix Arlo Milo Ezra Owen Caleb Eli Gus Hank "
        "Ivan Joel Kurt Liam Mark Ned Otto Paul Reed Seth Theo Vince Wade Zack Abe Carl Dean Earl Fred Glen Hal Ike Luke "
        "Moe Nate Ray").split()
ANIMALS = ("cat dog bunny bird frog duck bear fox mouse puppy owl turtle pig lion kitten goat horse sheep cow hen "
           "squirrel hedgehog otter beaver deer wolf tiger zebra giraffe monkey panda koala penguin seal whale dolphin "
           "snail ladybug butterfly bee ant spider lizard snake crab octopus parrot robin sparrow swan goose").split()
ADJS = ("little happy shy brave kind silly sleepy curious small friendly gentle clever quiet loud busy lazy proud "
        "tiny grumpy cheerful careful clumsy funny bold calm eager fuzzy jolly lucky merry neat polite quick "
        "sweet tidy wise young zany chubby fluffy spotted striped").split()
HOMES = "house cottage cabin hut tent barn treehouse burrow nest castle".split()
HOME_ADJS = "big small old new warm cozy blue yellow crooked round".split()
PLACES = ("park garden forest beach farm lake hill town school river meadow pond village valley orchard island "
          "harbor market library zoo bakery mountain desert jungle field bridge playground cave station castle").split()
OBJECTS = ("ball kite hat book doll boat drum box shell cup car bell spoon sock crayon marble button ribbon balloon "
           "whistle pebble feather acorn cookie apple pear plum cherry muffin candle teddy robot puzzle sticker "
           "stamp card flag coin key leaf star ring bead block brush comb gem jar lamp mitten mug pencil rope").split()
PLURAL = {"box": "boxes", "brush": "brushes", "cherry": "cherries", "leaf": "leaves", "candle": "candles",
          "teddy": "teddies", "puppy": "puppies", "bunny": "bunnies", "ladybug": "ladybugs"}
COLORS = "red blue green yellow pink purple orange white black brown gray golden silver".split()
CONTAINERS = "basket bag box jar bucket pocket drawer tin".split()
NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen twenty").split()  # counts as written; a story starts with 2..12
HELPERS = "mom dad grandma grandpa aunt uncle teacher neighbor".split()
FOODS = ("soup bread cake pie jam honey rice pasta pizza cheese carrots peas berries grapes toast eggs "
         "pancakes noodles salad popcorn").split()
WEATHER = ["the sun was shining", "it was raining", "the wind was blowing", "it was snowing", "the sky was gray",
           "a rainbow was in the sky"]
SIGHTS = ("a tall tree,a yellow flower,a small fish,a big rock,a white cloud,a red bird,a long road,a little boat,"
          "an old bridge,a shiny puddle,a busy ant hill,a quiet pond,a hot air balloon,a green frog,a sleeping cat,"
          "a big truck,a funny hat,a tiny snail").split(",")
GAMES = ["tag", "hide and seek", "catch", "a race", "jump rope", "hopscotch", "marbles", "pretend pirates"]
FEELINGS = "happy sad scared proud surprised worried excited tired".split()
SOUNDS = ["a loud bang", "a soft tap", "a funny squeak", "a low growl", "a sweet song", "a big splash"]
WHEN = ["Then, the next day, ", "Then, one morning, ", "Then, after lunch, ", "Then, that evening, ", "Then, a week later, "]
MORALS = ["It is good to help friends.", "Sharing makes everyone happy.", "Friends make every day better.",
          "Being brave is not so hard with a friend.", "It is fun to try new things.", "Kindness comes back to you.",
          "Always say thank you.", "Patience is a good thing."]


def plural(noun: str) -> str:
    return PLURAL.get(noun, noun + "s")


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def zipf(n: int, s: float = 1.0) -> list[float]:
    """Zipf weights 1/(i+1)^s, normalised: the first words of a list are the common ones."""
    w = [1.0 / (i + 1) ** s for i in range(n)]
    z = sum(w)
    return [x / z for x in w]


def prefix_free(options) -> bool:
    opts = list(options)
    return len(set(opts)) == len(opts) and not any(a != b and b.startswith(a) for a in opts for b in opts)


class Choices:
    """The story's text so far and the exact -log p (nats) of the choices that wrote it."""

    def __init__(self, rng: random.Random):
        self.r, self.parts, self.nats = rng, [], 0.0
        self._checked: set[tuple] = set()

    def say(self, text: str) -> None:
        """Write text that the choices so far determine (no entropy)."""
        self.parts.append(text)

    def pick(self, options: list[str], probs: list[float] | None = None) -> str:
        """Write one of `options` (prefix-free) drawn with `probs` (default uniform); returns it."""
        key = tuple(options)
        if key not in self._checked:
            if not prefix_free(options):
                raise ValueError(f"options are not prefix-free, so the text would not determine the choice: {options}")
            self._checked.add(key)
        probs = probs or [1.0 / len(options)] * len(options)
        if len(probs) != len(options) or abs(sum(probs) - 1.0) > 1e-9:
            raise ValueError(f"need one probability per option, summing to 1; got {len(probs)} summing to {sum(probs)}")
        i = self.r.choices(range(len(options)), weights=probs)[0]
        self.nats -= math.log(probs[i])
        self.parts.append(options[i])
        return options[i]

    def text(self) -> str:
        return "".join(self.parts)


class _Story:
    """One story: the cast is introduced by choices, the episodes refer back to it."""

    def __init__(self, c: Choices):
        self.c = c

    def w(self, words: list[str], s: float = 1.0) -> str:
        """Pick from a word list with Zipf weights (exponent s)."""
        return self.c.pick(words, zipf(len(words), s))

    @property
    def He(self) -> str:
        return self.he.capitalize()

    def items(self, n: int) -> str:
        if n == 1:
            return f"one {self.color} {self.thing}"
        return f"{NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else 'many'} {self.color} {self.things}" if n else f"no {self.things}"

    def write(self) -> None:
        c = self.c
        c.pick(["Once upon a time, there was ", "Long ago, there lived ", "There once was "], [0.6, 0.2, 0.2])
        self.adj = self.w([f"{article(a)} {a} " for a in ADJS]).split()[1]
        self.kind = self.w([f"{k} " for k in ANIMALS + ["girl", "boy"]], 0.7).strip()
        c.say("named ")
        self.name = self.w([f"{n}." for n in GIRLS + BOYS], 0.8)[:-1]
        self.he, self.his, self.him = ("she", "her", "her") if self.name in GIRLS else ("he", "his", "him")
        c.say(f" {self.name} lived in ")
        home_adj = self.w([f"{article(h)} {h} " for h in HOME_ADJS]).split()[1]
        self.home = f"{home_adj} {self.w([h + ' ' for h in HOMES]).strip()}"
        c.say("near the ")
        self.place = self.w([p + "." for p in PLACES])[:-1]
        c.say(f" {self.name} had ")
        self.count = NUMBER_WORDS.index(self.w([n + " " for n in NUMBER_WORDS[2:13]], 0.5).strip())
        self.color = self.w([k + " " for k in COLORS]).strip()
        nouns = [plural(o) for o in OBJECTS]
        self.things = self.w([n + "." for n in nouns], 0.9)[:-1]
        self.thing = OBJECTS[nouns.index(self.things)]
        c.say(f" {self.He} kept them in a ")
        self.container = self.w([k + " " for k in CONTAINERS]).strip()
        c.say(f"by the door. {self.name}'s best friend was ")
        self.fkind = self.w([f"{article(a)} {a} " for a in ANIMALS], 0.7).split()[1]
        c.say("called ")
        self.friend = self.w([f"{n}." for n in GIRLS + BOYS if n != self.name], 0.8)[:-1]
        c.say(" ")
        for n_ep in range(6):  # 2 to 6 episodes: from the third on, the story ends with probability 0.35
            if n_ep >= 2:
                if c.pick(["In the end, ", *WHEN], [0.35] + [0.65 / len(WHEN)] * len(WHEN)) == "In the end, ":
                    break
            else:
                c.say("One day, " if n_ep == 0 else "The next day, ")
            self.episode()
            c.pick([f"{self.name} felt {x}. " for x in FEELINGS], zipf(len(FEELINGS)))
        else:
            c.say("In the end, ")
        self.ending()

    def episode(self) -> None:
        """Pick an episode by its opening words (prefix-free given the cast), then tell it."""
        n, f = self.name, self.friend
        openers = {
            "lost": f"{n} took the {self.container} to the {self.place}. ",
            "gift": f"a present came from {n}'s ",
            "share": f"{f} came to visit. ",
            "trip": f"{n} went on a trip with {self.his} ",
            "fear": f"{n} heard ",
            "new_friend": f"{n} met ",
            "cook": f"{n} wanted to make ",
            "storm": f"a big storm came to the {self.place}. ",
            "recount": f"{n} counted {self.his} {self.things}. ",
            "sound": f"{n} found a little ",
            "race": f"{n} and {f} had a race to the ",
            "market": f"{n} went to the market with a coin. ",
        }
        chosen = self.w(list(openers.values()), 0.4)
        getattr(self, next(k for k, v in openers.items() if v == chosen))()

    # The episodes (each continues its opener).
    def lost(self):
        c, n = self.c, self.name
        if self.count == 0:
            c.say(f"The {self.container} was empty, so nothing was lost. ")
            return
        c.say(f"On the way home, one {self.color} {self.thing} fell out. \"Oh no!\" said {n}. {self.friend} helped {self.him} look ")
        c.pick(["under a bush", "behind a tree", "in the grass", "next to a rock", "by the water"])
        if c.pick([". They found it! ", ", but it was gone. "], [0.6, 0.4]) == ", but it was gone. ":
            self.count -= 1
            c.say(f"Now {n} had {self.items(self.count)}. ")

    def gift(self):
        c, n = self.c, self.name
        helper = self.w([h + ". " for h in HELPERS])[:-2]
        c.say("It had ")
        k = NUMBER_WORDS.index(c.pick(["two ", "three ", "four "]).strip())
        self.count += k
        c.say(f"more {self.color} {self.things} in it. {n} said, \"Thank you, {helper}!\" Now {n} had {self.items(self.count)}. ")

    def share(self):
        c, n, f = self.c, self.name, self.friend
        if self.count < 2:
            c.say(f"{f} wanted to play with the {self.things}, but {n} had {self.items(self.count)}. So they played ")
            self.w([g + " " for g in GAMES])
            c.say("instead. ")
            return
        c.say(f"{n} gave {f} ")
        k = NUMBER_WORDS.index(c.pick(["one ", "two ", "three "][: min(3, self.count - 1)]).strip())
        self.count -= k
        c.say(f"{self.color} {self.thing if k == 1 else self.things}. {f} was ")
        c.pick(["very happy. ", "so glad. ", "surprised. "])
        c.say(f"Now {n} had {self.items(self.count)}. ")

    def trip(self):
        c, n = self.c, self.name
        helper = self.w([h + ". " for h in HELPERS])[:-2]
        c.say("They went to the ")
        self.w([p + ". " for p in PLACES])
        c.say("On the way, they saw ")
        self.w([s + " and " for s in SIGHTS])
        self.w([s + ". " for s in SIGHTS])
        c.say("When they came home, ")
        c.pick([w + ". " for w in WEATHER])
        c.say("They had ")
        self.w([x + " " for x in FOODS])
        c.say("for dinner. ")
        c.say(f'"That was fun, {helper}!" said {n}. ')

    def fear(self):
        c, n = self.c, self.name
        c.pick([s + " " for s in SOUNDS])
        c.say(f"in the night. {self.He} was scared. {self.friend} the {self.fkind} said, \"Do not be afraid. ")
        c.pick(["It is only the wind.", "It is only a mouse.", "It is only the rain.", "I am here with you."])
        c.say(f"\" {n} felt brave again. ")

    def new_friend(self):
        c, n = self.c, self.name
        adj = self.w([f"{article(a)} {a} " for a in ADJS]).split()[1]
        kind = self.w([x + " " for x in ANIMALS], 0.7).strip()
        c.say(f"at the {self.place}. The {kind} was all alone. They played ")
        self.w([g + " " for g in GAMES])
        c.say(f"until dinner. The {adj} {kind} said, \"You are a good friend, {n}.\" ")

    def cook(self):
        c, n = self.c, self.name
        food = self.w([x + " " for x in FOODS]).strip()
        c.say(f"for {self.friend}. {self.He} ")
        if c.pick(["burned the ", "made the "], [0.3, 0.7]) == "burned the ":
            c.say(f"{food}, so they ate ")
            self.w([x + " " for x in FOODS if x != food])
            c.say("instead. ")
        else:
            c.say(f"{food}, and {self.friend} said it was the best {food} ever. ")

    def storm(self):
        c, n = self.c, self.name
        c.say(f"The wind shook the {self.home}. {n} held the {self.container} with {self.his} {self.items(self.count)} close. ")
        c.pick(["The storm went away in the morning. ", "The storm lasted all night. "])

    def recount(self):
        c, n = self.c, self.name
        if c.pick(["They were all there. ", "Then a surprise! "], [0.7, 0.3]) == "They were all there. ":
            c.say(f"{n} had {self.items(self.count)}. ")
        else:
            self.count += 1
            c.say(f"{self.friend} found one more {self.color} {self.thing} under the bed. Now {n} had {self.items(self.count)}. ")

    def sound(self):
        c, n, f = self.c, self.name, self.friend
        self.w([x + " " for x in ["drum", "bell", "flute", "horn", "piano", "harp"]])
        c.say(f"in the {self.home}. {self.He} played a song for {f}, and ")
        c.pick([f"{f} danced. ", f"{f} sang along. ", f"{f} fell asleep. "])

    def race(self):
        c, n, f = self.c, self.name, self.friend
        self.w([p + ". " for p in PLACES])
        if c.pick([f"{n} won. ", f"{f} won. ", "It was a tie. "]) == f"{f} won. " and self.count >= 1:
            self.count -= 1
            c.say(f"{n} gave {f} one {self.color} {self.thing} as a prize. Now {n} had {self.items(self.count)}. ")

    def market(self):
        c, n = self.c, self.name
        c.say(f"{self.He} bought ")
        if c.pick([f"one more {self.color} {self.thing}. ", "some "], [0.5, 0.5]) == "some ":
            self.w([x + " " for x in FOODS])
            c.say(f"for {self.friend}. ")
        else:
            self.count += 1
            c.say(f"Now {n} had {self.items(self.count)}. ")

    def ending(self):
        c, n = self.c, self.name
        c.say(f"{n} put {self.his} {self.items(self.count)} back in the {self.container}, and {n} and {self.friend} "
              f"went home to the {self.home} near the {self.place}. ")
        if c.pick(["The end.", *MORALS], [0.5] + [0.5 / len(MORALS)] * len(MORALS)) != "The end.":
            c.say(" The end.")


def story(rng: random.Random) -> tuple[str, float]:
    """One story and the exact -log p (nats) of the choices that wrote it (= -log p of the text)."""
    c = Choices(rng)
    _Story(c).write()
    return c.text(), c.nats


def stories_with_nats(n: int, seed: int = 0) -> list[tuple[str, float]]:
    """n stories and their exact -log p in nats; the same seed gives the same stories."""
    rng = random.Random(seed)
    return [story(rng) for _ in range(n)]


def stories(n: int, seed: int = 0) -> list[str]:
    """n generated stories; the same seed gives the same stories."""
    return [t for t, _ in stories_with_nats(n, seed)]
