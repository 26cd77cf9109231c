"""Budgets counted, not clocked: tokens and FLOPs in the history, and max_tokens / max_flops stops
that land on the same step however loaded the machine is."""
import time

import pytest
import torch
import torch.nn as nn

from lib import train as loop
from lib.train import TrainConfig, load_checkpoint, tokens_per_sample, train

B, SEQ, D_IN, H, D_OUT = 4, 8, 3, 16, 2
# FLOPs of one step of the MLP below (matmuls, 2 per multiply-add): the forward, then the backward's
# weight gradients of both layers and the input gradient of the second (the batch needs none).
STEP_FLOPS = 2 * B * (D_IN * H + H * D_OUT) + 2 * B * (D_IN * H + 2 * H * D_OUT)


class Seq:
    """A task with a sequence length whose batches can be made slow (a loaded machine)."""

    spec = ("seq",)
    seq_len = SEQ

    def __init__(self, sleep=0.0):
        self.sleep = sleep

    def train_batch(self, batch_size, gen, step=0):
        time.sleep(self.sleep)
        return (torch.randn(batch_size, D_IN, generator=gen),)

    def loss(self, model, batch):
        return (model(batch[0]) - 1.0).pow(2).mean()

    def evaluate(self, model):
        with torch.no_grad():
            return {"val_loss": float((model(torch.ones(8, D_IN)) - 1.0).pow(2).mean())}


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D_IN, H), nn.ReLU(), nn.Linear(H, D_OUT))


def cfg(**kw):
    return TrainConfig(**{"steps": 1000, "batch_size": B, "eval_every": 10, "lr": 1e-2, **kw})


def test_tokens_and_flops_are_counted_into_the_history():
    hist = train(mlp(), Seq(), cfg(steps=30))
    assert list(hist["tokens"]) == [s * B * SEQ for s in (0, 10, 20, 30)]
    assert list(hist["flops"]) == [s * STEP_FLOPS for s in (0, 10, 20, 30)]


def test_token_budget_stops_at_the_same_step_on_a_loaded_machine(monkeypatch, tmp_path):
    budget = cfg(max_tokens=37 * B * SEQ)  # reached after step 37, between two evaluations
    calm_model = mlp()
    calm = train(calm_model, Seq(), budget)
    clock = iter(range(0, 10**9, 600))  # on the loaded machine every clock read is 10 minutes later...
    monkeypatch.setattr(loop.time, "perf_counter", lambda: float(next(clock)))
    loaded_model = mlp()
    loaded = train(loaded_model, Seq(sleep=0.002), budget, checkpoint=tmp_path / "l.pt")  # ...and batches are slow
    for h in (calm, loaded):
        assert list(h["step"]) == [0, 10, 20, 30, 37]
        assert (h["stop_reason"] == "budget").all() and (h["budget_kind"] == "tokens").all()
    assert torch.equal(calm_model[0].weight, loaded_model[0].weight)
    assert loaded["train_minutes"].iloc[-1] > 60 > calm["train_minutes"].iloc[-1]
    assert load_checkpoint(tmp_path / "l.pt")["budget_kind"] == "tokens"
    # the wall-clock budget, on the same loaded machine, stops within the first evaluation interval
    clocked = train(mlp(), Seq(), cfg(max_minutes=30.0, max_tokens=37 * B * SEQ))
    assert clocked["step"].iloc[-1] < 10 and (clocked["budget_kind"] == "minutes").all()


def test_flop_budget_stops_where_the_count_says():
    hist = train(mlp(), Seq(), cfg(max_flops=23.5 * STEP_FLOPS))
    assert hist["step"].iloc[-1] == 24 and (hist["budget_kind"] == "flops").all()
    assert hist["flops"].iloc[-1] == 24 * STEP_FLOPS


def test_under_wsd_a_budget_begins_the_decay():
    hist = train(mlp(), Seq(), cfg(schedule="wsd", max_tokens=50 * B * SEQ, min_lr_ratio=0.1))
    assert hist["step"].iloc[-1] == 60 and (hist["stop_reason"] == "budget").all()  # 50 stable + 0.2 x 50
    assert (hist["budget_kind"] == "tokens").all() and hist["lr"].iloc[-1] == pytest.approx(1e-3)


def test_tokens_per_sample_reads_the_tasks_sequence_length():
    class Cfg:
        ctx = 32

    class LM:
        cfg = Cfg()

    class Plain:
        pass

    assert tokens_per_sample(Seq()) == SEQ and tokens_per_sample(LM()) == 32 and tokens_per_sample(Plain()) == 1


def test_an_old_checkpoint_without_counts_resumes(tmp_path):
    """A checkpoint written before tokens, FLOPs and the wsd fields existed: its rows get their
    token counts, and the run continues exactly."""
    straight_model = mlp()
    straight = train(straight_model, Seq(), cfg(steps=40, schedule="constant"))
    ckpt = tmp_path / "old.pt"
    train(mlp(), Seq(), cfg(steps=20, schedule="constant"), checkpoint=ckpt)
    saved = load_checkpoint(ckpt)
    old = {k: v for k, v in saved.items() if k not in ("decay_start", "decay_reason", "budget_kind", "flops_per_step",
                                                       "tokens_per_sample")}
    old["history"] = [{k: v for k, v in row.items() if k not in ("tokens", "flops")} for row in saved["history"]]
    old["stop_reason"] = None  # cut at step 20
    torch.save(old, ckpt)
    resumed_model = mlp()
    resumed = train(resumed_model, Seq(), cfg(steps=40, schedule="constant"), checkpoint=ckpt)
    assert torch.equal(resumed_model[2].weight, straight_model[2].weight)
    assert resumed["tokens"].equals(straight["tokens"]) and resumed["flops"].iloc[-1] == straight["flops"].iloc[-1]
