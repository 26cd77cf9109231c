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

Each notebook's parameters are one typed settings class, a `StudySettings` (below), named in the
notebook's metadata (`"seqlab": {"settings": "lib.studies.selective_copy:Settings"}`). The runner
(lib.run, through lib.notebooks) loads a YAML with that class before any kernel starts, and asks it
for the dry-run settings; the study builds its TrainConfig objects from it:

    YAML -> Settings.load(...) (types, names, ranges)  -> settings.train_config(run) -> TrainConfig
                               settings.dry_run()       -> the same class, a few steps on the CPU
                               settings.sweep_options() -> how lib.sweep trains missing runs
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lib.config import Config
from lib.sweep import BACKENDS, check_seeds
from lib.train import TrainConfig


@dataclass
class Study:
    task: Any
    configs: list
    history: pd.DataFrame
    models: dict
    train: TrainConfig | None = None  # the TrainConfig every run used (seed aside)
    seeds: list = field(default_factory=list)
    task_for: Any = None  # model config -> the task that run trained on (when runs differ, e.g. loop curricula)
    train_for: Any = None  # model config -> its TrainConfig (when runs differ, e.g. their own step caps)

    def model(self, cfg, seed: int | None = None):
        return self.models[cfg.name, self.seeds[0] if seed is None else seed]


@dataclass(frozen=True)
class StudySettings(Config):
    """The protocol of a notebook's settings: the runner is generic over it.

    A subclass is a frozen dataclass whose fields are every parameter of its notebook's
    `parameters` cell (that cell keeps the notebook's own defaults; a YAML replaces them). Its
    `__post_init__` checks what a config can get wrong, each error naming the key and what is
    allowed (names of bodies, tasks and runs, ranges), and calls `super().__post_init__()`. It
    implements:

        train_config(run) -> TrainConfig   the training settings of one run (seed 0; a sweep sets
                                           each seed with dataclasses.replace(cfg, seed=s))
        dry_run() -> the same class        this profile's shapes and code paths with the work cut to
                                           a few steps, one seed and a couple of runs, on the CPU:
                                           a subclass extends dry_changes() (start from
                                           super().dry_changes()), applied in one replace, so the
                                           cut settings are validated like any others

    and inherits the sweep backend below: `processes` trains missing runs in `workers` CPU
    processes; `ray` runs each as a Ray task on a local Ray or the cluster at `ray_address`, with
    `gpus_per_run` of a GPU each (lib.sweep.train_missing).
    """

    backend: str = "processes"  # processes | ray
    ray_address: str | None = None  # ray: 'auto', 'host:port' or 'ray://host:10001'; None: a local Ray started here
    gpus_per_run: float = 0.0  # ray: the GPU share each run asks for
    workers: int = 1  # runs trained side by side (processes: on CPU only; ray: each gets cores/workers CPUs)
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend = {self.backend!r}; allowed {list(BACKENDS)}")
        if self.backend != "ray" and (self.ray_address is not None or self.gpus_per_run):
            raise ValueError(f"ray_address and gpus_per_run apply to backend 'ray'; backend is {self.backend!r}")
        if not (math.isfinite(self.gpus_per_run) and self.gpus_per_run >= 0):
            raise ValueError(f"gpus_per_run = {self.gpus_per_run}; must be a finite number >= 0")
        if self.workers < 1:
            raise ValueError(f"workers = {self.workers}; must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device = {self.device!r}; allowed ['auto', 'cpu', 'cuda']")

    @classmethod
    def load(cls, raw, *, where: str = "", label: str | None = ""):
        """As Config.load; an error names the key alone (`where` names the notebook's config)."""
        return super().load(raw, where=where, label=label)

    def train_config(self, run: str | None = None) -> TrainConfig:
        raise NotImplementedError(f"{type(self).__name__} has no train_config")

    def dry_run(self):
        """These settings as a dry run: dry_changes() applied, validated again."""
        return dataclasses.replace(self, **self.dry_changes())

    def dry_changes(self) -> dict:
        """Local and small: on the CPU, one worker, no Ray, no compile (Triton and the C++ compiler
        take minutes per model; the compile path has its own test)."""
        local = {"device": "cpu", "workers": 1, "backend": "processes", "ray_address": None, "gpus_per_run": 0.0}
        return {**local, "compile": False} if "compile" in self.names() else local

    def sweep_options(self) -> dict:
        """The keyword arguments of lib.sweep.train_sweep / train_missing that say how runs train."""
        return {"workers": self.workers, "backend": self.backend, "ray_address": self.ray_address, "gpus_per_run": self.gpus_per_run}

    def parameters(self) -> dict:
        """The fields as notebook parameters (lists for tuples, as a YAML gives them)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def first_and_last(runs: list) -> list:
    """A dry run's cut of a list of runs: the first and the last."""
    return list(runs) if len(runs) <= 2 else [runs[0], runs[-1]]


def check_seed_list(seeds: Any, key: str) -> None:
    """A list of seeds: at least one, each once."""
    if not seeds:
        raise ValueError(f"{key} is empty; give at least one")
    check_seeds(seeds, key)


def eval_every(steps: int, evals: int) -> int:
    """Evaluation interval for about `evals` evaluations over `steps` (at least every step)."""
    return max(1, steps // max(1, evals))


def from_namespace(cls, ns: dict):
    """A typed settings object from a notebook's namespace: each field taken from `ns` when the
    notebook (or papermill) set it, else the class default; validated like a config."""
    return cls.load({f.name: ns[f.name] for f in dataclasses.fields(cls) if f.name in ns}, where="notebook parameters")
