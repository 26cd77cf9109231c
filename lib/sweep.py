"""Train a sweep: every model config x seed through the one training loop, with checkpoints.

The checkpoint of a run is keyed by study, run name, seed and a hash of the model, training
and task specs, so notebooks that build the same run share it (a study that needs another
study's models trains them when absent and loads them when present).

Small models use two CPU cores poorly from one process, so on CPU `workers=N` first trains the
missing runs in N spawned processes of cores/N threads each; the sequential pass then loads
their finished checkpoints. With `batch_seeds` on (TrainConfig; auto: on CUDA), the runs that
differ only by seed and lr train instead as one batched model per group (lib.batched), into the
same checkpoints. Each run gets its own copy of the task, so a curriculum's progress (e.g. the
adaptive target length) never carries over from one run to the next.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn as nn

from lib import batched
from lib import device as devices
from lib import progress, provenance
from lib.procs import check_reachable, die_with_parent, run_lock
from lib.train import TrainConfig, build, checkpoint_path, finished, load_checkpoint, run_id, train


def checkpoint_for(study: str, mcfg: Any, task: Any, cfg: TrainConfig) -> Path:
    """The checkpoint of one run: checkpoints/<study>/<run name>-s<seed>-<hash>.pt.

    The hash covers the model config, the task's `spec` and the training settings that change
    the result (TrainConfig.identity: not device, amp or compile). Every study that trains or
    loads a run finds it through this one function.
    """
    return checkpoint_path(study, f"{mcfg.name}-s{cfg.seed}", mcfg, cfg, *task.spec)


def run_identity(study: str, mcfg: Any, task: Any, cfg: TrainConfig) -> dict:
    """The run a checkpoint must hold to be loaded as this one (lib.provenance.identity_mismatch):
    study, run name, seed and hash, stored in the checkpoint; the model config and the training
    settings for checkpoints written before identities were stored."""
    return {"study": study, "run": mcfg.name, "seed": cfg.seed, "hash": run_id(mcfg, cfg, *task.spec),
            "model": dataclasses.asdict(mcfg), "train": cfg.identity()}


def check_seeds(seeds: Any, key: str = "seeds") -> None:
    """Each seed once: a repeated seed would count one run twice in every mean and interval."""
    if not isinstance(seeds, (list, tuple)):
        return
    dup: list = []
    for i, s in enumerate(seeds):
        if s in seeds[:i] and s not in dup:
            dup.append(s)
    if dup:
        raise ValueError(f"{key} = {list(seeds)} repeats {dup}; give each seed once")


def _finished(path: Path, cfg: TrainConfig, identity: dict | None = None) -> bool:
    """A finished run to load, not to train: finished, and (under --retrain-stale) not trained at a
    revision whose code it depends on has changed since (those the workers retrain too)."""
    if not path.exists():
        return False
    saved = load_checkpoint(path, identity=identity)
    return finished(saved, cfg) and not provenance.to_retrain(saved)


def _worker_init(parent: int, progress_queue) -> None:
    die_with_parent(parent)  # a worker whose parent died while it started exits too
    progress.attach(progress_queue)  # bars and phase lines go to the parent, which prints each once


def _train_in_worker(model_cls, mcfg, task, cfg: TrainConfig, study: str, threads: int) -> str:
    torch.set_num_threads(threads)
    desc = f"{mcfg.name} seed {cfg.seed}"
    path = checkpoint_for(study, mcfg, task, cfg)
    with run_lock(path):
        train(build(model_cls, mcfg, cfg.seed), task, cfg, checkpoint=path, desc=desc, identity=run_identity(study, mcfg, task, cfg))
    return desc


BACKENDS = ("processes", "ray")


def train_missing(model_cls, runs: list, study: str, workers: int, cost: Callable[[Any], float] | None = None,
                  backend: str = "processes", ray_address: str | None = None, gpus_per_run: float = 0.0) -> list[str]:
    """Train the unfinished runs [(model config, task, TrainConfig)] side by side, longest first
    when `cost` estimates a run's cost. Returns the runs trained; the caller's sequential pass then
    loads them (and trains anything left).

    processes: `workers` spawned CPU processes of cores/workers threads each (a no-op on a GPU or
    with workers = 1). ray: one Ray task per run, requesting cores/workers CPUs (or `gpus_per_run`
    of a GPU), on a local Ray started here or the cluster at `ray_address` ('auto', 'ray://host:10001');
    every worker must see the checkpoint folder (set SEQLAB_CHECKPOINTS to a shared path).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if runs and batched.enabled(runs[0][2]):
        return _train_batched(model_cls, runs, study)
    if not runs or (backend == "processes" and (workers <= 1 or devices.pick(runs[0][2].device).type != "cpu")):
        return []
    todo = [r for r in runs if not _finished(checkpoint_for(study, *r), r[2], run_identity(study, *r))]
    if cost is not None:
        todo.sort(key=lambda r: -cost(r[0]))
    if backend == "ray":
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        return _train_with_ray(model_cls, todo, study, workers, threads, ray_address, gpus_per_run) if todo else []
    if len(todo) < 2:
        return []
    n = min(workers, len(todo))
    threads = max(1, (os.cpu_count() or 1) // n)
    progress.phase(f"training {len(todo)} runs in {n} worker processes of {threads} thread(s)")
    ctx = multiprocessing.get_context("spawn")
    with progress.relay(ctx) as relay, ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init,
                                                           initargs=(os.getpid(), relay.queue)) as pool:
        done = list(pool.map(_train_in_worker, *zip(*[(model_cls, *r, study, threads) for r in todo])))
    print(f"trained {len(done)} runs in {n} processes of {threads} thread(s): {', '.join(done)}")
    return done


def _train_batched(model_cls, runs: list, study: str) -> list[str]:
    """Train the unfinished runs that differ only by seed and lr as one batched model per group
    (lib.batched); a run alone in its group, or whose task cannot be batched, is left to the caller."""
    groups: dict[str, dict[Path, tuple]] = {}
    for r in runs:
        path = checkpoint_for(study, *r)
        if batched.can_batch(r[1]) and not _finished(path, r[2], run_identity(study, *r)):
            groups.setdefault(batched.group_key(*r), {})[path] = r
    done, n_groups = [], 0
    for group in (g for g in groups.values() if len(g) > 1):
        descs = [f"{mcfg.name} seed {cfg.seed}" for mcfg, _, cfg in group.values()]
        with contextlib.ExitStack() as locks:
            for path in sorted(group):
                locks.enter_context(run_lock(path))
            batched.train_batched([build(model_cls, mcfg, cfg.seed) for mcfg, _, cfg in group.values()],
                                  [copy.deepcopy(task) for _, task, _ in group.values()], [cfg for _, _, cfg in group.values()],
                                  checkpoints=list(group), descs=descs)
        done, n_groups = done + descs, n_groups + 1
    if done:
        print(f"trained {len(done)} runs as {n_groups} batched group(s): {', '.join(done)}")
    return done


def _train_with_ray(model_cls, todo: list, study: str, workers: int, threads: int, address: str | None,
                    gpus_per_run: float) -> list[str]:
    import ray

    from lib.paths import CHECKPOINTS

    if not ray.is_initialized():
        if address:
            check_reachable(address)  # Ray itself retries an unreachable address for minutes
        kw = {"address": address} if address else {"num_cpus": max(1, workers) * threads}
        ray.init(**kw, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"SEQLAB_CHECKPOINTS": str(CHECKPOINTS), "OMP_NUM_THREADS": str(threads)}})
    task = ray.remote(num_cpus=threads, num_gpus=gpus_per_run)(_train_in_worker)
    done = ray.get([task.remote(model_cls, *r, study, threads) for r in todo])
    print(f"trained {len(done)} runs as Ray tasks of {threads} CPU(s){f' and {gpus_per_run} GPU' if gpus_per_run else ''}: {', '.join(done)}")
    return done


def train_sweep(
    model_cls: Callable[..., nn.Module],
    configs: list,
    task: Any = None,
    train_cfg: TrainConfig | None = None,
    *,
    seeds: list[int],
    study: str,
    task_for: Callable[[Any], Any] | None = None,
    columns: Callable[[Any], dict] = lambda cfg: {},
    workers: int = 1,
    backend: str = "processes",
    ray_address: str | None = None,
    gpus_per_run: float = 0.0,
) -> tuple[pd.DataFrame, dict[tuple[str, int], nn.Module]]:
    """Returns (history of every run, one row per evaluation; {(run name, seed): trained model}).

    Every run trains with `train_cfg` (its seed replaced by each of `seeds`; a mapping of
    TrainConfig keys is loaded as one) on `task`, or on `task_for(model config)` when a run needs its own (e.g. a
    loop curriculum that depends on the model's b). `workers` > 1 trains the missing runs in
    parallel processes (CPU only; ignored on a GPU); backend="ray" runs each missing run as a Ray
    task on this machine or the cluster at `ray_address` (train_missing).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if (task is None) == (task_for is None):
        raise ValueError("give exactly one of task (one task for every run) and task_for (model config -> task)")
    if not configs or not seeds:
        raise ValueError(f"a sweep needs at least one model config and one seed; got {len(configs)} configs and seeds {seeds}")
    check_seeds(seeds)
    base = TrainConfig() if train_cfg is None else train_cfg if isinstance(train_cfg, TrainConfig) else TrainConfig.load(train_cfg)
    runs = [(mcfg, copy.deepcopy(task if task_for is None else task_for(mcfg)), dataclasses.replace(base, seed=seed))
            for mcfg in configs for seed in seeds]
    train_missing(model_cls, runs, study, workers, backend=backend, ray_address=ray_address, gpus_per_run=gpus_per_run)
    device = devices.pick(runs[0][2].device)
    histories, models = [], {}
    phases = progress.runs(len(runs))
    for mcfg, run_task, cfg in runs:
        model = build(model_cls, mcfg, cfg.seed)
        path = checkpoint_for(study, mcfg, run_task, cfg)
        phases.start(f"{mcfg.name} seed {cfg.seed}")
        identity = run_identity(study, mcfg, run_task, cfg)
        loaded = _finished(path, cfg, identity)
        # a finished run is only read: no lock file, so a read-only checkpoint store still loads it
        with contextlib.nullcontext() if loaded else run_lock(path):
            hist = train(
                model, run_task, cfg,
                desc=f"{mcfg.name} seed {cfg.seed}",
                checkpoint=path,
                identity=identity,
                extra={"model": type(model).__name__, "run": mcfg.name, **columns(mcfg), "params": model.n_params(),
                       "seed": cfg.seed, "device": devices.describe(device)},
            )
        phases.done(trained=not loaded)
        histories.append(hist)
        models[mcfg.name, cfg.seed] = model.eval()
    phases.finish()
    return pd.concat(histories, ignore_index=True), models


def final_rows(history: pd.DataFrame, by: tuple[str, ...] = ("run", "seed")) -> pd.DataFrame:
    """The last evaluation of every run."""
    return history.sort_values("step").groupby(list(by)).tail(1).reset_index(drop=True)
