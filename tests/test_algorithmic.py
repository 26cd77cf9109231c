import pytest
import torch

from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig, blank_prefix, decode_number, encode_addition, sample_copy, to_digits


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def oracle(task, xs, V):
    """Plain Python definitions of the copy family."""
    out = []
    for x in xs:
        if task == "copy":
            y = list(x)
        elif task == "flip":
            y = x[::-1]
        elif task == "roll":
            k = x[0] % len(x)
            y = x[-k:] + x[:-k] if k else list(x)
        elif task == "roll_num":
            y = [(v + x[0]) % V for v in x]
        elif task == "sort":
            y = sorted(x)
        else:
            s, y = 0, []
            for v in x:
                s = (s + v) % V
                y.append(s)
        out.append(y)
    return out


@pytest.mark.parametrize("task", ["copy", "flip", "roll", "roll_num", "sort", "cumsum"])
def test_copy_family_matches_python_oracle(task):
    cfg = AlgorithmicConfig(task=task, V=16, length=11, val_size=10)
    b = sample_copy(cfg, 64, gen(), keep=torch.randint(1, 12, (64,), generator=gen(1)))
    assert b.y.tolist() == oracle(task, b.x.tolist(), 16)
    assert b.x.max() < 16 and b.x.min() >= 0


def test_curriculum_blanks_a_prefix_and_targets_follow_the_blanked_input():
    x = torch.arange(1, 9).repeat(3, 1)
    assert blank_prefix(x, torch.tensor([8, 3, 0])).tolist() == [
        [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 6, 7, 8], [0] * 8]
    cfg = AlgorithmicConfig(task="cumsum", length=8, val_size=10)
    b = sample_copy(cfg, 5, gen(), keep=torch.full((5,), 3))
    assert (b.x[:, :5] == 0).all() and (b.x[:, 5:] > 0).all() and (b.y[:, :5] == 0).all()


@pytest.mark.parametrize("base, limit", [(16, 1000), (10, 100), (2, 50)])
def test_addition_decodes_to_the_sum(base, limit):
    cfg = AlgorithmicConfig(task="addition", base=base, limit=limit, val_size=20)
    a = torch.randint(0, limit, (100,), generator=gen())
    c = torch.randint(0, limit, (100,), generator=gen(1))
    b = encode_addition(cfg, a, c)
    assert b.x.shape == (100, cfg.in_len) and b.y.shape == (100, cfg.out_len)
    for x, y, ai, ci in zip(b.x.tolist(), b.y.tolist(), a.tolist(), c.tolist()):
        toks = [t for t in x if t != cfg.PAD]
        assert toks[:2] == [base, cfg.BASE] and toks[-1] == cfg.EQ
        plus = toks.index(cfg.PLUS)
        assert decode_number(toks[2:plus], cfg) == ai and decode_number(toks[plus + 1 : -1], cfg) == ci
        assert decode_number(y, cfg) == ai + ci
    assert to_digits(0x49, 16) == [9, 4] and to_digits(0, 7) == [0]


def test_addition_validation_pairs_are_never_drawn_for_training():
    task = Algorithmic(AlgorithmicConfig(task="addition", base=10, limit=12, val_size=40))
    val = {tuple(r) for r in task.val.x.tolist()}
    assert len(val) == 40
    g, seen = gen(), set()
    for step in range(30):
        rows = {tuple(r) for r in task.train_batch(64, g, step).x.tolist()}
        assert not rows & val
        seen |= rows
    assert len(seen) == 144 - 40  # every other pair still appears


def test_copy_validation_sequences_are_never_drawn_for_training():
    task = Algorithmic(AlgorithmicConfig(task="copy", V=3, length=3, val_size=5))  # only 8 sequences of 1..2
    val = {tuple(r) for r in task.val.x.tolist()}
    g = gen()
    for _ in range(20):
        assert not {tuple(r) for r in task.train_batch(32, g).x.tolist()} & val
    assert task.heldout.skipped > 0


def test_same_seed_same_batches():
    task = Algorithmic(AlgorithmicConfig(task="addition", val_size=50))
    a, b = task.train_batch(16, gen(3)), task.train_batch(16, gen(3))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, task.train_batch(16, gen(4)).x)


def test_config_errors():
    with pytest.raises(ValueError, match=r"task must be one of \['copy', 'flip'"):
        AlgorithmicConfig(task="jump")
    with pytest.raises(ValueError, match="base"):
        AlgorithmicConfig(task="addition", base=40)
