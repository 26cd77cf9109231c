"""The selective-copy study's wiring: task, model sweep and training settings from the notebook's
parameters (`Settings`), one function, so the selective_copy notebook and any study that reuses its
checkpoints (the loss-surface study) build identical runs, hence identical checkpoint keys.

    study = selective_copy.train(globals())                          # the notebook
    study = selective_copy.train(profile_parameters("selective_copy", "cpu"), names=[...])   # another study
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from lib.config import expand
from lib.device import check_compile_key
from lib.models.conv_text import ConvTextConfig, ConvTextModel
from lib.studies import Study, StudySettings, check_seed_list, eval_every, first_and_last, from_namespace
from lib.sweep import train_sweep
from lib.tasks.selective_copy import SelectiveCopy, SelectiveCopyConfig
from lib.train import TrainConfig

STUDY = "selective_copy"


@dataclass(frozen=True)
class Settings(StudySettings):
    """The selective_copy notebook's parameters (its `parameters` cell holds its defaults)."""

    # task (reference: 10 letters in 40 cells)
    n_items: int = 10
    area: int = 40
    val_size: int = 500
    # models: a sweep (list of runs and/or {"grid": {...}}) over ConvTextConfig keys
    channels: int = 64
    sweep: list | dict = field(default_factory=lambda: [{"layers": 6, "kernel_size": 9, "dilation": 1}])
    seeds: list[int] = field(default_factory=lambda: [0])
    # training: steps = ceil(samples / batch_size)
    samples: int = 6_400
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    grad_clip: float | None = None
    evals: int = 4  # validation points per run
    compile: str | bool = "auto"
    # pictures
    n_show: int = 6  # validation samples drawn per picture
    receptive_field_specs: list[list] = field(default_factory=list)  # [layers, kernel_size, dilation, cells, from_left]

    def __post_init__(self):
        super().__post_init__()
        SelectiveCopyConfig(n_items=self.n_items, area=self.area, val_size=self.val_size)  # validates the task's sizes
        if not self.model_configs():  # validates the sweep
            raise ValueError("sweep is empty; give at least one model (a run or a {grid: ...})")
        check_seed_list(self.seeds, "seeds")
        for key in ("samples", "batch_size", "evals", "n_show"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} = {getattr(self, key)}; must be >= 1")
        if bad := [s for s in self.receptive_field_specs if len(s) != 5]:
            raise ValueError(f"receptive_field_specs: each is [layers, kernel_size, dilation, cells, from_left], got {bad[0]}")
        check_compile_key(self.compile)
        self.train_config()  # validates the training keys

    def model_configs(self) -> list[ConvTextConfig]:
        return ConvTextConfig.sweep(self.sweep, channels=self.channels)

    def train_config(self, run: str | None = None) -> TrainConfig:
        """Every run's TrainConfig (seed 0): the same for each run of the sweep."""
        steps = math.ceil(self.samples / self.batch_size)
        return TrainConfig(steps=steps, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           warmup_steps=self.warmup_steps, grad_clip=self.grad_clip, eval_every=eval_every(steps, self.evals),
                           device=self.device, compile=self.compile)

    def dry_changes(self) -> dict:
        batch = min(self.batch_size, 4)
        return {**super().dry_changes(), "sweep": first_and_last(expand(self.sweep)), "seeds": self.seeds[:1],
                "batch_size": batch, "samples": 2 * batch, "evals": 1, "warmup_steps": 0, "val_size": min(self.val_size, 64),
                "n_show": min(self.n_show, 2), "receptive_field_specs": self.receptive_field_specs[:1]}


def settings(p: dict | Settings) -> Settings:
    """The study's settings from a notebook's namespace or a profile's parameters (or as given)."""
    return p if isinstance(p, Settings) else from_namespace(Settings, p)


def model_configs(p: dict | Settings) -> list[ConvTextConfig]:
    """The sweep's model configs from the notebook's parameters."""
    return settings(p).model_configs()


def runs(p: dict | Settings) -> tuple[SelectiveCopy, list[ConvTextConfig], TrainConfig]:
    """(task, model configs, the TrainConfig every run trains with, seed aside) from the
    selective_copy notebook's parameters `p`."""
    s = settings(p)
    return make_task(s), s.model_configs(), s.train_config()


def make_task(s: Settings) -> SelectiveCopy:
    return SelectiveCopy(SelectiveCopyConfig(n_items=s.n_items, area=s.area, val_size=s.val_size))


def train(p: dict | Settings, names: list[str] | None = None, seeds: list[int] | None = None) -> Study:
    """Train (or load) the sweep of `p`, or only the runs named in `names`."""
    s = settings(p)
    task, configs, tcfg = make_task(s), s.model_configs(), s.train_config()
    if names is not None:
        missing = sorted(set(names) - {c.name for c in configs})
        if missing:
            raise ValueError(f"runs {missing} are not in this selective-copy sweep; it has {[c.name for c in configs]}")
        configs = [c for c in configs if c.name in names]
    seeds = s.seeds if seeds is None else seeds
    history, models = train_sweep(ConvTextModel, configs, task, tcfg, seeds=seeds, study=STUDY, columns=ConvTextConfig.columns,
                                  **s.sweep_options())
    return Study(task, configs, history, models, tcfg, list(seeds))
