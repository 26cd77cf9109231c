"""The looped family's wiring: in-context regression trained with looped or standard bodies.

Five notebooks (looped_vs_standard, n_token_masking, looped_n_layers, learnable_loop_lr,
mamba_vs_looped_tf) and the loss-surface study train on one task with one set of training
settings, so a model trained by one is loaded by the others from checkpoints/looped/. Those shared
keys are `Settings` (declared once here; a notebook names this class in its metadata, and its
configs start from configs/looped/<profile>.yml through `base:`):

    study = looped.train(globals(), sweep, seeds)      # task, configs, history, models
    errors = looped.error_table(study, iters_factor)    # error per iteration count and k, per run/seed

The whole family's run list and its pooled training: lib/studies/family.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lib.analysis import stats
from lib.config import Config
from lib.curriculum import Ramp
from lib.models.looped import Looped, LoopedConfig, keep_context
from lib.studies import Study, eval_every, from_namespace
from lib.sweep import checkpoint_for, run_identity, train_sweep
from lib.tasks.regression import InContextRegression, RegressionBatch, RegressionConfig, sample_xy, tokens
from lib.train import TrainConfig, load_snapshots

STUDY = "looped"  # the checkpoint folder every looped study shares


@dataclass(frozen=True)
class Settings(Config):
    """The looped family's shared keys. Small CPU defaults; the profiles are configs/looped/*.yml."""

    # task: in-context regression (student report: linear, d = 10, k = 31 pairs, no curriculum)
    kind: str = "linear"
    n_dims: int = 4
    points: int = 12
    dims_ramp: list | None = None  # [start, inc, every] (paper: [5, 1, 5000])
    points_ramp: list | None = None  # [start, inc, every] (paper: [11, 2, 5000])
    loops_ramp: list | None = None  # [inc, every]: training b grows from T by inc every `every` steps (paper: [2, 500])
    val_size: int = 256
    # model width (LoopedConfig); d_state / d_head for the state-space bodies
    n_embd: int = 32
    n_head: int = 2
    d_state: int = 16
    d_head: int = 16
    # training (student report: Adam 1e-4, batch 64, no schedule, 15-20k steps); steps is the cap
    steps: int = 200
    steps_for: dict | None = None  # {run name: its own step cap} (the schedule and evals follow it)
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.1
    evals: int = 4  # evaluations per run (at most steps // evals apart)
    converge_metric: str | None = None  # e.g. "val_error": stop a run once it no longer improves
    converge_window: int = 5
    converge_tol: float = 0.01
    min_steps: int = 0
    max_minutes: float | None = None
    snapshot_every: int = 0  # keep weight snapshots every N steps (for the loss-surface study)
    # how to run (not part of a run's identity)
    device: str = "auto"
    compile: str | bool = "auto"  # auto | true | false (lib.device.resolve_compile)
    workers: int = 1  # CPU processes that train missing runs side by side

    def __post_init__(self):
        RegressionConfig(kind=self.kind, n_dims=self.n_dims, val_size=self.val_size)  # validates kind, sizes
        if self.points < 1 or self.evals < 1 or self.workers < 1:
            raise ValueError(f"points, evals, workers must be >= 1, got {self.points}, {self.evals}, {self.workers}")
        bad = {k: v for k, v in (self.steps_for or {}).items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
        if bad:
            raise ValueError(f"steps_for must map run names to step caps >= 1, got {bad}")
        self.train_config()  # validates the training keys

    def train_config(self, run: str | None = None) -> dict:
        """The TrainConfig keys of a run (seed aside): the shared ones, with `run`'s own step cap
        from `steps_for` (its schedule and evaluation interval follow that cap)."""
        keys = {f.name for f in dataclasses.fields(TrainConfig)}
        cfg = {k: v for k, v in dataclasses.asdict(self).items() if k in keys}
        cfg["steps"] = (self.steps_for or {}).get(run, self.steps)
        cfg["eval_every"] = eval_every(cfg["steps"], self.evals)
        TrainConfig.load(cfg, where="looped settings")
        return cfg


# The settings that do not change what a run learns (so every profile of the family may differ in them).
NOT_IDENTITY = ("device", "compile", "workers")


def settings(ns: dict, **override) -> Settings:
    """The family's settings from a notebook's namespace (its parameters and papermill's)."""
    s = from_namespace(Settings, ns)
    return dataclasses.replace(s, **override) if override else s


def make_task(s: Settings, kind: str | None = None, points: int | None = None) -> InContextRegression:
    """The task of these settings (optionally another kind or number of pairs)."""
    ramp = lambda end, spec: Ramp(end, *spec) if spec else Ramp(end)
    k = s.points if points is None else points
    cfg = RegressionConfig.load({"kind": kind or s.kind, "n_dims": s.n_dims, "val_size": s.val_size})
    return InContextRegression(cfg, dims=ramp(s.n_dims, s.dims_ramp), points=ramp(k, s.points_ramp if points is None else None))


def model_configs(s: Settings, sweep, points: int | None = None) -> list[LoopedConfig]:
    return LoopedConfig.sweep(sweep, d_in=s.n_dims, n_embd=s.n_embd, n_head=s.n_head, n_positions=2 * (points or s.points),
                              d_state=s.d_state, d_head=s.d_head)


def loop_curriculum(task: InContextRegression, loops_ramp: list | None):
    """model config -> task whose training b grows from T to b by inc every `every` steps ([inc, every]); None: fixed b."""
    return lambda c: task.with_loops(Ramp(c.b, min(c.T, c.b), *loops_ramp) if loops_ramp and c.b > 1 else None)


def columns(c: LoopedConfig) -> dict:
    return {**c.columns(), "body": c.body}


def train(ns: dict | Settings, sweep, seeds: list[int], *, kind: str | None = None, points: int | None = None,
          plain_seeds: list[int] | None = None) -> Study:
    """Train (or load) every model of `sweep` x `seeds` on the family's task.

    `plain_seeds` (if given) replaces `seeds` for the non-looped models; `kind` / `points` train on
    another task of the family (e.g. noisy regression, or more pairs for the masking study).
    """
    s = ns if isinstance(ns, Settings) else settings(ns)
    task = make_task(s, kind, points)
    configs = model_configs(s, sweep, points)
    histories, models = [], {}
    seeds_for = lambda c: plain_seeds if plain_seeds is not None and not c.looped else seeds
    groups: dict = {}  # runs sharing seeds and training keys train as one sweep
    for c in configs:
        groups.setdefault((tuple(seeds_for(c)), s.train_config(c.name)["steps"]), []).append(c)
    for (group_seeds, _), group in groups.items():
        h, m = train_sweep(Looped, group, task_for=loop_curriculum(task, s.loops_ramp), train_cfg=s.train_config(group[0].name),
                           seeds=list(group_seeds), study=STUDY, columns=columns, workers=s.workers)
        histories.append(h.assign(kind=task.cfg.kind))
        models.update(m)
    return Study(task, configs, pd.concat(histories, ignore_index=True), models, s.train_config(), list(seeds),
                 task_for=loop_curriculum(task, s.loops_ramp), train_for=lambda c: s.train_config(c.name))


def seeds_of(study: Study, c: LoopedConfig) -> list[int]:
    return sorted(s for (name, s) in study.models if name == c.name)


def bootstrap(err: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over prompts (dim 0) and its 95 % bootstrap interval, per column."""
    return stats.bootstrap(err.double().numpy(), axis=0, n_boot=200, seed=0)


def iteration_table(task: InContextRegression, model, iters: int, every: int = 1, state_mask=None) -> pd.DataFrame:
    """Tidy errors of one model for every `every`-th iteration 1..iters (the last always) and every
    k: columns iters, k, error, ci_lo, ci_hi."""
    err = task.iteration_errors(model, iters, state_mask)  # (iters, val, k)
    rows = []
    for t in sorted({*range(every - 1, iters, every), iters - 1}):
        mean, lo, hi = bootstrap(err[t])
        rows += [{"iters": t + 1, "k": j, "error": m, "ci_lo": l, "ci_hi": h} for j, (m, l, h) in enumerate(zip(mean, lo, hi))]
    return pd.DataFrame(rows)


def baselines(task: InContextRegression) -> pd.DataFrame:
    """Error per k of least squares, averaging and 3-NN on the task's validation prompts, with intervals."""
    rows = []
    for name, err in task.baseline_errors().items():
        mean, lo, hi = bootstrap(err)
        rows += [{"model": name, "k": j, "error": m, "ci_lo": l, "ci_hi": h} for j, (m, l, h) in enumerate(zip(mean, lo, hi))]
    return pd.DataFrame(rows)


def error_table(study: Study, iters_factor: int, every: int = 1) -> pd.DataFrame:
    """Errors of every run and seed at iterations 1..iters_factor*b (1 for a standard model), every k."""
    task = study.task
    return pd.concat([
        iteration_table(task, study.models[c.name, s], iters=iters_factor * c.b if c.looped else 1, every=every)
        .assign(run=c.name, label=c.name, seed=s, d=task.d, kind=task.cfg.kind, params=study.models[c.name, s].n_params(),
                **columns(c))
        for c in study.configs for s in seeds_of(study, c)], ignore_index=True)


def run_table(study: Study) -> pd.DataFrame:
    """The model table every report shows: per run, parameters, seeds, steps (mean, min-max over
    seeds), how the runs stopped, training minutes and samples/s (means over seeds)."""
    fin = study.history.sort_values("step").groupby(["run", "seed"]).tail(1)
    rows = []
    for c in study.configs:
        f = fin[fin.run == c.name]
        rows.append({"run": c.name, **c.columns(), "params": int(f["params"].iloc[0]), "seeds": len(f),
                     "steps": f"{f['step'].mean():.0f} ({f['step'].min()}–{f['step'].max()})",
                     "stop_reason": ", ".join(f"{k} ×{v}" for k, v in f["stop_reason"].value_counts().items()),
                     "train_minutes": f["train_minutes"].mean(), "samples_per_s": f["samples_per_s"].mean()})
    return pd.DataFrame(rows)


REPORT_FIRST = "first, query too"  # the student report's own first-N mask
# The mask sides masking_errors knows (the notebook's `wheres`), each with what it keeps.
MASKS = {"first": "first N context pairs kept, and the query", "last": "last N context pairs kept, and the query",
         REPORT_FIRST: "the report's mask: first N of all pairs, the query's state masked for N < k"}


def report_first_mask(n_pairs: int, n_kept: int) -> torch.Tensor:
    """(2 * n_pairs,) the student report's first-N mask: keep the state of the first n_kept of all
    n_pairs pairs, the query's pair counted, so for n_kept < n_pairs the query's own state is masked
    too (n_kept = n_pairs keeps everything). Only to compare our curve's shape with the report's."""
    if not 0 <= n_kept <= n_pairs:
        raise ValueError(f"n_kept must be in [0, {n_pairs}] (all pairs, the query's included), got {n_kept}")
    mask = torch.zeros(2 * n_pairs)
    mask[: 2 * n_kept] = 1
    return mask


def state_masks(k: int, where: str, n_step: int = 1) -> list[tuple[int, torch.Tensor]]:
    """[(N, mask)] for one mask side at a prompt of k pairs: 'first' / 'last' keep N of the k - 1
    context pairs and the query (lib.models.looped.keep_context); REPORT_FIRST is the report's mask."""
    if where == REPORT_FIRST:
        return [(n, report_first_mask(k, n)) for n in sorted({*range(0, k + 1, n_step), k})]
    if where not in MASKS:
        raise ValueError(f"wheres: unknown mask {where!r}; allowed: {list(MASKS)}")
    return [(n, keep_context(k, n, where)) for n in sorted({*range(0, k, n_step), k - 1})]


def masking_errors(study: Study, wheres=("first", "last"), multiples=(1, 2, 3), n_step: int = 1) -> pd.DataFrame:
    """Error at the last position with the recurrent state masked at evaluation (state_masks): for
    every looped run, seed, mask side and number N of pairs kept, at iterations m * b for m in
    `multiples`. Adds the control rows where = 'query only' (every context pair kept, the query's
    state masked)."""
    task = study.task
    k = task.k
    masks = [(w, n, mask) for w in wheres for n, mask in state_masks(k, w, n_step)]
    masks.append(("query only", k - 1, keep_context(k, k - 1, "first", query=False)))
    rows = []
    for c in study.configs:
        if not c.looped:
            continue
        iters = max(multiples) * c.b
        for s in seeds_of(study, c):
            model = study.models[c.name, s]
            for where, n, mask in masks:
                err = task.errors(task.predictions(model, iters=iters, keep=iters, state_mask=mask))[:, :, -1]  # (iters, val)
                rows += [{"run": c.name, "label": c.name, "seed": s, **c.columns(), "where": where, "n_pairs": n, "multiple": m,
                          "iters": m * c.b, "error": float(err[m * c.b - 1].mean())} for m in multiples]
    return pd.DataFrame(rows)


# The notebooks whose runs live in checkpoints/looped/ (loss_surface loads them too): lib/studies/family.py.
FAMILY = ("looped_vs_standard", "n_token_masking", "looped_n_layers", "learnable_loop_lr", "mamba_vs_looped_tf", "loss_surface")


def surface_batch(task: InContextRegression, n: int, device, seed: int = 4242):
    """One fixed batch of `n` fresh prompts (the loss-surface study's), on `device`."""
    xs, ys = sample_xy(task.cfg, n, task.k, task.d, torch.Generator().manual_seed(seed))
    return RegressionBatch(tokens(xs, ys).to(device), ys.to(device), task.d, None)


def surface_loss(model, batch):
    """The validation loss's definition (task.evaluate's val_loss) on one batch: MSE of the
    predictions at every x position after the model's own b iterations."""
    preds = model(batch.z)[0][:, 0::2]  # (B, k)
    return ((preds.float() - batch.y) ** 2).mean()


def snapshots(study: Study, c: LoopedConfig, seed: int) -> list[dict]:
    """The weight snapshots a run kept during training (TrainConfig.snapshot_every), oldest first."""
    train = study.train_for(c) if study.train_for else study.train
    run = (c, study.task_for(c), TrainConfig.load({**train, "seed": seed}))
    path = checkpoint_for(STUDY, *run)
    return load_snapshots(path, identity=run_identity(STUDY, *run)) if path.exists() else []
