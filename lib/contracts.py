"""The plug-in contracts: what a task, a loop body and a language-model backbone must provide.

These are `typing.Protocol`s, checked structurally (`isinstance(x, Task)` tests the required
methods only). A new task or architecture satisfies one of them in its own file and is added to
one registry: `lib.models.looped.BODIES` for loop bodies, `lib.models.lm.ARCHS` for language
models. Nothing else in the project needs to change.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Task(Protocol):
    """What the one training loop (lib.train.train) needs from a task.

    Required:
        train_batch(batch_size, gen, step) -> batch   a tuple/NamedTuple of tensors on the CPU,
                                                       drawn from `gen` only (seeded determinism)
        loss(model, batch) -> loss | (loss, stats)     the task owns its loss; `stats` (a dict of
                                                       detached tensors) goes to `after_step`
        evaluate(model) -> dict[str, float]            validation metrics, under no_grad
    Optional (looked up with hasattr):
        spec: tuple                                    what identifies the task in a checkpoint key
        after_step(stats) -> None                      the curriculum hook, called after each step
        state_dict() / load_state_dict(d)              curriculum progress, saved in checkpoints
        meta() -> dict                                 saved in checkpoints (e.g. a tokenizer)
    `spec` is required by `lib.sweep.train_sweep` (a run's identity), not by `train`.
    """

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> Any: ...

    def loss(self, model: Any, batch: Any) -> Any: ...

    def evaluate(self, model: Any) -> dict[str, float]: ...


@runtime_checkable
class LoopBody(Protocol):
    """A module that maps the state (B, N, e) -> (B, N, e) without changing its shape: what
    `lib.models.looped.Looped` runs b times. Registered by name in `lib.models.looped.BODIES`
    as a function LoopedConfig -> module."""

    def forward(self, h: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class StepBackbone(Protocol):
    """A language-model backbone (B, t, d) -> (B, t, d) that can also generate incrementally:
    step(h, state) feeds new positions h (B, n, d) after `state` (None at the start) and returns
    (outputs (B, n, d), new state). Registered in `lib.models.lm.ARCHS`."""

    def forward(self, h: torch.Tensor) -> torch.Tensor: ...

    def step(self, h: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...
