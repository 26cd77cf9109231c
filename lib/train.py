"""The one training loop of the project.

Nothing here knows about a particular model or task. A task is any object with

    train_batch(batch_size, gen, step) -> batch     # a tuple/NamedTuple of tensors, on CPU
    loss(model, batch) -> scalar tensor              # the task owns its loss
    evaluate(model) -> dict[str, float]              # validation metrics, no grad
    state_dict() / load_state_dict(d)                # optional: progress to checkpoint (curricula)

The loop: AdamW, linear warmup + cosine decay (a pure function of the step), optional
gradient clipping, evaluation every `eval_every` steps (and at the start and end),
a progress bar, samples/s, a checkpoint after every evaluation (written to a temporary
file, then renamed) from which an interrupted run resumes exactly, and a clear error on
a non-finite loss. On a GPU it uses bf16 autocast and, if asked, torch.compile.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn as nn

from lib import device as devices
from lib.config import Config
from lib.paths import CHECKPOINTS, git_revision
from lib.progress import bar


@dataclass(frozen=True)
class TrainConfig(Config):
    steps: int = 1000
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
    amp: bool = True  # bf16 autocast, on CUDA only
    compile: bool = False  # torch.compile the model for training and evaluation
    snapshot_every: int = 0  # keep a copy of the weights every N steps in the checkpoint (0: none)

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
        devices.pick(self.device)  # raises on an unknown or unavailable device


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
    """A short stable hash of everything that defines a run (dataclass configs or plain values)."""
    blob = json.dumps([dataclasses.asdict(c) if dataclasses.is_dataclass(c) else c for c in configs], sort_keys=True, default=str)
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


def load_snapshots(checkpoint: Path) -> list[dict[str, torch.Tensor]]:
    """The weight snapshots a run kept (TrainConfig.snapshot_every), oldest first."""
    return torch.load(checkpoint, map_location="cpu", weights_only=False).get("snapshots", [])


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple):
        moved = [to_device(t, device) for t in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else tuple(moved)
    return batch


def _autocast(device: torch.device, cfg: TrainConfig):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.amp else nullcontext()


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
    excluded), plus the constant `extra` columns (e.g. the swept settings). With a
    `checkpoint` path the run resumes from it when present, and returns at once when
    that run had finished.
    """
    device = devices.pick(cfg.device)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    state = {"step": 0, "train_seconds": 0.0, "history": [], "snapshots": []}
    if checkpoint is not None and Path(checkpoint).exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        state = {k: saved.get(k, state[k]) for k in state}
        if saved.get("task") is not None:
            task.load_state_dict(saved["task"])

    def history() -> pd.DataFrame:
        df = pd.DataFrame(state["history"])
        for k, v in (extra or {}).items():
            df[k] = [v] * len(df)
        return df

    if state["step"] >= cfg.steps:
        return history()

    # A model whose whole forward cannot be traced (e.g. a loop over a runtime count) compiles its parts.
    net = (model.compile_parts() if hasattr(model, "compile_parts") else torch.compile(model)) if cfg.compile else model
    amp = _autocast(device, cfg)

    def evaluate(loss_sum: float, n_loss: int) -> dict:
        model.eval()
        with amp:
            metrics = task.evaluate(net)
        model.train()
        step = state["step"]
        row = {
            "step": step,
            "samples": step * cfg.batch_size,
            "lr": lr_at(max(step - 1, 0), cfg),
            "train_loss": loss_sum / n_loss if n_loss else float("nan"),
            **metrics,
            "samples_per_s": step * cfg.batch_size / state["train_seconds"] if state["train_seconds"] else float("nan"),
            "train_minutes": state["train_seconds"] / 60,
        }
        state["history"].append(row)
        return row

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
                    "git_revision": git_revision(),
                },
                Path(checkpoint),
            )

    model.train()
    if state["step"] == 0:
        evaluate(0.0, 0)
    loss_sum, n_loss = 0.0, 0
    pbar = bar(cfg.steps, desc=desc, initial=state["step"])
    t0 = time.perf_counter()
    try:
        while state["step"] < cfg.steps:
            step = state["step"]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            batch = to_device(task.train_batch(cfg.batch_size, gen, step), device)
            with amp:
                loss = task.loss(net, batch)
            if not torch.isfinite(loss):
                last = state["history"][-1]["step"] if state["history"] else 0
                raise FloatingPointError(
                    f"{desc or 'training'}: loss is {loss.item()} at step {step} (lr {lr_at(step, cfg):.3g}); "
                    f"stopped. The checkpoint (if any) still holds step {last}. Try a lower lr or grad_clip."
                )
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_sum, n_loss = loss_sum + loss.item(), n_loss + 1
            state["step"] = step + 1
            if cfg.snapshot_every and state["step"] % cfg.snapshot_every == 0:
                state["snapshots"].append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            pbar.update(1)
            if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
                state["train_seconds"] += time.perf_counter() - t0
                row = evaluate(loss_sum, n_loss)
                loss_sum, n_loss = 0.0, 0
                save()
                pbar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k.startswith("val_")}, refresh=False)
                t0 = time.perf_counter()
    finally:
        pbar.close()
    return history()
