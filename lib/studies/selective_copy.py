"""The selective-copy study's wiring: task, model sweep and training settings from notebook
parameters, one function, so the selective_copy notebook and any study that reuses its
checkpoints (the loss-surface study) build identical runs, hence identical checkpoint keys.

    study = selective_copy.train(globals())                          # the notebook
    study = selective_copy.train(profile_parameters("selective_copy", "cpu"), names=[...])   # another study
"""
from __future__ import annotations

import math

from lib.models.conv_text import ConvTextConfig, ConvTextModel
from lib.studies import Study, eval_every
from lib.sweep import train_sweep
from lib.tasks.selective_copy import SelectiveCopy, SelectiveCopyConfig

STUDY = "selective_copy"


def model_configs(p: dict) -> list[ConvTextConfig]:
    """The sweep's model configs from the notebook's parameters."""
    return ConvTextConfig.sweep(p["sweep"], channels=p["channels"])


def runs(p: dict) -> tuple[SelectiveCopy, list[ConvTextConfig], dict]:
    """(task, model configs, TrainConfig keys) from the selective_copy notebook's parameters `p`."""
    task = SelectiveCopy(SelectiveCopyConfig(n_items=p["n_items"], area=p["area"], val_size=p["val_size"]))
    configs = model_configs(p)
    steps = math.ceil(p["samples"] / p["batch_size"])
    tcfg = dict(steps=steps, batch_size=p["batch_size"], lr=p["lr"], weight_decay=p["weight_decay"], warmup_steps=p["warmup_steps"],
                grad_clip=p["grad_clip"], eval_every=eval_every(steps, p["evals"]), device=p["device"], compile=p["compile"])
    return task, configs, tcfg


def train(p: dict, names: list[str] | None = None, seeds: list[int] | None = None) -> Study:
    """Train (or load) the sweep of `p`, or only the runs named in `names`."""
    task, configs, tcfg = runs(p)
    if names is not None:
        missing = sorted(set(names) - {c.name for c in configs})
        if missing:
            raise ValueError(f"runs {missing} are not in this selective-copy sweep; it has {[c.name for c in configs]}")
        configs = [c for c in configs if c.name in names]
    seeds = p["seeds"] if seeds is None else seeds
    history, models = train_sweep(ConvTextModel, configs, task, tcfg, seeds=seeds, study=STUDY, columns=ConvTextConfig.columns)
    return Study(task, configs, history, models, tcfg, list(seeds))
