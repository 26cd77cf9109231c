"""Study wiring: one module per family of notebooks, so a notebook builds its task, models and
training in one call and keeps only its question, figures and findings.

    looped.py          in-context regression with looped / standard bodies (five notebooks + loss_surface)
    family.py          the whole looped family at a profile: its run list, cost and pooled training
    selective_copy.py  the dilated-CNN selective-copy sweep (selective_copy, loss_surface)
    thinker.py         the latent thinker on algorithmic tasks (latent_thinker)
    lm.py              small language models on the story corpus (small_lms)
    grid.py            every body x every task, plain and looped (block_task_grid)

Each returns a `Study`: the task, the model configs, the training history (one row per
evaluation, every run) and the trained models keyed by (run name, seed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Study:
    task: Any
    configs: list
    history: pd.DataFrame
    models: dict
    train: dict = field(default_factory=dict)  # the TrainConfig keys every run used (seed aside)
    seeds: list = field(default_factory=list)
    task_for: Any = None  # model config -> the task that run trained on (when runs differ, e.g. loop curricula)
    train_for: Any = None  # model config -> its TrainConfig keys (when runs differ, e.g. their own step caps)

    def model(self, cfg, seed: int | None = None):
        return self.models[cfg.name, self.seeds[0] if seed is None else seed]


def eval_every(steps: int, evals: int) -> int:
    """Evaluation interval for about `evals` evaluations over `steps` (at least every step)."""
    return max(1, steps // max(1, evals))


def from_namespace(cls, ns: dict):
    """A typed settings object from a notebook's namespace: each field taken from `ns` when the
    notebook (or papermill) set it, else the class default; validated like a config."""
    return cls.load({f.name: ns[f.name] for f in dataclasses.fields(cls) if f.name in ns}, where="notebook parameters")
