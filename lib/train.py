"""The one training loop of the project.

Nothing here knows about a particular model or task. A task is any object that satisfies
`lib.contracts.Task`:

    train_batch(batch_size, gen, step) -> batch     # a tuple/NamedTuple of tensors, drawn on gen.device
    loss(model, batch) -> loss or (loss, stats)      # the task owns its loss
    evaluate(model) -> dict[str, float]              # validation metrics, no grad
    after_step(stats)                                # optional: a curriculum hears the batch's stats
    state_dict() / load_state_dict(d)                # optional: progress to checkpoint (curricula)

The loop: AdamW, linear warmup + cosine decay (a pure function of the step), optional
gradient clipping, evaluation every `eval_every` steps (and at the start and end),
a progress bar, samples/s, a checkpoint after every evaluation (written to a temporary
file, then renamed) from which an interrupted run resumes exactly, and a clear error on
a non-finite loss. Precision (`amp`) and `compile` are resolved per device (lib.device): bf16 autocast
only where it is native (sm >= 8.0), torch.compile only where Triton runs (sm >= 7.0); an explicit
request the device cannot honour is a one-line error. Between evaluations the loop never waits on
the device: the training loss is summed there and read at evaluation, and its finiteness is checked
there too (every `finite_every` steps if set, and always before a checkpoint).

Stopping: `steps` is the cap. Optionally a convergence rule (`converge_metric` improved by less
than `converge_tol`, relative, over the last `converge_window` evaluations, checked from
`min_steps` on) and a wall-clock budget (`max_minutes` of training, evaluation excluded) stop
earlier. The history's `stop_reason` says which: converged / budget / max_steps.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle
import time
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn as nn

from lib import device as devices
from lib import provenance
from lib.config import Config
from lib.paths import CHECKPOINTS, git_revision
from lib.progress import bar

STOP_REASONS = ("converged", "budget", "max_steps")
# Settings that change how fast a run goes but not what it learns: recorded in the checkpoint and
# the history, never hashed into the run's identity, so moving a run to a GPU or turning compile on
# reuses it. bf16 autocast does change results slightly; a report states the precision its runs used.
RECORDED_ONLY = ("device", "amp", "compile", "finite_every")


@dataclass(frozen=True)
class TrainConfig(Config):
    steps: int = 1000  # the cap (max steps); a stopping rule below may end a run earlier
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    schedule: str = "cosine"  # 'cosine' (after warmup) or 'constant'
    grad_clip: float | None = None  # max global grad norm; None = no clipping
    eval_every: int = 100
    seed: int = 0  # data stream (and, through build(), model init)
    device: str = "auto"
    amp: str | bool = "auto"  # auto | bf16 | fp16 | off (true = auto, false = off): see lib.device.resolve_precision
    compile: str | bool = "auto"  # auto | true | false: see lib.device.resolve_compile (auto: on CUDA sm >= 7.0 only)
    snapshot_every: int = 0  # keep a copy of the weights every N steps in the checkpoint (0: none)
    converge_metric: str | None = None  # e.g. 'val_loss': stop when it stops improving (None: no rule)
    converge_mode: str = "min"  # 'min' (lower is better) or 'max' (e.g. an accuracy)
    converge_window: int = 5  # evaluations over which the improvement is measured
    converge_tol: float = 0.01  # relative improvement below which the run has converged
    min_steps: int = 0  # the convergence rule is not applied before this step (plateaus at the start)
    max_minutes: float | None = None  # wall-clock budget of training (evaluation excluded)
    finite_every: int = 0  # also check the loss for NaN/inf every N steps (0: at evaluations only; each check waits on the device)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError(f"steps, batch_size, eval_every must be >= 1, got {self.steps}, {self.batch_size}, {self.eval_every}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ValueError(f"need lr > 0, 0 <= min_lr_ratio <= 1, warmup_steps >= 0; got {self.lr}, {self.min_lr_ratio}, {self.warmup_steps}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be one of ['constant', 'cosine'], got {self.schedule!r}")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0, got {self.snapshot_every}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.converge_mode not in ("min", "max"):
            raise ValueError(f"converge_mode must be one of ['max', 'min'], got {self.converge_mode!r}")
        if self.converge_window < 1 or self.converge_tol < 0 or self.min_steps < 0:
            raise ValueError(f"need converge_window >= 1, converge_tol >= 0, min_steps >= 0; got "
                             f"{self.converge_window}, {self.converge_tol}, {self.min_steps}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0 or None, got {self.max_minutes}")
        if self.finite_every < 0:
            raise ValueError(f"finite_every must be >= 0, got {self.finite_every}")
        devices.check_precision_key(self.amp)
        devices.check_compile_key(self.compile)
        devices.pick(self.device)  # raises on an unknown or unavailable device

    def identity(self) -> dict:
        """The fields that change a run's result (everything but RECORDED_ONLY)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RECORDED_ONLY}


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


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at `step`: linear warmup to cfg.lr, then cosine to min_lr_ratio*lr at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    floor = cfg.min_lr_ratio * cfg.lr
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


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

    The temporary name is per process, so two processes training the same run (e.g. two
    notebooks under pytest-xdist) each rename a complete file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read: the message names the file and what to do."""


def load_checkpoint(path: Path | str, map_location: Any = "cpu") -> dict:
    """A checkpoint written by `train`, loaded with weights_only=True: it holds only tensors, plain
    containers, numbers and strings, so a file from an untrusted source cannot run code."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
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
    return saved


def load_snapshots(checkpoint: Path) -> list[dict[str, torch.Tensor]]:
    """The weight snapshots a run kept (TrainConfig.snapshot_every), oldest first."""
    return load_checkpoint(checkpoint).get("snapshots", [])


def finished(saved: dict, cfg: TrainConfig) -> bool:
    """Did the run in this checkpoint stop (by any rule, or at the cap)?"""
    return saved.get("stop_reason") is not None or saved["step"] >= cfg.steps


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


def train(
    model: nn.Module,
    task: Any,
    cfg: TrainConfig,
    *,
    checkpoint: Path | None = None,
    desc: str = "",
    extra: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Train `model` on `task`; return the history (one row per evaluation).

    Columns: step, samples, lr, train_loss (mean since the previous row), the task's
    evaluation metrics, samples_per_s and train_minutes (training only, evaluation
    excluded), git_revision (the code that trained up to that row), stop_reason (the run's,
    on every row; empty while it has not stopped), plus the constant `extra` columns (e.g. the
    swept settings). With a `checkpoint` path the run resumes from it when present, and returns
    at once when that run had finished.
    """
    device = devices.pick(cfg.device)
    precision, compiled = devices.resolve_precision(cfg.amp, device), devices.resolve_compile(cfg.compile, device)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)  # tasks draw batches on the training device
    state = {"step": 0, "train_seconds": 0.0, "history": [], "snapshots": [], "stop_reason": None, "revisions": []}
    revision = git_revision()
    code = provenance.dependencies(type(model).__module__, type(task).__module__)  # the files this run's result depends on
    if checkpoint is not None and Path(checkpoint).exists():
        saved = load_checkpoint(checkpoint, map_location=device)
        revisions = saved.get("revisions") or [saved.get("git_revision", "unknown")]
        if finished(saved, cfg) and provenance.retrain_stale() and provenance.stale_for(revisions, saved.get("code", code)):
            print(f"{desc or checkpoint}: trained at {', '.join(revisions)}, code changed since: retraining (--retrain-stale)")
            Path(checkpoint).unlink()
        else:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            try:
                gen.set_state(saved["generator"].cpu())
            except RuntimeError:  # a checkpoint from another kind of device: its stream cannot continue here
                gen.manual_seed(cfg.seed + saved["step"])
                print(f"{desc or checkpoint}: generator state from another device; batches reseeded at step {saved['step']}")
            state = {k: saved.get(k, state[k]) for k in state}
            state["revisions"] = revisions
            if saved.get("task") is not None:
                task.load_state_dict(saved["task"])
    step_at_start = state["step"]

    def history() -> pd.DataFrame:
        df = pd.DataFrame(state["history"])
        df["stop_reason"] = state["stop_reason"] or ""
        for k, v in (extra or {}).items():
            df[k] = [v] * len(df)
        return df

    def record() -> None:
        provenance.record({
            "desc": desc, "checkpoint": str(checkpoint) if checkpoint else None, "trained_steps": state["step"] - step_at_start,
            "step": state["step"], "stop_reason": state["stop_reason"], "train_minutes": state["train_seconds"] / 60,
            "revisions": state["revisions"] or [revision], "device": devices.describe(device),
            "amp": precision, "compile": compiled, "code": code,
        })

    if state["stop_reason"] is not None or state["step"] >= cfg.steps:
        state["stop_reason"] = state["stop_reason"] or "max_steps"
        record()
        return history()

    # A model whose whole forward cannot be traced (e.g. a loop over a runtime count) compiles its parts.
    net = (model.compile_parts() if hasattr(model, "compile_parts") else torch.compile(model)) if compiled else model
    amp = _autocast(device, precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")  # fp16 needs loss scaling (it syncs in step)

    def evaluate(loss_sum, n_loss: int) -> dict:
        model.eval()
        with amp:
            metrics = task.evaluate(net)
        model.train()
        if cfg.converge_metric is not None and cfg.converge_metric not in metrics:
            raise ValueError(f"converge_metric {cfg.converge_metric!r} is not a metric of this task; it reports {sorted(metrics)}")
        step = state["step"]
        row = {
            "step": step,
            "samples": step * cfg.batch_size,
            "lr": lr_at(max(step - 1, 0), cfg),
            "train_loss": float(loss_sum) / n_loss if n_loss else float("nan"),  # the one read of the summed loss
            **metrics,
            "samples_per_s": step * cfg.batch_size / state["train_seconds"] if state["train_seconds"] else float("nan"),
            "train_minutes": state["train_seconds"] / 60,
            "git_revision": revision,
            "precision": precision,
        }
        state["history"].append(row)
        if revision not in state["revisions"]:
            state["revisions"].append(revision)
        return row

    def stop_reason() -> str | None:
        if state["step"] >= cfg.steps:
            return "max_steps"
        if cfg.max_minutes is not None and state["train_seconds"] >= 60 * cfg.max_minutes:
            return "budget"
        if cfg.converge_metric is not None and state["step"] >= cfg.min_steps:
            values = [r[cfg.converge_metric] for r in state["history"] if r["step"] > 0]
            if converged(values, cfg.converge_window, cfg.converge_tol, cfg.converge_mode):
                return "converged"
        return None

    def save():
        if checkpoint is not None:
            save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "generator": gen.get_state(),
                    "task": task.state_dict() if hasattr(task, "state_dict") else None,  # e.g. a curriculum's progress
                    **state,
                    "config": {"train": dataclasses.asdict(cfg), "model": dataclasses.asdict(model.cfg) if hasattr(model, "cfg") else None},
                    # enough to rebuild the model without the notebook (lib.generate): classes by import path
                    "model_class": f"{type(model).__module__}:{type(model).__qualname__}",
                    "model_config_class": f"{type(model.cfg).__module__}:{type(model.cfg).__qualname__}" if hasattr(model, "cfg") else None,
                    "task_meta": task.meta() if hasattr(task, "meta") else None,  # e.g. a language model's tokenizer
                    "git_revision": revision,
                    "code": code,  # the files under lib/ this run depends on (provenance.dependencies)
                },
                Path(checkpoint),
            )

    model.train()
    if state["step"] == 0:
        evaluate(0.0, 0)
    loss_sum, n_loss, since = torch.zeros((), device=device), 0, state["step"] + 1  # since: first step summed

    def check_finite(step: int) -> None:
        """Read the summed loss once: NaN/inf anywhere in steps since..step makes the sum non-finite."""
        if not torch.isfinite(loss_sum):
            last = state["history"][-1]["step"] if state["history"] else 0
            raise FloatingPointError(
                f"{desc or 'training'}: the loss became {float(loss_sum)} between steps {since} and {step} (lr {lr_at(step, cfg):.3g}); "
                f"stopped. The checkpoint (if any) still holds step {last}. Try a lower lr or grad_clip.")

    pbar = bar(cfg.steps, desc=desc, initial=state["step"])
    t0 = time.perf_counter()
    try:
        while state["stop_reason"] is None:
            step = state["step"]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            batch = to_device(task.train_batch(cfg.batch_size, gen, step), device)
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
            loss_sum, n_loss = loss_sum + loss.detach().float(), n_loss + 1  # stays on the device
            state["step"] = step + 1
            if cfg.finite_every and state["step"] % cfg.finite_every == 0:
                check_finite(state["step"])
            if cfg.snapshot_every and state["step"] % cfg.snapshot_every == 0:
                state["snapshots"].append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            pbar.update(1)
            over_budget = cfg.max_minutes is not None and state["train_seconds"] + time.perf_counter() - t0 >= 60 * cfg.max_minutes
            if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps or over_budget:
                check_finite(state["step"])  # always before a checkpoint
                state["train_seconds"] += time.perf_counter() - t0
                row = evaluate(loss_sum, n_loss)
                loss_sum, n_loss, since = torch.zeros((), device=device), 0, state["step"] + 1
                state["stop_reason"] = stop_reason()
                save()
                pbar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k.startswith("val_")}, refresh=False)
                t0 = time.perf_counter()
    finally:
        pbar.close()
    record()
    return history()
