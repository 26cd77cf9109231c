"""The looped family's wiring: in-context regression trained with looped or standard bodies.

Five notebooks (looped_vs_standard, n_token_masking, looped_n_layers, learnable_loop_lr,
mamba_vs_looped_tf) and the loss-surface study train on one task with one set of training
settings, so a model trained by one is loaded by the others from checkpoints/looped/. Those shared
keys are `Settings` (declared once here; each notebook's own keys are a subclass, which the
notebook names in its metadata, and its configs start from configs/looped/<profile>.yml through
`base:`):

    study = looped.train(globals(), sweep, seeds)      # task, configs, history, models
    errors = looped.error_table(study, iters_factor)    # error per iteration count and k, per run/seed

The whole family's run list and its pooled training: lib/studies/family.py.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from lib.analysis import stats
from lib.analysis.loss_surface import NORMALISE, PATHS, PROMPTS
from lib.config import expand, read_config
from lib.curriculum import Ramp
from lib.device import check_compile_key
from lib.models.looped import Looped, LoopedConfig, keep_context
from lib.paths import CONFIGS
from lib.studies import Study, StudySettings, check_seed_list, eval_every, first_and_last, from_namespace
from lib.sweep import checkpoint_for, run_identity, train_sweep
from lib.tasks.regression import KINDS, InContextRegression, RegressionBatch, RegressionConfig, sample_xy, tokens
from lib.train import TrainConfig, load_snapshots

STUDY = "looped"  # the checkpoint folder every looped study shares
# The notebooks whose runs live in checkpoints/looped/ (loss_surface loads them too): lib/studies/family.py.
FAMILY = ("looped_vs_standard", "n_token_masking", "looped_n_layers", "learnable_loop_lr", "mamba_vs_looped_tf", "loss_surface")

REPORT_FIRST = "first, query too"  # the student report's own first-N mask
# The mask sides masking_errors knows (the notebook's `wheres`), each with what it keeps.
MASKS = {"first": "first N context pairs kept, and the query", "last": "last N context pairs kept, and the query",
         REPORT_FIRST: "the report's mask: first N of all pairs, the query's state masked for N < k"}
DIRECTIONS = ("hessian", "random", "pca")  # the loss-surface study's direction kinds


@dataclass(frozen=True)
class Settings(StudySettings):
    """The looped family's shared keys. Small CPU defaults; the profiles are configs/looped/*.yml.
    Each notebook of the family adds its own keys in a subclass (below), named in its metadata."""

    # task: in-context regression (student report: linear, d = 10, k = 31 pairs, no curriculum)
    kind: str = "linear"
    n_dims: int = 4
    points: int = 12
    dims_ramp: list[int] | None = None  # [start, inc, every] (paper: [5, 1, 5000])
    points_ramp: list[int] | None = None  # [start, inc, every] (paper: [11, 2, 5000])
    loops_ramp: list[int] | None = None  # [inc, every]: training b grows from T by inc every `every` steps (paper: [2, 500])
    val_size: int = 256
    # models: a sweep of LoopedConfig keys (b = T = 1: a standard transformer of n_layer layers), and seeds
    sweep: list | dict = field(default_factory=lambda: [{"n_layer": 1, "b": 3, "T": 3}])
    seeds: list[int] = field(default_factory=lambda: [0])
    # model width (LoopedConfig); d_state / d_head for the state-space bodies
    n_embd: int = 32
    n_head: int = 2
    d_state: int = 16
    d_head: int = 16
    # training (student report: Adam 1e-4, batch 64, no schedule, 15-20k steps); steps is the cap
    steps: int = 200
    steps_for: dict[str, int] | None = None  # {run name: its own step cap} (the schedule and evals follow it)
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
    compile: str | bool = "auto"  # auto | true | false (lib.device.resolve_compile)

    def __post_init__(self):
        super().__post_init__()
        RegressionConfig(kind=self.kind, n_dims=self.n_dims, val_size=self.val_size)  # validates kind, sizes
        if self.points < 1 or self.evals < 1:
            raise ValueError(f"points, evals must be >= 1, got {self.points}, {self.evals}")
        for key, end in (("dims_ramp", self.n_dims), ("points_ramp", self.points), ("loops_ramp", None)):
            ramp, shape = getattr(self, key), "[inc, every]" if end is None else f"[start <= {end}, inc, every]"
            if ramp is not None and (len(ramp) != len(shape.split(",")) or min(ramp) < 0 or (end is not None and ramp[0] > end)):
                raise ValueError(f"{key} = {ramp}; give {shape}, each >= 0")
        own = {c.name for c in self.model_configs()}  # validates the sweep (bodies, sizes)
        check_seed_list(self.seeds, "seeds")
        bad = {k: v for k, v in (self.steps_for or {}).items() if v < 1}
        if bad:
            raise ValueError(f"steps_for must map run names to step caps >= 1, got {bad}")
        if unknown := sorted(set(self.steps_for or {}) - own - family_run_names()):
            raise ValueError(f"steps_for names no run of the looped family: {unknown}; its runs: {sorted(own | family_run_names())}")
        check_compile_key(self.compile)
        self.train_config()  # validates the training keys

    def model_configs(self) -> list[LoopedConfig]:
        return model_configs(self, self.sweep)

    def train_config(self, run: str | None = None) -> TrainConfig:
        """The TrainConfig of a run (seed 0): the shared keys, with `run`'s own step cap from
        `steps_for` (its schedule and evaluation interval follow that cap)."""
        steps = (self.steps_for or {}).get(run, self.steps)
        return TrainConfig(steps=steps, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           warmup_steps=self.warmup_steps, schedule=self.schedule, min_lr_ratio=self.min_lr_ratio,
                           eval_every=eval_every(steps, self.evals), converge_metric=self.converge_metric,
                           converge_window=self.converge_window, converge_tol=self.converge_tol, min_steps=self.min_steps,
                           max_minutes=self.max_minutes, snapshot_every=self.snapshot_every, device=self.device, compile=self.compile)

    def dry_changes(self) -> dict:
        return {**super().dry_changes(), "sweep": self.dry_sweep(expand(self.sweep)), "seeds": self.seeds[:1],
                "steps": min(self.steps, 2), "steps_for": {k: min(v, 2) for k, v in self.steps_for.items()} if self.steps_for else None,
                "evals": 1, "val_size": min(self.val_size, 64), "batch_size": min(self.batch_size, 4), "warmup_steps": 0, "min_steps": 0}

    def dry_sweep(self, runs: list[dict]) -> list[dict]:
        """The runs a dry run keeps: the first and the last (a study that needs a kind of run keeps one)."""
        return first_and_last(runs)

    # What the notebook trains, for the family's run list (lib/studies/family.py); a subclass that
    # trains on other kinds, prompt lengths or seeds says so.
    def kinds_trained(self) -> list[str]:
        return [self.kind]

    def points_trained(self) -> int | None:
        """Pairs per prompt of this notebook's models (None: the family's `points`)."""
        return None

    def seeds_for(self, c: LoopedConfig) -> list[int]:
        return self.seeds


@functools.lru_cache(maxsize=1)
def family_run_names() -> frozenset[str]:
    """The run names of every looped-family profile under configs/ (each notebook's sweeps): the
    names a shared `steps_for` (configs/looped/<profile>.yml) may give a step cap."""
    names: set[str] = set()
    for nb in FAMILY:
        for path in sorted((CONFIGS / nb).glob("*.yml")):
            try:
                sweep = read_config(path)[0].get("sweep")
                names |= {c.name for c in LoopedConfig.sweep(sweep)} if sweep is not None else set()
            except ValueError:  # a broken profile is its own validation's error, not this one's
                continue
    return frozenset(names)


def _at_least(s: Settings, *keys: str, low: int = 1) -> None:
    for key in keys:
        if getattr(s, key) < low:
            raise ValueError(f"{key} = {getattr(s, key)}; must be >= {low}")


def family_profiles() -> list[str]:
    """The profiles every notebook of the family has (configs/<notebook>/<profile>.yml)."""
    return sorted(set.intersection(*({p.stem for p in (CONFIGS / nb).glob("*.yml")} for nb in FAMILY)))


@dataclass(frozen=True)
class ReadsPastB(Settings):
    """A notebook that reads its looped models past b: error vs iterations up to iters_factor * b."""

    iters_factor: int = 10

    def __post_init__(self):
        super().__post_init__()
        _at_least(self, "iters_factor")

    def dry_changes(self) -> dict:
        return {**super().dry_changes(), "iters_factor": min(self.iters_factor, 2)}


@dataclass(frozen=True)
class LoopedVsStandard(ReadsPastB):
    """looped_vs_standard: looped 1-layer bodies against standard transformers."""

    family_profile: str | None = None  # a profile (e.g. "cpu"): also state what training the whole family costs there

    def __post_init__(self):
        super().__post_init__()
        if self.family_profile is not None and self.family_profile not in family_profiles():
            raise ValueError(f"family_profile = {self.family_profile!r}; the family's profiles: {family_profiles()}")


@dataclass(frozen=True)
class LoopedNLayers(ReadsPastB):
    """looped_n_layers: loop bodies of several depths."""

    plateau_level: float = 0.5  # "left the plateau": first evaluation with validation error below this

    def __post_init__(self):
        super().__post_init__()
        if not self.plateau_level > 0:
            raise ValueError(f"plateau_level = {self.plateau_level}; must be > 0")


@dataclass(frozen=True)
class LearnableLoopLr(ReadsPastB):
    """learnable_loop_lr: a learnable injection scale (inject: scalar) against its controls."""

    iters_factor: int = 4

    def __post_init__(self):
        super().__post_init__()
        if not any(c.inject == "scalar" for c in self.model_configs()):
            raise ValueError("sweep needs a run with inject: scalar (the learnable scale this study is about)")

    def dry_sweep(self, runs: list[dict]) -> list[dict]:
        kept = first_and_last(runs)
        return kept if any(r.get("inject") == "scalar" for r in kept) else kept + [next(r for r in runs if r.get("inject") == "scalar")]


@dataclass(frozen=True)
class MambaVsLoopedTf(ReadsPastB):
    """mamba_vs_looped_tf: every body looped, on one or more regression kinds."""

    kinds: list[str] = field(default_factory=lambda: ["linear"])
    plain_seeds: list[int] | None = None  # seeds of the non-looped models (None: `seeds`)

    def __post_init__(self):
        super().__post_init__()
        if not self.kinds or not set(self.kinds) <= set(KINDS):
            raise ValueError(f"kinds = {self.kinds}; give at least one of {list(KINDS)}")
        if self.plain_seeds is not None:
            check_seed_list(self.plain_seeds, "plain_seeds")

    def kinds_trained(self) -> list[str]:
        return self.kinds

    def seeds_for(self, c: LoopedConfig) -> list[int]:
        return self.plain_seeds if self.plain_seeds is not None and not c.looped else self.seeds

    def dry_changes(self) -> dict:
        return {**super().dry_changes(), "kinds": self.kinds[:1],
                "plain_seeds": self.plain_seeds[:1] if self.plain_seeds else self.plain_seeds}


@dataclass(frozen=True)
class NTokenMasking(Settings):
    """n_token_masking: the recurrent state of context pairs masked at evaluation."""

    mask_points: int = 8  # pairs per prompt for the masking models
    wheres: list[str] = field(default_factory=lambda: ["first", "last", REPORT_FIRST])
    multiples: list[int] = field(default_factory=lambda: [1, 2, 3])  # evaluate at these multiples of b
    n_pairs_step: int = 1  # N kept context pairs in steps of this

    def __post_init__(self):
        super().__post_init__()
        _at_least(self, "mask_points", low=2)
        _at_least(self, "n_pairs_step")
        if not self.wheres or not set(self.wheres) <= set(MASKS):
            raise ValueError(f"wheres = {self.wheres}; give at least one of {list(MASKS)}")
        if not self.multiples or min(self.multiples) < 1:
            raise ValueError(f"multiples = {self.multiples}; give at least one, each >= 1")
        if not any(c.looped for c in model_configs(self, self.sweep, self.mask_points)):
            raise ValueError("sweep needs a looped run (b > 1): only a looped model has a recurrent state to mask")

    def points_trained(self) -> int | None:
        return self.mask_points

    def dry_changes(self) -> dict:
        return {**super().dry_changes(), "n_pairs_step": 10, "multiples": [1, 2]}

    def dry_sweep(self, runs: list[dict]) -> list[dict]:
        kept = first_and_last(runs)
        return kept if any(r.get("b", 1) > 1 for r in kept) else kept + [next(r for r in runs if r.get("b", 1) > 1)]


@dataclass(frozen=True)
class LossSurface(Settings):
    """loss_surface: loss surfaces of the family's models (and of selective-copy models)."""

    directions: list[str] = field(default_factory=lambda: list(DIRECTIONS))
    span: float = 1.0  # alpha, beta in [-span, span]
    pca_margin: float = 0.25  # the PCA grid spans the trajectory plus this fraction on every side
    resolution: int = 7  # grid points per axis
    surface_batch: int = 64  # one fixed batch of prompts
    surface_prompts: str = "fresh"  # fresh: surface_batch new prompts; validation: the task's validation prompts
    normalise: str = "none"  # none: each kind's own scale; filter: every kind of direction filter-normalised
    hessian_iters: int = 20  # power iterations per eigenvector
    radius: float = 0.5  # for eps-sharpness
    match_val_loss: float | None = None  # None: pool all models; a tolerance: only looped/standard pairs that close in validation loss
    large_run: str | None = None  # one run (seed 0) also drawn on a large_resolution^2 Hessian grid
    large_resolution: int = 0
    surface_path: str = "auto"  # loop | inplace | vmap | auto
    surface_compile: bool = False
    surface_bf16: bool = False
    copy_profile: str = "smoke"  # configs/selective_copy/<copy_profile>.yml
    copy_runs: list[str] = field(default_factory=list)  # selective-copy runs drawn too
    copy_resolution: int = 5
    copy_batch: int = 64

    def __post_init__(self):
        super().__post_init__()
        if not self.directions or not set(self.directions) <= set(DIRECTIONS):
            raise ValueError(f"directions = {self.directions}; give at least one of {list(DIRECTIONS)}")
        if not (self.span > 0 and self.radius > 0 and self.pca_margin >= 0):
            raise ValueError(f"need span > 0, radius > 0, pca_margin >= 0; got {self.span}, {self.radius}, {self.pca_margin}")
        _at_least(self, "resolution", "copy_resolution", low=2)
        _at_least(self, "surface_batch", "hessian_iters", "copy_batch")
        if self.surface_path not in (*PATHS, "auto"):
            raise ValueError(f"surface_path = {self.surface_path!r}; allowed {[*PATHS, 'auto']}")
        if self.surface_prompts not in PROMPTS or self.normalise not in NORMALISE:
            raise ValueError(f"surface_prompts = {self.surface_prompts!r}, normalise = {self.normalise!r}; allowed {list(PROMPTS)}, {list(NORMALISE)}")
        if self.match_val_loss is not None and not self.match_val_loss > 0:
            raise ValueError(f"match_val_loss = {self.match_val_loss}; must be > 0 or None")
        runs = sorted(c.name for c in self.model_configs())
        if self.large_run is not None and self.large_run not in runs:
            raise ValueError(f"large_run = {self.large_run!r} must name a run of the sweep: {runs}")
        if self.large_run is not None:
            _at_least(self, "large_resolution", low=2)
        copy_profiles = sorted(p.stem for p in (CONFIGS / "selective_copy").glob("*.yml"))
        if self.copy_runs and self.copy_profile not in copy_profiles:
            raise ValueError(f"copy_profile = {self.copy_profile!r}; the selective-copy profiles: {copy_profiles}")

    def dry_changes(self) -> dict:
        changes = {**super().dry_changes(), "resolution": min(self.resolution, 3), "copy_resolution": min(self.copy_resolution, 3),
                   "hessian_iters": min(self.hessian_iters, 2), "surface_batch": min(self.surface_batch, 16),
                   "large_resolution": min(self.large_resolution, 3), "copy_runs": [], "copy_batch": min(self.copy_batch, 8)}
        if self.large_run is not None:  # the large surface is drawn for a run the cut sweep still has
            changes["large_run"] = model_configs(self, changes["sweep"])[0].name
        return changes


# The settings that do not change what a run learns (so every profile of the family may differ in them).
NOT_IDENTITY = ("device", "compile", "workers", "backend", "ray_address", "gpus_per_run", "sweep", "seeds")


def settings(ns: dict | Settings, **override) -> Settings:
    """The family's settings from a notebook's namespace (its parameters and papermill's), or as given."""
    s = ns if isinstance(ns, Settings) else from_namespace(Settings, ns)
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
    s = settings(ns)
    task = make_task(s, kind, points)
    configs = model_configs(s, sweep, points)
    histories, models = [], {}
    seeds_for = lambda c: plain_seeds if plain_seeds is not None and not c.looped else seeds
    groups: dict = {}  # runs sharing seeds and training settings train as one sweep
    for c in configs:
        groups.setdefault((tuple(seeds_for(c)), s.train_config(c.name)), []).append(c)
    for (group_seeds, tcfg), group in groups.items():
        h, m = train_sweep(Looped, group, task_for=loop_curriculum(task, s.loops_ramp), train_cfg=tcfg,
                           seeds=list(group_seeds), study=STUDY, columns=columns, **s.sweep_options())
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
    run = (c, study.task_for(c), dataclasses.replace(train, seed=seed))
    path = checkpoint_for(STUDY, *run)
    return load_snapshots(path, identity=run_identity(STUDY, *run)) if path.exists() else []
