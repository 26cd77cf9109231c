"""The plug-in contracts: what a task, a sequence-mixing body and a language-model backbone provide.

These are `typing.Protocol`s, checked structurally (`isinstance(x, Task)` tests that the required
members exist; tests/test_contracts.py checks every task class). A new task satisfies `Task` (and
`GridTask` to join the block x task grid) in its own file; a new body is one file and one entry in
`lib.models.bodies.BODIES`, after which the looped studies, the grid and the language models can
all build it.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Task(Protocol):
    """What the one training loop (lib.train.train) needs from a task.

    Required:
        train_batch(batch_size, gen, step) -> batch   a tuple/NamedTuple of tensors drawn from `gen`
                                                       only (seeded determinism), on gen's device
                                                       (the training device when it draws there)
        loss(model, batch) -> loss | (loss, stats)     the task owns its loss; `stats` (a dict of
                                                       detached tensors) goes to `after_step`
        evaluate(model) -> dict[str, float]            validation metrics, under no_grad
        spec: tuple                                    what identifies the task in a checkpoint key
                                                       (lib.sweep.checkpoint_for)
    Optional (looked up with hasattr):
        after_step(stats) -> None                      the curriculum hook, called after each step
        state_dict() / load_state_dict(d)              curriculum progress, saved in checkpoints
        meta() -> dict                                 saved in checkpoints (e.g. a tokenizer)
    """

    spec: tuple

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> Any: ...

    def loss(self, model: Any, batch: Any) -> Any: ...

    def evaluate(self, model: Any) -> dict[str, float]: ...


@runtime_checkable
class GridTask(Task, Protocol):
    """A task of the block x task grid (lib/studies/grid.py): a sequence of `seq_len` positions, of
    token ids below `vocab` (0: vectors, read in by a linear layer), evaluated at any number of
    loop iterations (`iters=None`: the model's own)."""

    seq_len: int
    vocab: int

    def evaluate(self, model: Any, *, iters: int | None = None) -> dict[str, float]: ...


@runtime_checkable
class LoopBody(Protocol):
    """A module that maps the state (B, N, e) -> (B, N, e) without changing its shape: what the
    looping wrapper runs b times and what the grid and the language models stack their read-in and
    read-out around. Registered by name in `lib.models.bodies.BODIES`."""

    def forward(self, h: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class StepBackbone(LoopBody, Protocol):
    """A body that can also generate incrementally: step(h, state) feeds new positions h (B, n, d)
    after `state` (None at the start) and returns (outputs (B, n, d), new state). A language model
    generates only with such a body (lib.models.lm.LanguageModel.step)."""

    def step(self, h: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...
