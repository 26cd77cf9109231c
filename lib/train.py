"""The one training loop of the project.

Nothing here knows about a particular model or task. A task is any object that satisfies
`lib.contracts.Task`:

    train_batch(batch_size, gen, step) -> batch     # a tuple/NamedTuple of tensors, drawn on gen.device
    loss(model, batch) -> loss or (loss, stats)      # the task owns its loss
    evaluate(model) -> dict[str, float]              # validation metrics, no grad
    after_step(stats)                                # optional: a curriculum hears the batch's stats
    state_dict() / load_state_dict(d)                # optional: progress to checkpoint (curricula)

The loop (`train`, top to bottom): AdamW, the lr of a pure schedule, optional gradient clipping,
evaluation every `eval_every` steps (and at the start and at the end of each phase), a progress
bar, a checkpoint after every evaluation (written to a temporary file, then renamed) from which an
interrupted run resumes exactly, and a clear error on a non-finite loss. Its parts are named
helpers that a trainer of several seeds at once can reuse: `RunState` (all a checkpoint keeps of a
run's progress), `resume`, `evaluation_row`, `stop_decision`, `save_checkpoint`.
Precision (`amp`) and `compile` are resolved per device (lib.device): bf16 autocast only where it is
native (sm >= 8.0), torch.compile only where Triton runs (sm >= 7.0); an explicit request the device
cannot honour is a one-line error. Between evaluations the loop never waits on the device: the
training loss is summed there and read at evaluation, and its finiteness is checked there too (every
`finite_every` steps if set, and always before a checkpoint).

Schedules (`lr_at`, a pure function of the step, the config and the step where a decay began):
'cosine' (linear warmup, then cosine to min_lr_ratio*lr at `steps`), 'constant', and 'wsd'
(warmup-stable-decay): linear warmup, then a constant lr while the plateau rule watches the
validation metric; when the rule fires, or at the cap `steps` (which counts the stable phase), or
at a budget, a decay over `decay_fraction` of the steps so far (linear or cosine to min_lr_ratio*lr),
then the run stops.

The plateau rule: `converge_metric` improved by less than `converge_tol` (relative) over the last
`converge_window` evaluations; never before `min_steps`, never before the metric has improved on
its first (step-0) evaluation by `plateau_departure` (relative), and under 'wsd' never during warmup.

Budgets are counted, not clocked: tokens (samples x the task's sequence length, samples where it
has none) and training FLOPs (one step's forward and backward, counted by
torch.utils.flop_counter on the run's first step, times the steps) are history columns, and
`max_tokens` / `max_flops` stop a run at the same step on any machine. `max_minutes` (training time,
evaluation excluded) is a secondary wall-clock mode: a loaded machine stops it earlier. Under
'cosine' and 'constant' the first rule met ends the run; under 'wsd' it begins the decay. The
history's `stop_reason` says which rule ended a run (converged / budget / max_steps) and
`budget_kind` which budget (tokens / flops / minutes).
"""
from __future__ import annotations

import dataclasses
import errno
import glob
import hashlib
import json
import math
import os
import pickle
import time
import zipfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from lib import device as devices
from lib import procs, provenance
from lib.config import Config
from lib.paths import CHECKPOINTS, git_revision
from lib.progress import bar

STOP_REASONS = ("converged", "budget", "max_steps")
BUDGET_KINDS = ("tokens", "flops", "minutes")
SCHEDULES = ("constant", "cosine", "wsd")
DECAY_SHAPES = ("cosine", "linear")
# Settings that change how fast a run goes but not what it learns: recorded in the checkpoint and
# the history, never hashed into the run's identity, so moving a run to a GPU or turning compile on
# reuses it. bf16 autocast does change results slightly; a report states the precision its runs used.
RECORDED_ONLY = ("device", "amp", "compile", "finite_every", "batch_seeds")
# Settings hashed only when set away from their default, so a config that leaves them alone keeps
# the run id (and checkpoint) it had before they existed.
HASHED_IF_SET = ("decay_fraction", "decay_shape", "plateau_departure", "max_tokens", "max_flops")


@dataclass(frozen=True)
class TrainConfig(Config):
    steps: int = 1000  # the cap (max steps; under 'wsd' the cap of the stable phase); a rule below may end a run earlier
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # the floor of the cosine and of the wsd decay, as a fraction of lr
    schedule: str = "cosine"  # 'cosine' (after warmup), 'constant', or 'wsd' (warmup-stable-decay)
    grad_clip: float | None = None  # max global grad norm; None = no clipping
    eval_every: int = 100
    seed: int = 0  # data stream (and, through build(), model init)
    device: str = "auto"
    amp: str | bool = "auto"  # auto | bf16 | fp16 | off (true = auto, false = off): see lib.device.resolve_precision
    compile: str | bool = "auto"  # auto | true | false: see lib.device.resolve_compile (auto: on CUDA sm >= 7.0 only)
    snapshot_every: int = 0  # keep a copy of the weights every N steps in the checkpoint (0: none)
    converge_metric: str | None = None  # e.g. 'val_loss': the plateau rule watches it (None: no rule)
    converge_mode: str = "min"  # 'min' (lower is better) or 'max' (e.g. an accuracy)
    converge_window: int = 5  # evaluations over which the improvement is measured
    converge_tol: float = 0.01  # relative improvement below which the metric has plateaued
    min_steps: int = 0  # the plateau rule is not applied before this step
    max_minutes: float | None = None  # wall-clock budget of training (evaluation excluded): a secondary mode
    finite_every: int = 0  # also check the loss for NaN/inf every N steps (0: at evaluations only; each check waits on the device)
    decay_fraction: float = 0.2  # wsd: the decay lasts this fraction of the steps before it
    decay_shape: str = "linear"  # wsd: 'linear' or 'cosine' from lr to min_lr_ratio*lr
    plateau_departure: float = 0.0  # the plateau rule waits for this relative gain on the step-0 value (0: no wait)
    max_tokens: float | None = None  # budget of training tokens (samples x the task's sequence length): a float, so YAML's 2e7 loads
    max_flops: float | None = None  # budget of training FLOPs (forward + backward, counted)
    batch_seeds: str | bool = "auto"  # auto | true | false: a sweep trains seeds (and lrs) of one config as one batched model (lib.batched)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError(f"steps, batch_size, eval_every must be >= 1, got {self.steps}, {self.batch_size}, {self.eval_every}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ValueError(f"need lr > 0, 0 <= min_lr_ratio <= 1, warmup_steps >= 0; got {self.lr}, {self.min_lr_ratio}, {self.warmup_steps}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")
        if self.decay_shape not in DECAY_SHAPES:
            raise ValueError(f"decay_shape must be one of {sorted(DECAY_SHAPES)}, got {self.decay_shape!r}")
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0, got {self.snapshot_every}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.converge_mode not in ("min", "max"):
            raise ValueError(f"converge_mode must be one of ['max', 'min'], got {self.converge_mode!r}")
        if self.converge_window < 1 or self.converge_tol < 0 or self.min_steps < 0 or self.plateau_departure < 0:
            raise ValueError(f"need converge_window >= 1, converge_tol >= 0, min_steps >= 0, plateau_departure >= 0; got "
                             f"{self.converge_window}, {self.converge_tol}, {self.min_steps}, {self.plateau_departure}")
        for key in ("max_minutes", "max_tokens", "max_flops"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0 or None, got {getattr(self, key)}")
        if self.finite_every < 0:
            raise ValueError(f"finite_every must be >= 0, got {self.finite_every}")
        if str(self.batch_seeds).lower() not in ("auto", "true", "false"):
            raise ValueError(f"batch_seeds must be one of ['auto', 'true', 'false'] (or true/false), got {self.batch_seeds!r}")
        devices.check_precision_key(self.amp)
        devices.check_compile_key(self.compile)
        devices.pick(self.device)  # raises on an unknown or unavailable device

    def identity(self) -> dict:
        """The fields that change a run's result: all but RECORDED_ONLY, and HASHED_IF_SET only away
        from their defaults."""
        default = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in RECORDED_ONLY and not (k in HASHED_IF_SET and v == default[k])}


@dataclass
class RunState:
    """All a checkpoint keeps of a run's progress, besides the model, optimizer, generator and task.
    A checkpoint's top-level keys are these fields' names; one written before a field existed loads
    with that field's default."""

    step: int = 0  # optimizer steps taken
    train_seconds: float = 0.0  # training time, evaluation excluded
    history: list[dict] = field(default_factory=list)  # one row per evaluation (evaluation_row)
    snapshots: list[dict] = field(default_factory=list)  # weight copies every snapshot_every steps
    stop_reason: str | None = None  # one of STOP_REASONS once the run has stopped
    revisions: list[str] = field(default_factory=list)  # the git revisions that trained it
    decay_start: int | None = None  # wsd: the step where the decay began (None: not yet)
    decay_reason: str | None = None  # wsd: the rule that began the decay, the stop reason once it ends
    budget_kind: str = ""  # the budget that stopped the run (one of BUDGET_KINDS), '' for none
    flops_per_step: int | None = None  # one step's forward + backward FLOPs, counted once per run
    tokens_per_sample: int = 1  # the task's sequence length (tokens_per_sample)

    @classmethod
    def from_checkpoint(cls, saved: dict) -> "RunState":
        state = cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})
        state.revisions = provenance.revisions_of(saved)
        return state

    def to_checkpoint(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # no copies (the snapshots may be large)

    def done(self, cfg: TrainConfig) -> bool:
        """Has the run stopped? (A checkpoint from before stop reasons were saved stopped at the cap.)"""
        return self.stop_reason is not None or (cfg.schedule != "wsd" and self.step >= cfg.steps)


@dataclass(frozen=True)
class RunInfo:
    """The fixed facts of one run that its rows, checkpoint and record carry."""

    desc: str
    checkpoint: Path | None
    revision: str  # the code training now
    code: list[str]  # the files under lib/ the run depends on (provenance.dependencies)
    device: torch.device
    precision: str
    compiled: bool
    identity: dict | None = None  # the run asked for (lib.sweep.run_identity): stored, and checked on resume


def converged(values: list[float], window: int, tol: float, mode: str = "min") -> bool:
    """Has the metric improved by less than `tol` (relative to the best before the window) over
    the last `window` values? Needs window + 1 values; NaNs count as no improvement."""
    if len(values) <= window:
        return False
    sign = 1.0 if mode == "min" else -1.0
    before = min((sign * v for v in values[:-window] if not math.isnan(v)), default=math.inf)
    recent = min((sign * v for v in values[-window:] if not math.isnan(v)), default=math.inf)
    if math.isinf(before):
        return False
    return before - recent < tol * abs(before)


def departed(first: float, values: list[float], margin: float, mode: str = "min") -> bool:
    """Has the metric left its initial value `first`: did its best in `values` improve on `first`
    by at least `margin` x |first| (and by more than nothing, so an accuracy starting at 0 must rise)?
    margin 0: no requirement."""
    if margin == 0:
        return True
    sign = 1.0 if mode == "min" else -1.0
    best = min((sign * v for v in values if not math.isnan(v)), default=math.inf)
    gain = sign * first - best
    return gain > 0 and gain >= margin * abs(first) * (1 - 1e-9)  # 0.8 is 20 % below 1.0 despite rounding


def plateaued(state: RunState, cfg: TrainConfig) -> bool:
    """The plateau rule on the evaluations so far (see the module docstring)."""
    if cfg.converge_metric is None or state.step < cfg.min_steps or not state.history:
        return False
    if cfg.schedule == "wsd" and state.step < cfg.warmup_steps:
        return False
    values = [r[cfg.converge_metric] for r in state.history if r["step"] > 0]
    first = state.history[0][cfg.converge_metric]
    return (departed(first, values, cfg.plateau_departure, cfg.converge_mode)
            and converged(values, cfg.converge_window, cfg.converge_tol, cfg.converge_mode))


def decay_steps(decay_start: int, cfg: TrainConfig) -> int:
    """Length of the wsd decay that begins at `decay_start`: decay_fraction of the steps so far (>= 1)."""
    return max(1, round(cfg.decay_fraction * decay_start))


def total_steps(cfg: TrainConfig) -> int:
    """The most steps a run can take: the cap, plus under 'wsd' the decay after it."""
    return cfg.steps + (decay_steps(cfg.steps, cfg) if cfg.schedule == "wsd" else 0)


def lr_at(step: int, cfg: TrainConfig, decay_start: int | None = None) -> float:
    """Learning rate at `step`: linear warmup to cfg.lr, then cosine to min_lr_ratio*lr at cfg.steps
    ('cosine'), cfg.lr ('constant'), or under 'wsd' cfg.lr until `decay_start` (None: the decay has
    not begun) and from there the decay to min_lr_ratio*lr, reached on its last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.min_lr_ratio * cfg.lr
    if cfg.schedule == "constant" or (cfg.schedule == "wsd" and (decay_start is None or step < decay_start)):
        return cfg.lr
    if cfg.schedule == "wsd":
        progress = min(1.0, (step - decay_start + 1) / decay_steps(decay_start, cfg))
        left = 1 - progress if cfg.decay_shape == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
        return floor + (cfg.lr - floor) * left
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def tokens_per_sample(task: Any) -> int:
    """Sequence positions per training sample: the task's `seq_len`, or its config's `seq_len` or
    `ctx`; 1 where it declares none (then tokens count samples)."""
    for owner in (task, getattr(task, "cfg", None)):
        for name in ("seq_len", "ctx"):
            value = getattr(owner, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return 1


def tokens_seen(state: RunState, cfg: TrainConfig) -> int:
    return state.step * cfg.batch_size * state.tokens_per_sample


def flops_spent(state: RunState) -> float:
    """Training FLOPs so far (NaN past step 0 while the first step's count is unknown)."""
    if state.step == 0:
        return 0.0
    return float(state.step * state.flops_per_step) if state.flops_per_step is not None else math.nan


@contextmanager
def counting_flops(state: RunState) -> Iterator[None]:
    """Count what runs inside (one step's forward and backward) into state.flops_per_step, once per
    run (a no-op once counted). FlopCounterMode counts matrix products, convolutions and attention,
    the FLOPs that dominate; elementwise work (e.g. an SSM's scan) is not counted."""
    if state.flops_per_step is not None:
        yield
        return
    with FlopCounterMode(display=False) as counter:
        yield
    state.flops_per_step = int(counter.get_total_flops())


def budget_reached(state: RunState, cfg: TrainConfig, seconds: float | None = None) -> str | None:
    """The first budget the run has used up (one of BUDGET_KINDS), or None. `seconds`: the training
    time now (default state.train_seconds)."""
    if cfg.max_tokens is not None and tokens_seen(state, cfg) >= cfg.max_tokens:
        return "tokens"
    if cfg.max_flops is not None and state.flops_per_step is not None and flops_spent(state) >= cfg.max_flops:
        return "flops"
    if cfg.max_minutes is not None and (state.train_seconds if seconds is None else seconds) >= 60 * cfg.max_minutes:
        return "minutes"
    return None


def eval_due(state: RunState, cfg: TrainConfig, seconds: float) -> bool:
    """Evaluate (and checkpoint) after this step? Every eval_every steps, at the end of a phase (the
    cap, the end of the decay), and as soon as a budget is used up."""
    if state.step % cfg.eval_every == 0:
        return True
    if state.decay_start is not None:
        return state.step == state.decay_start + decay_steps(state.decay_start, cfg)
    return state.step >= cfg.steps or budget_reached(state, cfg, seconds) is not None


def stop_decision(state: RunState, cfg: TrainConfig) -> str | None:
    """Why the run stops after the evaluation just recorded (None: it goes on): the cap, a budget
    (state.budget_kind says which), or the plateau rule, in that order. Under 'wsd' that reason first
    begins the decay (state.decay_start, state.decay_reason) and is returned once the decay ends."""
    if state.decay_start is not None:
        return state.decay_reason if state.step >= state.decay_start + decay_steps(state.decay_start, cfg) else None
    if state.step >= cfg.steps:
        reason = "max_steps"
    elif (kind := budget_reached(state, cfg)) is not None:
        reason, state.budget_kind = "budget", kind
    elif plateaued(state, cfg):
        reason = "converged"
    else:
        return None
    if cfg.schedule != "wsd":
        return reason
    state.decay_start, state.decay_reason = state.step, reason
    return None


def build(model_cls: Callable[..., nn.Module], cfg: Any, seed: int) -> nn.Module:
    """Construct a model with its initial weights fixed by `seed` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(cfg)


def run_id(*configs: Any) -> str:
    """A short stable hash of everything that changes a run's result (dataclass configs or plain
    values; a TrainConfig contributes its identity(), so device, amp and compile are not in it)."""
    def part(c):
        if isinstance(c, TrainConfig):
            return c.identity()
        return dataclasses.asdict(c) if dataclasses.is_dataclass(c) and not isinstance(c, type) else c

    blob = json.dumps([part(c) for c in configs], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def checkpoint_path(study: str, name: str, *configs: Any) -> Path:
    """checkpoints/<study>/<name>-<hash of configs>.pt: a changed config never resumes a stale run."""
    return CHECKPOINTS / study / f"{name}-{run_id(*configs)}.pt"


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint.

    The temporary name is per process (<name>.<pid>.tmp), so two processes training the same run
    (e.g. two notebooks under pytest-xdist) each rename a complete file. A failed write removes its
    temporary file; one left by a process that was killed mid-write is removed at the next save.
    A full disk is one line naming the file (torch's own message is 'enforce fail ... unexpected pos').
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        pid = stale.name[len(path.name) + 1:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not (int(pid) < 2**31 and procs.alive(int(pid))):
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        full = (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or (
            isinstance(e, RuntimeError) and ("unexpected pos" in str(e) or "file write failed" in str(e)))
        if full:
            raise CheckpointError(f"no space left on device writing {path}; the previous checkpoint (if any) is intact") from None
        raise


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read: the message names the file and what to do."""


def load_checkpoint(path: Path | str, map_location: Any = "cpu", *, identity: dict | None = None,
                    keys: tuple[str, ...] = ()) -> dict:
    """A checkpoint written by `train`, loaded with weights_only=True: it holds only tensors, plain
    containers, numbers and strings, so a file from an untrusted source cannot run code.

    identity: the run asked for (lib.sweep.run_identity): a checkpoint holding another run (renamed,
    or swapped with one of the same shape) is refused, naming both. keys: entries the caller needs
    beyond the weights and step (e.g. 'optimizer' to resume)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if path.exists() and not path.is_file():  # a FIFO or a device: reading it could block or never end
        raise CheckpointError(f"{path} is not a regular file (a pipe, socket or device), so it is not a checkpoint")
    if path.exists() and not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint (empty, truncated or another format); "
                              "delete it to retrain, or restore it")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError:
        raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain data, so it was not loaded "
                              "(weights_only); delete it to retrain, or restore it") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable ({first[:120]}); delete it to retrain, or restore it") from None
    if not isinstance(saved, dict) or "model" not in saved or "step" not in saved:
        raise CheckpointError(f"checkpoint {path} is not a seqlab training checkpoint; delete it to retrain, or restore it")
    if missing := [k for k in keys if k not in saved]:
        raise CheckpointError(f"checkpoint {path} has no {', '.join(map(repr, missing))} entry (it holds {sorted(saved)}); "
                              "delete it to retrain, or restore it")
    if identity is not None and (why := provenance.identity_mismatch(saved, identity)):
        raise CheckpointError(f"checkpoint {path} {why}: it was renamed or swapped; put it back, or delete it to retrain")
    return saved


def load_snapshots(checkpoint: Path, identity: dict | None = None) -> list[dict[str, torch.Tensor]]:
    """The weight snapshots a run kept (TrainConfig.snapshot_every), oldest first."""
    return load_checkpoint(checkpoint, identity=identity).get("snapshots", [])


def finished(saved: dict, cfg: TrainConfig) -> bool:
    """Did the run in this checkpoint stop (by any rule, or at the cap)?"""
    return RunState.from_checkpoint(saved).done(cfg)


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple):
        moved = [to_device(t, device) for t in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else tuple(moved)
    return batch


def _autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def resume(model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, task: Any, cfg: TrainConfig,
           info: RunInfo) -> RunState:
    """The run's state: fresh, or from info.checkpoint when it exists, restoring the model, optimizer,
    generator and task in place. A checkpoint that holds another run than info.identity is refused.
    Under --retrain-stale a finished run whose code changed since it was trained (provenance.to_retrain)
    starts afresh; its checkpoint stays until the retrain's first checkpoint replaces it."""
    path = info.checkpoint
    if path is None or not Path(path).exists():
        return RunState(tokens_per_sample=tokens_per_sample(task))
    saved = load_checkpoint(path, map_location=info.device, identity=info.identity, keys=("optimizer", "generator"))
    if finished(saved, cfg) and provenance.to_retrain(saved, info.code):
        print(f"{info.desc or path}: trained at {', '.join(provenance.revisions_of(saved))}, code changed since: "
              "retraining (--retrain-stale)")
        return RunState(tokens_per_sample=tokens_per_sample(task))
    try:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:  # torch's message lists every tensor: one line, cut short
        raise CheckpointError(f"checkpoint {path} does not fit this run's model ({' '.join(str(e).split())[:160]}); "
                              "it holds another run: put it back, or delete it to retrain") from None
    try:
        gen.set_state(saved["generator"].cpu())
    except RuntimeError:  # a checkpoint from another kind of device: its stream cannot continue here
        gen.manual_seed(cfg.seed + saved["step"])
        print(f"{info.desc or path}: generator state from another device; batches reseeded at step {saved['step']}")
    if saved.get("task") is not None:
        task.load_state_dict(saved["task"])
    state = RunState.from_checkpoint(saved)
    state.tokens_per_sample = tokens_per_sample(task)
    for i, row in enumerate(state.history):  # rows written before tokens and FLOPs were counted
        if "tokens" not in row:
            at = dataclasses.replace(state, step=row["step"])
            state.history[i] = {"step": row["step"], "samples": row["samples"], "tokens": tokens_seen(at, cfg),
                                "flops": flops_spent(at), **row}
    return state


def validation_metrics(model: nn.Module, net: nn.Module, task: Any, cfg: TrainConfig, amp: Any) -> dict[str, float]:
    """The task's evaluation of `net` (the model in eval mode, under the run's precision)."""
    model.eval()
    with amp:
        metrics = task.evaluate(net)
    model.train()
    if cfg.converge_metric is not None and cfg.converge_metric not in metrics:
        raise ValueError(f"converge_metric {cfg.converge_metric!r} is not a metric of this task; it reports {sorted(metrics)}")
    return metrics


def evaluation_row(state: RunState, cfg: TrainConfig, info: RunInfo, metrics: dict[str, float],
                   loss_sum: torch.Tensor | float, n_loss: int) -> dict:
    """Append the evaluation at state.step to the history (and the training revision to the run's
    revisions); returns the row. `loss_sum`: the training loss summed over the `n_loss` steps since
    the previous row, read here once."""
    step, seconds = state.step, state.train_seconds
    row = {
        "step": step,
        "samples": step * cfg.batch_size,
        "tokens": tokens_seen(state, cfg),
        "flops": flops_spent(state),
        "lr": lr_at(max(step - 1, 0), cfg, state.decay_start),
        "train_loss": float(loss_sum) / n_loss if n_loss else float("nan"),
        **metrics,
        "samples_per_s": step * cfg.batch_size / seconds if seconds else float("nan"),
        "train_minutes": seconds / 60,
        "git_revision": info.revision,
        "precision": info.precision,
    }
    state.history.append(row)
    if info.revision not in state.revisions:
        state.revisions.append(info.revision)
    return row


def checkpoint_contents(state: RunState, cfg: TrainConfig, info: RunInfo, model: nn.Module,
                        opt: torch.optim.Optimizer, gen: torch.Generator, task: Any) -> dict:
    """What a checkpoint holds: the run's state (RunState's fields as top-level keys), the model,
    optimizer, generator and task, the configs, and enough to rebuild the model without the notebook."""
    model_cfg = getattr(model, "cfg", None)
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "task": task.state_dict() if hasattr(task, "state_dict") else None,  # e.g. a curriculum's progress
        **state.to_checkpoint(),
        "config": {"train": dataclasses.asdict(cfg), "model": dataclasses.asdict(model_cfg) if model_cfg is not None else None},
        # enough to rebuild the model without the notebook (lib.generate): classes by import path
        "model_class": f"{type(model).__module__}:{type(model).__qualname__}",
        "model_config_class": f"{type(model_cfg).__module__}:{type(model_cfg).__qualname__}" if model_cfg is not None else None,
        "task_meta": task.meta() if hasattr(task, "meta") else None,  # e.g. a language model's tokenizer
        "git_revision": info.revision,
        "code": info.code,
        "identity": {k: info.identity[k] for k in provenance.IDENTITY} if info.identity else None,
    }


def save_checkpoint(path: Path | str, state: RunState, cfg: TrainConfig, info: RunInfo, model: nn.Module,
                    opt: torch.optim.Optimizer, gen: torch.Generator, task: Any) -> None:
    save_atomic(checkpoint_contents(state, cfg, info, model, opt, gen, task), Path(path))


def check_finite(loss_sum: torch.Tensor, since: int, state: RunState, cfg: TrainConfig, desc: str) -> None:
    """Read the summed loss once: NaN/inf anywhere in steps since..state.step makes the sum non-finite."""
    if not torch.isfinite(loss_sum):
        last = state.history[-1]["step"] if state.history else 0
        raise FloatingPointError(
            f"{desc or 'training'}: the loss became {float(loss_sum)} between steps {since} and {state.step} "
            f"(lr {lr_at(state.step, cfg, state.decay_start):.3g}); stopped. The checkpoint (if any) still holds step {last}. "
            "Try a lower lr or grad_clip.")


def record_run(state: RunState, info: RunInfo, trained_steps: int) -> None:
    provenance.record({
        "desc": info.desc, "checkpoint": str(info.checkpoint) if info.checkpoint else None, "trained_steps": trained_steps,
        "step": state.step, "stop_reason": state.stop_reason, "budget_kind": state.budget_kind,
        "train_minutes": state.train_seconds / 60, "revisions": state.revisions or [info.revision],
        "device": devices.describe(info.device), "amp": info.precision, "compile": info.compiled, "code": info.code,
    })


def history_frame(state: RunState, extra: dict[str, Any] | None = None) -> pd.DataFrame:
    """The history as a table, one row per evaluation: step, samples, tokens, flops, lr, train_loss
    (mean since the previous row), the task's evaluation metrics, samples_per_s and train_minutes
    (training only), git_revision (the code that trained up to that row), precision; then the run's
    stop_reason and budget_kind on every row (empty while it has not stopped) and the constant
    `extra` columns (e.g. the swept settings)."""
    df = pd.DataFrame(state.history)
    df["stop_reason"] = state.stop_reason or ""
    df["budget_kind"] = state.budget_kind
    for k, v in (extra or {}).items():
        df[k] = [v] * len(df)
    return df


def finish(state: RunState, info: RunInfo, extra: dict[str, Any] | None, trained_steps: int) -> pd.DataFrame:
    """Record the run (provenance) and return its history; a run without a stop reason stopped at the cap."""
    state.stop_reason = state.stop_reason or "max_steps"
    record_run(state, info, trained_steps)
    return history_frame(state, extra)


def progress_bar(state: RunState, cfg: TrainConfig, desc: str):
    """A bar toward the step where the run stops at the latest (the cap, or where `max_tokens` runs out),
    labelled '(cap N)' when a rule (plateau, FLOP or time budget) may stop it earlier; it closes with
    the run's stop reason."""
    total = total_steps(cfg)
    if cfg.max_tokens:
        total = min(total, math.ceil(cfg.max_tokens / cfg.batch_size / state.tokens_per_sample))
    may_stop_early = cfg.converge_metric is not None or cfg.max_minutes is not None or cfg.max_flops is not None
    return bar(total, desc=desc, initial=state.step, stop=lambda: state.stop_reason, cap=may_stop_early)


def train(model: nn.Module, task: Any, cfg: TrainConfig, *, checkpoint: Path | None = None, desc: str = "",
          extra: dict[str, Any] | None = None, identity: dict | None = None) -> pd.DataFrame:
    """Train `model` on `task`, resuming from `checkpoint` when it exists (a finished run returns at
    once); returns the history, one row per evaluation (history_frame). `identity` (lib.sweep.run_identity):
    the run this is, stored in the checkpoint; a checkpoint holding another run is refused."""
    device = devices.pick(cfg.device)
    info = RunInfo(desc, checkpoint, git_revision(), provenance.dependencies(type(model).__module__, type(task).__module__),
                   device, devices.resolve_precision(cfg.amp, device), devices.resolve_compile(cfg.compile, device), identity)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)  # tasks draw batches on the training device
    state = resume(model, opt, gen, task, cfg, info)
    if state.done(cfg):
        return finish(state, info, extra, trained_steps=0)
    # A model whose whole forward cannot be traced (e.g. a loop over a runtime count) compiles its parts.
    net = (model.compile_parts() if hasattr(model, "compile_parts") else torch.compile(model)) if info.compiled else model
    amp = _autocast(device, info.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=info.precision == "fp16")  # fp16 needs loss scaling (it syncs in step)
    model.train()
    if state.step == 0:
        evaluation_row(state, cfg, info, validation_metrics(model, net, task, cfg, amp), 0.0, 0)
    step_at_start, pbar = state.step, progress_bar(state, cfg, desc)
    loss_sum, n_loss, since, t0 = torch.zeros((), device=device), 0, state.step + 1, time.perf_counter()  # since: first step summed
    try:
        while state.stop_reason is None:
            for group in opt.param_groups:
                group["lr"] = lr_at(state.step, cfg, state.decay_start)
            batch = to_device(task.train_batch(cfg.batch_size, gen, state.step), device)
            with counting_flops(state):  # the run's first step only
                with amp:
                    out = task.loss(net, batch)
                loss, stats = out if isinstance(out, tuple) else (out, None)
                scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            if stats is not None and hasattr(task, "after_step"):
                task.after_step(stats)  # e.g. an adaptive curriculum hears the batch's accuracy
            loss_sum, n_loss, state.step = loss_sum + loss.detach().float(), n_loss + 1, state.step + 1  # the sum stays on the device
            if cfg.finite_every and state.step % cfg.finite_every == 0:
                check_finite(loss_sum, since, state, cfg, desc)
            if cfg.snapshot_every and state.step % cfg.snapshot_every == 0:
                state.snapshots.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            pbar.update(1)
            if eval_due(state, cfg, seconds=state.train_seconds + time.perf_counter() - t0):
                check_finite(loss_sum, since, state, cfg, desc)  # always before a checkpoint
                state.train_seconds += time.perf_counter() - t0
                row = evaluation_row(state, cfg, info, validation_metrics(model, net, task, cfg, amp), loss_sum, n_loss)
                loss_sum, n_loss, since = torch.zeros((), device=device), 0, state.step + 1
                state.stop_reason = stop_decision(state, cfg)
                if checkpoint is not None:
                    save_checkpoint(checkpoint, state, cfg, info, model, opt, gen, task)
                pbar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k.startswith("val_")}, refresh=False)
                t0 = time.perf_counter()
    finally:
        pbar.close()
    return finish(state, info, extra, trained_steps=state.step - step_at_start)
