"""The story grammar knows its own entropy: the text determines the choices, and their -log p is exact."""
import math
import random

import pytest
import torch

from lib.data.story_grammar import Choices, _Story, prefix_free, stories_with_nats, zipf
from lib.data.tokenizers import ByteTokenizer
from lib.tasks.lm import LMTask, TextConfig, entropy_floor


class Reader(Choices):
    """Re-runs the grammar on a finished text: each pick takes the one option the text continues
    with. If two options could match, or none, or text is left over, the text did not determine
    the choices."""

    def __init__(self, text: str):
        super().__init__(random.Random(0))
        self.rest = text

    def say(self, text: str) -> None:
        assert self.rest.startswith(text), (text, self.rest[:60])
        self.rest = self.rest[len(text):]
        self.parts.append(text)

    def pick(self, options, probs=None):
        probs = probs or [1.0 / len(options)] * len(options)
        matches = [i for i, o in enumerate(options) if self.rest.startswith(o)]
        assert len(matches) == 1, (matches, self.rest[:60])
        i = matches[0]
        self.nats -= math.log(probs[i])
        self.say(options[i])
        return options[i]


def test_text_alone_recovers_every_choice_and_its_nats():
    for text, nats in stories_with_nats(400, seed=11):
        r = Reader(text)
        _Story(r).write()
        assert r.rest == "" and r.text() == text
        assert r.nats == pytest.approx(nats, rel=1e-12)


def test_picks_refuse_options_the_text_could_not_tell_apart():
    c = Choices(random.Random(0))
    with pytest.raises(ValueError, match="prefix-free"):
        c.pick(["cat", "cats"])
    with pytest.raises(ValueError, match="summing to 1"):
        c.pick(["a", "b"], [0.5, 0.6])
    assert prefix_free(["cat ", "cats "]) and not prefix_free(["a", "a"])


def test_nats_are_the_log_probability_of_the_draws():
    # a two-choice program, enumerated: probabilities sum to 1 and E[nats] is the entropy
    def program(c):
        first = c.pick(["x", "y"], [0.25, 0.75])
        if first == "x":
            c.pick(["1", "2", "3"], zipf(3))
    outcomes = {}
    for seed in range(4000):
        c = Choices(random.Random(seed))
        program(c)
        outcomes[c.text()] = c.nats
    assert set(outcomes) == {"x1", "x2", "x3", "y"}
    assert sum(math.exp(-n) for n in outcomes.values()) == pytest.approx(1.0)
    z = zipf(3)
    assert outcomes["x2"] == pytest.approx(-math.log(0.25 * z[1]))


def test_stories_are_long_range_and_rich():
    docs = [t for t, _ in stories_with_nats(300, seed=2)]
    assert 500 < sum(map(len, docs)) / len(docs) < 2000
    # the ending repeats the count stated last in the story (it changes as objects are given and found)
    import re
    for d in docs[:100]:
        counts = re.findall(r"(?:had|with (?:her|his)) (\w+) \w+ \w+", d)
        assert counts, d[:200]


def test_entropy_floor_counts_whole_documents_in_the_span():
    tok = ByteTokenizer()
    docs = ["ab", "cde", "fghij"]
    nats = {"ab": 1.0, "cde": 2.0, "fghij": 4.0}
    # tokens: 2+1, 3+1, 5+1 -> spans 3, 7, 13; a span of 8 covers the first two documents wholly
    assert entropy_floor(docs, nats, tok, 8) == pytest.approx(3.0 / 5 / math.log(2))
    assert entropy_floor(docs, nats, tok, 2) == pytest.approx(1.0 / 2 / math.log(2))  # shorter than one: that one


def test_bits_per_character_of_the_byte_model():
    docs = [t for t, _ in stories_with_nats(60, seed=0)]
    task = LMTask(TextConfig(tokenizer="bytes", ctx=64, n_docs=60, val_windows=4, val_frac=0.2), docs=docs)
    targets = task.val_x[:, 1:]
    chars = int((targets != task.tok.eos_id).sum())  # bytes = characters here (ASCII)
    assert task.bits_per_nat_token == pytest.approx(targets.numel() / chars / math.log(2))
    assert task.floor_bpc is None  # given documents: no grammar, no floor
    generated = LMTask(TextConfig(tokenizer="bytes", ctx=64, n_docs=60, val_windows=40, val_frac=0.2))
    assert 0.05 < generated.floor_bpc < 0.5
    model = torch.nn.Sequential(torch.nn.Embedding(257, 257))  # a constant-uniform model: 8.0 bits per byte token
    with torch.no_grad():
        model[0].weight.zero_()
    assert generated.evaluate(model)["val_bpc"] == pytest.approx(math.log(257) * generated.bits_per_nat_token, rel=1e-5)
