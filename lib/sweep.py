"""Train a sweep: every model config x seed through the one training loop, with checkpoints.

The checkpoint of a run is keyed by study, run name, seed and a hash of the model, training
and task specs, so notebooks that build the same run share it (a study that needs another
study's models trains them when absent and loads them when present).

Small models use two CPU cores poorly from one process, so on CPU `workers=N` first trains the
missing runs in N spawned processes of cores/N threads each; the sequential pass then loads
their finished checkpoints. Each run gets its own copy of the task, so a curriculum's progress
(e.g. the adaptive target length) never carries over from one run to the next.
"""
from __future__ import annotations

import copy
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn as nn

from lib import device as devices
from lib.train import TrainConfig, build, checkpoint_path, train


def _checkpoint(study: str, mcfg, task, cfg: TrainConfig) -> Path:
    return checkpoint_path(study, f"{mcfg.name}-s{cfg.seed}", mcfg, cfg, *task.spec)


def _finished(path: Path, steps: int) -> bool:
    return path.exists() and torch.load(path, map_location="cpu", weights_only=False)["step"] >= steps


def _train_in_worker(model_cls, mcfg, task, cfg: TrainConfig, study: str, threads: int) -> str:
    torch.set_num_threads(threads)
    desc = f"{mcfg.name} seed {cfg.seed}"
    train(build(model_cls, mcfg, cfg.seed), task, cfg, checkpoint=_checkpoint(study, mcfg, task, cfg), desc=desc)
    return desc


def train_sweep(
    model_cls: Callable[..., nn.Module],
    configs: list,
    task: Any,
    train_cfg: dict,
    *,
    seeds: list[int],
    study: str,
    columns: Callable[[Any], dict] = lambda cfg: {},
    workers: int = 1,
) -> tuple[pd.DataFrame, dict[tuple[str, int], nn.Module]]:
    """Returns (history of every run, one row per evaluation; {(run name, seed): trained model}).

    `task` is a task object, or a function config -> task (e.g. a per-model curriculum).
    `workers` > 1 trains the missing runs in parallel processes (CPU only; ignored on a GPU).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    runs = [(mcfg, copy.deepcopy(task(mcfg) if callable(task) else task), TrainConfig.load({**train_cfg, "seed": seed}))
            for mcfg in configs for seed in seeds]
    device = devices.pick(runs[0][2].device) if runs else torch.device("cpu")
    if workers > 1 and device.type == "cpu":
        todo = [r for r in runs if not _finished(_checkpoint(study, *r), r[2].steps)]
        if len(todo) > 1:
            n = min(workers, len(todo))
            threads = max(1, (os.cpu_count() or 1) // n)
            with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
                done = list(pool.map(_train_in_worker, *zip(*[(model_cls, *r, study, threads) for r in todo])))
            print(f"trained {len(done)} runs in {n} processes of {threads} thread(s): {', '.join(done)}")
    histories, models = [], {}
    for mcfg, run_task, cfg in runs:
        model = build(model_cls, mcfg, cfg.seed)
        hist = train(
            model, run_task, cfg,
            desc=f"{mcfg.name} seed {cfg.seed}",
            checkpoint=_checkpoint(study, mcfg, run_task, cfg),
            extra={"model": type(model).__name__, "run": mcfg.name, **columns(mcfg), "params": model.n_params(),
                   "seed": cfg.seed, "device": devices.describe(device)},
        )
        histories.append(hist)
        models[mcfg.name, cfg.seed] = model.eval()
    return pd.concat(histories, ignore_index=True), models


def final_rows(history: pd.DataFrame, by: tuple[str, ...] = ("run", "seed")) -> pd.DataFrame:
    """The last evaluation of every run."""
    return history.sort_values("step").groupby(list(by)).tail(1).reset_index(drop=True)
