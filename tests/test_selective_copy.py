import pytest
import torch
import torch.nn as nn

from lib.tasks.selective_copy import MASK, CopyBatch, SelectiveCopy, SelectiveCopyConfig, decode, sample


def answer_oracle(area: str, blank: str) -> str:
    """The letters of the area in left-to-right order: the task's definition in plain Python."""
    return "".join(ch for ch in area if ch != blank)


def test_samples_follow_the_definition():
    cfg = SelectiveCopyConfig()
    b = sample(cfg, 200, gen=torch.Generator().manual_seed(1))
    assert b.x.shape == b.y.shape == (200, cfg.seq_len) == (200, 52)
    for x, y in zip(b.x, b.y):
        text = decode(y)
        area, delim, answer = text[: cfg.area], text[cfg.area : cfg.area + 2], text[cfg.area + 2 :]
        assert delim == ": "
        assert sorted(answer) == list("ABCDEFGHIJ")  # A..J, each exactly once
        assert answer == answer_oracle(area, " ")
        assert (x[: cfg.area + 2] == y[: cfg.area + 2]).all() and (x[cfg.area + 2 :] == MASK).all()


def test_alphabet_and_sizes_are_configurable():
    cfg = SelectiveCopyConfig(n_items=3, area=8, alphabet="XYZW", blank=".", delimiter="=")
    b = sample(cfg, 50, gen=torch.Generator().manual_seed(0))
    for y in b.y:
        text = decode(y)
        assert len(text) == 12 and text[8] == "="
        assert text[9:] == answer_oracle(text[:8], ".") and len(set(text[9:])) == 3 and set(text[9:]) <= set("XYZW")


def test_bad_task_config_is_rejected():
    with pytest.raises(ValueError, match="n_items"):
        SelectiveCopyConfig(n_items=50)
    with pytest.raises(ValueError, match="alphabet"):
        SelectiveCopyConfig(n_items=3, alphabet="AB")


def test_same_seed_same_batches_different_seed_different():
    task = SelectiveCopy(SelectiveCopyConfig(val_size=10))
    a = task.train_batch(64, torch.Generator().manual_seed(7))
    b = task.train_batch(64, torch.Generator().manual_seed(7))
    c = task.train_batch(64, torch.Generator().manual_seed(8))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.y, c.y)
    # the validation set is fixed by val_seed, not by anything else
    assert torch.equal(task.val.y, SelectiveCopy(SelectiveCopyConfig(val_size=10)).val.y)


def test_train_stream_never_contains_a_validation_sample():
    # 2 letters in 4 cells: only 12 layouts, so an unfiltered stream would hit the validation set constantly
    task = SelectiveCopy(SelectiveCopyConfig(n_items=2, area=4, alphabet="AB", val_size=8, val_seed=3))
    val = {decode(y) for y in task.val.y}
    assert 1 < len(val) < 12
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        b = task.train_batch(64, gen)
        assert b.x.shape == (64, 4 + 2 + 2)
        texts = {decode(y) for y in b.y}
        assert not texts & val
        seen |= texts
    assert len(seen) == 12 - len(val)  # every non-validation layout still appears
    assert task.skipped > 0  # the filter did real work


class Oracle(nn.Module):
    """Solves the task from the visible area: logits are one-hot on the right answer."""

    def __init__(self, cfg, cheat=True):
        super().__init__()
        self.cfg, self.cheat, self.p = cfg, cheat, nn.Parameter(torch.zeros(()))

    def forward(self, x):
        y = x.clone()
        if self.cheat:
            for row in y:
                area = decode(row[: self.cfg.area])
                row[-self.cfg.n_items :] = torch.tensor(list(answer_oracle(area, self.cfg.blank).encode()))
        return nn.functional.one_hot(y, 256).float() * 50 + self.p


def test_metrics_on_known_models():
    cfg = SelectiveCopyConfig(val_size=300)
    task = SelectiveCopy(cfg)
    perfect = task.evaluate(Oracle(cfg), batch_size=64)  # ragged last batch on purpose
    assert perfect["val_error_pct"] == 0 and perfect["val_sample_error_pct"] == 0 and perfect["val_loss"] < 1e-6
    copier = task.evaluate(Oracle(cfg, cheat=False), batch_size=64)  # copies the input: every masked cell wrong
    assert copier["val_error_pct"] == 100
    assert copier["val_all_error_pct"] == pytest.approx(100 * 10 / 52)
    assert copier["val_loss"] == pytest.approx(50 * 10 / 52, rel=1e-4)


def test_decode_marks_the_mask():
    assert decode(torch.tensor([65, 0, 32, 7])) == "A\u25a1 ?"
