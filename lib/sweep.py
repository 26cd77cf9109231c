"""Train a sweep: every model config x seed through the one training loop, with checkpoints.

The checkpoint of a run is keyed by study, run name, seed and a hash of the model, training
and task specs, so notebooks that build the same run share it (a study that needs another
study's models trains them when absent and loads them when present).
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import torch.nn as nn

from lib import device as devices
from lib.train import TrainConfig, build, checkpoint_path, train


def train_sweep(
    model_cls: Callable[..., nn.Module],
    configs: list,
    task: Any,
    train_cfg: dict,
    *,
    seeds: list[int],
    study: str,
    columns: Callable[[Any], dict] = lambda cfg: {},
) -> tuple[pd.DataFrame, dict[tuple[str, int], nn.Module]]:
    """Returns (history of every run, one row per evaluation; {(run name, seed): trained model}).

    `task` is a task object, or a function config -> task (e.g. a per-model curriculum).
    """
    histories, models = [], {}
    for mcfg in configs:
        run_task = task(mcfg) if callable(task) else task
        for seed in seeds:
            cfg = TrainConfig.load({**train_cfg, "seed": seed})
            model = build(model_cls, mcfg, seed)
            hist = train(
                model, run_task, cfg,
                desc=f"{mcfg.name} seed {seed}",
                checkpoint=checkpoint_path(study, f"{mcfg.name}-s{seed}", mcfg, cfg, *run_task.spec),
                extra={"model": type(model).__name__, "run": mcfg.name, **columns(mcfg), "params": model.n_params(),
                       "seed": seed, "device": devices.describe(devices.pick(cfg.device))},
            )
            histories.append(hist)
            models[mcfg.name, seed] = model.eval()
    return pd.concat(histories, ignore_index=True), models


def final_rows(history: pd.DataFrame, by: tuple[str, ...] = ("run", "seed")) -> pd.DataFrame:
    """The last evaluation of every run."""
    return history.sort_values("step").groupby(list(by)).tail(1).reset_index(drop=True)
