"""Warmup-stable-decay: the lr schedule, the plateau rule on scripted curves, stop reasons, and
exact resume in every phase."""
import math

import pytest
import torch
import torch.nn as nn

from lib.train import (RunState, TrainConfig, decay_steps, departed, eval_due, load_checkpoint, lr_at, stop_decision,
                       total_steps, train)


def wsd(**kw) -> TrainConfig:
    return TrainConfig(**{"schedule": "wsd", "steps": 2000, "eval_every": 20, "lr": 1e-2, "converge_metric": "m",
                          "converge_window": 3, "converge_tol": 0.01, **kw})


def two_plateaus(s: int) -> float:
    """1.0 until step 300 (the initial plateau), a drop to 0.3 by step 500, then flat."""
    return max(0.3, 1.0 - 0.7 * max(0, s - 300) / 200)


def decline(s: int) -> float:
    return 0.95 ** (s / 20)  # -5 % per evaluation, forever


def drive(curve, cfg: TrainConfig) -> tuple[RunState, str]:
    """The stop rule as the loop applies it (evaluations where eval_due says, a decision after each),
    on a metric scripted as a function of the step."""
    state = RunState(history=[{"step": 0, "m": curve(0)}])
    while state.step < total_steps(cfg):
        state.step += 1
        if eval_due(state, cfg, seconds=0.0):
            state.history.append({"step": state.step, "m": curve(state.step)})
            if (reason := stop_decision(state, cfg)) is not None:
                return state, reason
    raise AssertionError(f"no stop by step {state.step}")


def test_wsd_lr_warms_up_holds_then_decays_to_the_floor():
    cfg = TrainConfig(schedule="wsd", steps=1000, lr=1.0, warmup_steps=10, min_lr_ratio=0.1, decay_fraction=0.2)
    assert [lr_at(s, cfg) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert all(lr_at(s, cfg) == 1.0 for s in range(10, 3000, 7))  # no decay begun: stable, even past the cap
    start = 500  # the decay lasts 100 steps: 500..599
    assert lr_at(499, cfg, start) == 1.0
    assert lr_at(500, cfg, start) == pytest.approx(1.0 - 0.9 / 100)
    assert lr_at(549, cfg, start) == pytest.approx(0.55)  # half way, linear
    assert lr_at(599, cfg, start) == pytest.approx(0.1) and lr_at(700, cfg, start) == pytest.approx(0.1)
    cos = TrainConfig(schedule="wsd", steps=1000, lr=1.0, min_lr_ratio=0.1, decay_shape="cosine")
    assert lr_at(549, cos, start) == pytest.approx(0.1 + 0.9 * 0.5) and lr_at(524, cos, start) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr_at(599, cos, start) == pytest.approx(0.1)
    assert total_steps(cfg) == 1200 and total_steps(TrainConfig(steps=1000)) == 1000


def test_plateau_then_drop_then_plateau_stops_after_the_second_plateau():
    state, reason = drive(two_plateaus, wsd(plateau_departure=0.2))
    # the second plateau starts at step 500; its 3-evaluation window is full at step 560
    assert state.decay_start == 560 and reason == "converged"
    assert state.step == 560 + 112  # then a decay of 0.2 x 560 steps
    ungated, _ = drive(two_plateaus, wsd(plateau_departure=0.0))
    assert ungated.decay_start == 80  # without the departure margin the initial plateau stops it


def test_the_early_plateau_never_stops_it():
    # a metric that never leaves its initial value by the margin: only the cap ends the run
    state, reason = drive(lambda s: 1.0 - 0.001 * min(s, 100) / 100, wsd(steps=600, plateau_departure=0.05))
    assert reason == "max_steps" and state.decay_start == 600
    # min_steps holds the rule off even after the metric departed
    late, _ = drive(two_plateaus, wsd(plateau_departure=0.2, min_steps=900))
    assert late.decay_start == 900


def test_a_steady_decline_never_stops_and_the_cap_still_decays():
    state, reason = drive(decline, wsd(steps=1000, plateau_departure=0.2))
    assert reason == "max_steps" and state.decay_start == 1000 and state.step == 1200


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_the_decay_lasts_a_fraction_of_the_steps_so_far(fraction):
    state, _ = drive(two_plateaus, wsd(plateau_departure=0.2, decay_fraction=fraction))
    assert state.step - state.decay_start == round(fraction * 560) == decay_steps(560, wsd(decay_fraction=fraction))


def test_max_mode_waits_for_the_metric_to_rise_from_its_start():
    acc = lambda s: 1.0 - two_plateaus(s)  # 0 until step 300, then 0.7 from step 500 # noqa: E731
    state, reason = drive(acc, wsd(converge_mode="max", plateau_departure=0.5))
    assert reason == "converged" and state.decay_start == 560
    assert departed(0.0, [0.0, 0.0], 0.5, "max") is False and departed(0.0, [0.01], 0.5, "max") is True
    assert departed(0.1, [0.14], 0.5, "max") is False and departed(0.1, [0.15], 0.5, "max") is True
    assert departed(1.0, [0.85], 0.2) is False and departed(1.0, [0.8, 0.9], 0.2) is True
    assert departed(1.0, [2.0], 0.0) is True  # margin 0: no requirement


def test_cosine_stops_at_once_and_the_cap_is_the_end():
    state, reason = drive(two_plateaus, wsd(schedule="cosine", plateau_departure=0.2))
    assert reason == "converged" and state.step == 560 and state.decay_start is None
    capped, reason = drive(decline, wsd(schedule="cosine", steps=1000))
    assert reason == "max_steps" and capped.step == 1000


class Interrupt(Exception):
    pass


class Curve:
    """A tiny task whose validation metric follows a script of the steps trained; the steps seen are
    task state, saved in the checkpoint, so a resumed run continues the script."""

    spec = ("curve",)

    def __init__(self, curve, fail_at=None):
        self.curve, self.fail_at, self.seen = curve, fail_at, 0

    def train_batch(self, batch_size, gen, step=0):
        if step == self.fail_at:
            self.fail_at = None
            raise Interrupt
        self.seen = step + 1
        return (torch.randn(batch_size, 2, generator=gen),)

    def loss(self, model, batch):
        return (model(batch[0]) - 1.0).pow(2).mean()

    def evaluate(self, model):
        return {"m": self.curve(self.seen)}

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, d):
        self.seen = d["seen"]


def model(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(2, 1)


def test_train_runs_the_wsd_phases_and_records_them(tmp_path):
    cfg = wsd(plateau_departure=0.2, min_lr_ratio=0.1)
    hist = train(model(), Curve(two_plateaus), cfg, checkpoint=tmp_path / "c.pt")
    assert (hist["stop_reason"] == "converged").all() and (hist["budget_kind"] == "").all()
    assert hist["step"].iloc[-1] == 672 and hist["step"].iloc[-2] == 660  # the decay's end is an evaluation
    stable, decaying = hist[hist["step"] <= 560], hist[hist["step"] > 560]
    assert (stable["lr"] == 1e-2).all()
    assert decaying["lr"].is_monotonic_decreasing and decaying["lr"].iloc[-1] == pytest.approx(1e-3)
    saved = load_checkpoint(tmp_path / "c.pt")
    assert saved["decay_start"] == 560 and saved["stop_reason"] == "converged" and saved["step"] == 672
    again = train(model(1), Curve(two_plateaus), cfg, checkpoint=tmp_path / "c.pt")  # finished: returned as is
    assert again[["step", "m", "lr"]].equals(hist[["step", "m", "lr"]])
    capped = train(model(), Curve(decline), wsd(steps=400, plateau_departure=0.2))
    assert capped["step"].iloc[-1] == 480 and (capped["stop_reason"] == "max_steps").all()


@pytest.mark.parametrize("cut", [150, 430, 610])  # stable (before the drop), stable (during it), decay
def test_resume_is_exact_in_every_phase(tmp_path, cut):
    cfg = wsd(plateau_departure=0.2, min_lr_ratio=0.1)
    straight = model()
    h_straight = train(straight, Curve(two_plateaus), cfg)
    ckpt = tmp_path / "r.pt"
    task = Curve(two_plateaus, fail_at=cut)
    with pytest.raises(Interrupt):
        train(model(), task, cfg, checkpoint=ckpt)
    saved = load_checkpoint(ckpt)
    assert saved["step"] == cut - cut % 20 and saved["stop_reason"] is None
    assert saved["decay_start"] == (560 if cut > 560 else None)
    resumed = model(1)  # another init: everything must come from the checkpoint
    h_resumed = train(resumed, Curve(two_plateaus), cfg, checkpoint=ckpt)
    assert torch.equal(resumed.weight, straight.weight) and torch.equal(resumed.bias, straight.bias)
    cols = ["step", "lr", "train_loss", "m", "tokens", "flops"]
    assert h_resumed[cols].equals(h_straight[cols]) and h_resumed["stop_reason"].iloc[0] == "converged"


def test_new_settings_are_checked_with_their_allowed_values():
    with pytest.raises(ValueError, match=r"schedule must be one of \['constant', 'cosine', 'wsd'\], got 'linear'"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match=r"decay_shape must be one of \['cosine', 'linear'\], got 'step'"):
        TrainConfig(decay_shape="step")
    with pytest.raises(ValueError, match=r"decay_fraction must be in \(0, 1\], got 0"):
        TrainConfig(decay_fraction=0)
    with pytest.raises(ValueError, match=r"max_tokens must be > 0 or None, got 0"):
        TrainConfig(max_tokens=0)
    assert TrainConfig.load({"max_tokens": 2e7, "max_flops": 1e15}).max_tokens == 2e7  # as YAML writes them
