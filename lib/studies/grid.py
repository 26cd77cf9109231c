"""The block x task grid's wiring: every body (lib/models/bodies.py), plain and looped, on every
task, at one parameter count, with an lr sweep and seeds. The verdicts are lib/analysis/grid.py's.

    settings = GridSettings.load(params)     # validated before any kernel starts
    result = run(settings)                   # trains what is missing (resumable), scores every cell and seed

Protocol.
- Sizes: every (body, plain/looped) is sized to `params` parameters (within PARAMS_TOL) by its
  width, with head counts that keep attention heads >= MIN_HEAD_DIM wide and SSD heads near 16
  (`model_config`). Every body gets the same position policy: a context of exactly the task's
  length (attention's position table holds n rows: no parameters spent on longer sequences).
- Training: warmup-stable-decay (lib.train): a constant lr while the plateau rule watches the
  task's metric (Entry.metric), never before the task's minimum step count nor before the metric
  left its step-0 value by `plateau_departure`; when it fires, or at the task's cap, a decay over
  `decay_fraction` of the steps so far, then the run stops. Caps and minimum steps are per task,
  in steps of `batch_size` sequences (samples), never in minutes.
- The lr sweep runs on the first seed; each (task, body, plain/looped) then runs every other seed
  at the lr chosen on validation (lib.analysis.grid.choose_lr).
- Scores: accuracy at the labelled positions; regression 1 - error (SE / E[y^2] at the last
  position): higher is better everywhere. Each cell's task has a shortcut ceiling and a solve
  threshold (lib.analysis.ceilings); samples-to-solve is read from the run's history
  (lib.analysis.solve), censored when the run never reached the threshold. Looped cells are also
  scored at 2b, 4b and 10b; bodies that read any length (no position table) on the recall tasks
  at 2n and 4n tokens.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import pandas as pd

from lib.analysis import ceilings
from lib.analysis.grid import ERROR_FLOOR, choose_lr
from lib.analysis.solve import samples_to_solve
from lib.contracts import GridTask
from lib.models import bodies
from lib.models.bodies import BodyConfig, state_size
from lib.models.seq import SeqConfig, SeqModel
from lib.studies import StudySettings, eval_every
from lib.sweep import train_missing, train_sweep
from lib.tasks.algo_sequence import AlgoSequence
from lib.tasks.algorithmic import AlgorithmicConfig
from lib.tasks.recall import Recall, RecallConfig
from lib.tasks.regression import InContextRegression
from lib.tasks.selective_copy import SelectiveCopy, SelectiveCopyConfig
from lib.train import TrainConfig

STUDY = "block_task_grid"
PARAMS_TOL = 0.05  # every model's parameter count is within this fraction of the target
MIN_HEAD_DIM = 16  # attention heads are at least this wide
SSD_HEAD = 16  # the SSD head width P where the inner width allows it (else the divisor of it nearest 16, in SSD_HEADS)
SSD_HEADS = range(8, 33)
LR_SWEEP = (1e-4, 4.6e-4, 2.2e-3, 1e-2)  # zoology's np.logspace(-4, -2, 4), rounded


@dataclass(frozen=True)
class Entry:
    """A task of the grid at one difficulty: how to build it (a lib.contracts.GridTask: its seq_len
    and vocab size the model) and how to read its score."""

    build: Callable[[], GridTask]
    score: Callable[[dict], float]  # evaluate()'s metrics (or a history row) -> higher-is-better score
    extrapolates: bool = False  # can be drawn at 2n and 4n (Recall.at_length)
    metric: str = "val_acc"  # the metric the plateau rule watches, and its direction
    mode: str = "max"


def _acc(m: dict) -> float:
    return m["val_acc"]


def _one_minus_error(m: dict) -> float:
    return 1 - m["val_error"]


def _one_minus_error_pct(m: dict) -> float:
    return 1 - m["val_error_pct"] / 100


def _recall(kind: str, **kw) -> Entry:
    return Entry(lambda: Recall(RecallConfig(kind=kind, **kw)), _acc, extrapolates=True)


def _algo(task: str, **kw) -> Entry:
    return Entry(lambda: AlgoSequence(AlgorithmicConfig(task=task, **kw)), _acc)


def _regression(kind: str, **kw) -> Entry:
    return Entry(lambda: InContextRegression.of(kind, **kw), _one_minus_error, metric="val_error", mode="min")


# Tasks by name and difficulty level: vocabulary, length, pairs. MQAR's `easy` is zoology's
# smallest setting (length 64, 4 pairs) and its vocabulary exceeds its length (zoology's condition).
TASKS: dict[str, dict[str, Entry]] = {
    "mqar": {"easy": _recall("mqar", vocab=128, seq_len=64, pairs=4, val_size=500),
             "hard": _recall("mqar", vocab=256, seq_len=128, pairs=16, val_size=500)},
    "induction": {"easy": _recall("induction", vocab=16, seq_len=32, val_size=500),
                  "hard": _recall("induction", vocab=64, seq_len=128, val_size=500)},
    "selective_mamba": {"easy": _recall("selective", vocab=16, seq_len=32, pairs=4, val_size=500),
                        "hard": _recall("selective", vocab=16, seq_len=128, pairs=16, val_size=500)},
    "selective_copy": {"easy": Entry(lambda: SelectiveCopy(SelectiveCopyConfig(val_size=500)), _one_minus_error_pct,
                                     metric="val_error_pct", mode="min")},
    "copy": {"easy": _algo("copy", V=16, length=10, val_size=500), "hard": _algo("copy", V=16, length=20, val_size=500)},
    "flip": {"easy": _algo("flip", V=16, length=10, val_size=500), "hard": _algo("flip", V=16, length=20, val_size=500)},
    "cumsum": {"easy": _algo("cumsum", V=10, length=10, val_size=500), "hard": _algo("cumsum", V=16, length=20, val_size=500)},
    "addition": {"easy": _algo("addition", base=16, limit=256, val_size=500), "hard": _algo("addition", base=16, limit=4096, val_size=500)},
    "linear": {"easy": _regression("linear", n_dims=4, points=12, val_size=500), "hard": _regression("linear", n_dims=8, points=24, val_size=500)},
    "noisy_linear": {"easy": _regression("noisy_linear", n_dims=4, points=12, val_size=500)},
    "sparse_linear": {"easy": _regression("sparse_linear", n_dims=8, points=12, val_size=500)},
}


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class GridSettings(StudySettings):
    """The grid's parameters, typed (the notebook's parameters cell and configs/block_task_grid/*.yml)."""

    bodies: tuple[str, ...] = ("attention", "mamba", "ssd", "conv", "mixer", "hybrid")
    tasks: tuple[str, ...] = ("mqar", "induction", "flip", "linear")
    levels: tuple[str, ...] = ("easy",)
    looped: tuple[bool, ...] = (False, True)
    params: int = 20_000  # target parameter count of every model
    layers: int = 2  # plain depth L
    b: int = 2  # looped: iterations of a 1-layer body (T = b: the loss sees every iteration)
    lrs: tuple[float, ...] = LR_SWEEP  # the sweep on the first seed
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 2000  # the cap (steps of the stable phase) of a task without its own in steps_for, and a bound on every cap
    steps_for: dict[str, int] = field(default_factory=dict)  # task -> its cap (at most `steps`)
    min_steps: int = 0  # the plateau rule waits at least this many steps (a task without its own in min_steps_for)
    min_steps_for: dict[str, int] = field(default_factory=dict)  # task -> its minimum steps
    batch_size: int = 32
    warmup_steps: int = 50
    evals: int = 20  # evaluations per run at the cap (the samples-to-solve resolution)
    converge_tol: float = 0.01  # plateau: the metric improved by less than this (relative) ...
    converge_window: int = 3  # ... over this many evaluations
    plateau_departure: float = 0.1  # and only once it left its step-0 value by this fraction
    decay_fraction: float = 0.2  # the decay after the plateau or the cap: this fraction of the steps so far
    grad_clip: float | None = 1.0
    batch_seeds: str = "auto"  # auto | true | false: seeds and lrs of a model as one batched model (lib.batched; auto: on CUDA)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "bodies", tuple(bodies.resolve(b, "bodies") for b in self.bodies))
        for key in ("bodies", "tasks", "levels", "looped", "lrs", "seeds"):
            if not getattr(self, key):
                raise ValueError(f"{key} is empty; give at least one")
        if bad := sorted(set(self.tasks) - set(TASKS)):
            raise ValueError(f"tasks must be among {sorted(TASKS)}, got {bad}")
        levels = {lv for t in TASKS.values() for lv in t}
        if bad := sorted(set(self.levels) - levels):
            raise ValueError(f"levels must be among {sorted(levels)}, got {bad}")
        for key in ("steps_for", "min_steps_for"):
            per_task = getattr(self, key)
            if bad := sorted(set(per_task) - set(TASKS)):
                raise ValueError(f"{key}: keys must be task names among {sorted(TASKS)}, got {bad}")
            if bad := {k: v for k, v in per_task.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0}:
                raise ValueError(f"{key} maps task names to step counts >= 0, got {bad}")
        if bad := {k: v for k, v in self.steps_for.items() if v < 1}:
            raise ValueError(f"steps_for: each task's cap must be >= 1, got {bad}")
        for lr in self.lrs:
            _positive("lrs", lr)
        if bad := {f.name: v for f in dataclasses.fields(self) if isinstance(v := getattr(self, f.name), float) and not math.isfinite(v)}:
            raise ValueError(f"must be finite numbers: {bad}")
        if self.params < 1000 or self.b < 2 or self.layers < 1 or self.evals < 1:
            raise ValueError(f"need params >= 1000, b >= 2, layers >= 1, evals >= 1; got "
                             f"{self.params}, {self.b}, {self.layers}, {self.evals}")
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.lrs)) != len(self.lrs):
            raise ValueError(f"seeds and lrs must not repeat, got {list(self.seeds)} and {list(self.lrs)}")
        if self.batch_seeds not in ("auto", "true", "false"):
            raise ValueError(f"batch_seeds must be one of ['auto', 'false', 'true'], got {self.batch_seeds!r}")
        self.train_config(Cell(self.bodies[0], self.looped[0], self.tasks[0], self.levels[0], self.lrs[0], self.seeds[0]))

    def cap(self, task: str) -> int:
        """The task's step cap (the stable phase; the decay adds decay_fraction of it at most):
        its own from steps_for, bounded by `steps`."""
        return min(self.steps, self.steps_for.get(task, self.steps))

    def train_config(self, run: "Cell") -> TrainConfig:
        """The TrainConfig of one run (a Cell): the task's cap, minimum steps and plateau metric."""
        entry, cap = TASKS[run.task][run.level], self.cap(run.task)
        return TrainConfig(
            steps=cap, batch_size=self.batch_size, lr=run.lr, warmup_steps=min(self.warmup_steps, cap - 1),
            eval_every=eval_every(cap, self.evals), grad_clip=self.grad_clip, seed=run.seed, device=self.device,
            batch_seeds=self.batch_seeds, schedule="wsd", decay_fraction=self.decay_fraction,
            converge_metric=entry.metric, converge_mode=entry.mode, converge_tol=self.converge_tol,
            converge_window=self.converge_window, min_steps=min(self.min_steps_for.get(run.task, self.min_steps), cap),
            plateau_departure=self.plateau_departure)

    def dry_changes(self) -> dict:
        """The same grid's shapes and code paths at a few steps: two tasks, one level, one lr and
        seed, a cap of 2 steps, on the CPU, in one process."""
        return {**super().dry_changes(), "tasks": self.tasks[:2], "levels": self.levels[:1], "lrs": self.lrs[:1],
                "seeds": self.seeds[:1], "steps": 2, "min_steps": 0, "evals": 1, "steps_for": {}, "min_steps_for": {},
                "warmup_steps": 0, "batch_size": min(self.batch_size, 4)}


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    body: str
    looped: bool
    task: str
    level: str
    lr: float
    seed: int


def levels_of(s: GridSettings, task: str) -> list[str]:
    """The settings' levels that `task` has (a task with one level runs at it)."""
    return [lv for lv in s.levels if lv in TASKS[task]] or [next(iter(TASKS[task]))]


def expand(s: GridSettings) -> list[Cell]:
    """The runs of the lr sweep (every lr on the first seed). The other seeds then run at each
    (task, level, body, plain/looped)'s chosen lr: n_runs() counts them."""
    return [Cell(b, lp, t, lv, lr, s.seeds[0])
            for t in s.tasks for lv in levels_of(s, t) for b in s.bodies for lp in s.looped for lr in s.lrs]


def n_runs(s: GridSettings) -> int:
    """Training runs of the whole grid: the lr sweep plus the further seeds at the chosen lr."""
    combos = sum(len(levels_of(s, t)) for t in s.tasks) * len(s.bodies) * len(s.looped)
    return combos * (len(s.lrs) + len(s.seeds) - 1)


def heads(width: int) -> int:
    """Attention heads: the most that split `width` into heads at least MIN_HEAD_DIM wide (one if none do)."""
    return max([h for h in range(1, width // MIN_HEAD_DIM + 1) if width % h == 0], default=1)


def ssd_head(width: int) -> int | None:
    """The SSD head width P for a body of this width (inner width 2 x width): SSD_HEAD where it
    divides, else the divisor in SSD_HEADS nearest SSD_HEAD; None if there is none."""
    inner = 2 * width
    fits = [p for p in SSD_HEADS if inner % p == 0]
    return min(fits, key=lambda p: (abs(p - SSD_HEAD), p)) if fits else None


@lru_cache(maxsize=None)
def n_params(cfg: SeqConfig) -> int:
    """The parameter count of SeqModel(cfg) (built once per config: the meta device would be slower,
    its initialisers run through reference kernels)."""
    return SeqModel(cfg).n_params()


def body_config(body: str, width: int, layers: int, ctx: int) -> BodyConfig | None:
    """The body at `width` under the grid's head rules, or None where the width does not fit it."""
    try:
        return BodyConfig(kind=body, d_model=width, n_layer=layers, n_head=heads(width), d_head=ssd_head(width) or SSD_HEAD, ctx=ctx)
    except ValueError:
        return None


def model_config(s: GridSettings, body: str, looped: bool, task: GridTask) -> SeqConfig:
    """The (body, plain/looped) model for `task`, its width solved to s.params parameters. The
    context is the task's length for every body (attention's position table holds n rows)."""
    n, V = task.seq_len, task.vocab
    io = dict(vocab=V, n_out=V) if V else dict(d_in=task.cfg.n_dims)
    loop = dict(b=s.b, T=s.b) if looped else {}
    layers = max(1 if looped else s.layers, bodies.get(body).min_layers)

    @lru_cache(maxsize=None)
    def at(width: int) -> SeqConfig | None:
        c = body_config(body, width, layers, n)
        return None if c is None else SeqConfig(body=c, **io, **loop)

    return at(solve_width(lambda w: n_params(at(w)) if at(w) else None, s.params))


def solve_width(params_at: Callable[[int], int | None], target: int, widths: range = range(8, 2049)) -> int:
    """The width whose parameter count is closest to `target`, among those where params_at is not
    None (a width the body cannot take). Counts grow with width: the search doubles the width until
    the count passes the target (so no model far larger than the target is built), bisects for the
    first width at or above it, then takes the closest fitting width near it."""
    def count(i: int) -> float:  # the count at the first fitting width from widths[i] on
        return next((c for w in widths[i:] if (c := params_at(w)) is not None), math.inf)

    hi = 1
    while hi < len(widths) - 1 and count(hi) < target:
        hi = min(2 * hi, len(widths) - 1)
    lo = hi // 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < target else (lo, mid)
    near = [w for w in widths[max(0, lo - 3): lo + 3] if params_at(w) is not None]
    if not near:
        raise ValueError(f"no width in {widths[0]}..{widths[-1]} fits this body")
    return min(near, key=lambda w: (abs(params_at(w) - target), w))


def tasks_of(s: GridSettings) -> dict[tuple[str, str], tuple[Entry, GridTask]]:
    return {(t, lv): (TASKS[t][lv], TASKS[t][lv].build()) for t in s.tasks for lv in levels_of(s, t)}


def score_cell(model, task: GridTask, entry: Entry, cfg: SeqConfig) -> dict:
    """Score at the training iterations; looped: also at 2b, 4b, 10b (the worst of them:
    score_past_b; stability: worst error up to 10b / error at b, both floored at ERROR_FLOOR);
    recall tasks on a body without a position table: at 2n and 4n tokens."""
    out = {"score": entry.score(task.evaluate(model))}
    if cfg.looped:
        past = {k: entry.score(task.evaluate(model, iters=k * cfg.b)) for k in (2, 4, 10)}
        out.update({f"score_{k}b": v for k, v in past.items()})
        out["score_past_b"] = min(past.values())
        out["stability"] = max(1 - out["score_past_b"], ERROR_FLOOR) / max(1 - out["score"], ERROR_FLOOR)
    if entry.extrapolates and bodies.get(cfg.body.kind).window == "none":
        for f in (2, 4):
            out[f"score_len{f}x"] = entry.score(task.evaluate(model, val=task.at_length(f * task.seq_len)))
    return out


def step_cost(cfg: SeqConfig) -> float:
    """A training step's relative cost: the body's cost per layer and position, times the layers it
    runs and the positions it reads (its context is the task's length). It orders work only."""
    return bodies.get(cfg.body.kind).cost * cfg.body.n_layer * cfg.b * cfg.body.ctx


@dataclass
class GridResult:
    table: pd.DataFrame  # one row per (task, level, body, plain/looped, seed) at the chosen lr
    history: pd.DataFrame  # every evaluation of those runs
    sweep: pd.DataFrame  # the lr sweep: one row per (task, level, body, plain/looped, lr) on the first seed


def run(s: GridSettings) -> GridResult:
    """Train (or load) every run, then score. Two passes, each training its missing runs side by
    side (`workers`, `backend`): the lr sweep on the first seed, then the other seeds at each
    model's chosen lr. Finished runs are loaded, so a cut grid resumes."""
    tasks = tasks_of(s)
    models = {(t, lv, body, lp): model_config(s, body, lp, task)
              for (t, lv), (_, task) in tasks.items() for body, lp in itertools.product(s.bodies, s.looped)}
    cell = lambda k, lr, seed: Cell(k[2], k[3], k[0], k[1], lr, seed)
    how = dict(backend=s.backend, ray_address=s.ray_address, gpus_per_run=s.gpus_per_run)

    def train_all(pairs):  # [(model key, lr, seed)]: the missing ones, side by side, the costliest first
        train_missing(SeqModel, [(models[k], tasks[k[:2]][1], s.train_config(cell(k, lr, seed))) for k, lr, seed in pairs],
                      STUDY, s.workers, cost=step_cost, **how)

    def load(k, lr, seeds):  # (history, {(name, seed): model}) of finished runs
        return train_sweep(SeqModel, [models[k]], tasks[k[:2]][1], s.train_config(cell(k, lr, seeds[0])),
                           seeds=list(seeds), study=STUDY)

    def solve(h, k):
        entry, task = tasks[k[:2]]
        return samples_to_solve(h, ceilings.solve_threshold(ceilings.ceiling(k[0], task)), entry.score)

    train_all([(k, lr, s.seeds[0]) for k in models for lr in s.lrs])
    sweep_rows, best = [], {}
    for k in models:
        finals = {}
        for lr in s.lrs:
            h = load(k, lr, s.seeds[:1])[0].sort_values("step")
            finals[lr] = (tasks[k[:2]][0].score(h.iloc[-1].to_dict()), solve(h, k))
            sweep_rows.append(dict(zip(("task", "difficulty", "body", "looped"), k), lr=lr, score=finals[lr][0],
                                   samples_to_solve=str(finals[lr][1]), steps=int(h["step"].iloc[-1]),
                                   stop_reason=h["stop_reason"].iloc[-1]))
        best[k] = choose_lr(finals)
    train_all([(k, best[k], seed) for k in models for seed in s.seeds[1:]])
    rows, histories = [], []
    for k, mcfg in models.items():
        (t, lv, body, lp), (entry, task) = k, tasks[k[:2]]
        h, trained = load(k, best[k], s.seeds)
        ceiling = ceilings.ceiling(t, task)
        histories.append(h.assign(task=t, difficulty=lv, body=body, looped=lp, ceiling=ceiling,  # its lr column: the schedule's
                                  score=[entry.score(r) for r in h.to_dict("records")]))
        for seed in s.seeds:
            runs = h[h.seed == seed].sort_values("step")
            last, solved = runs.iloc[-1], solve(runs, k)
            rows.append({"task": t, "difficulty": lv, "body": body, "looped": lp, "layers": mcfg.body.n_layer, "b": mcfg.b,
                         "width": mcfg.body.d_model, "params": n_params(mcfg), "state_size": state_size(mcfg.body, task.seq_len),
                         "lr": best[k], "seed": seed, "ceiling": ceiling, "threshold": ceilings.solve_threshold(ceiling),
                         **score_cell(trained[mcfg.name, seed], task, entry, mcfg),
                         "solved": solved.solved, "samples_to_solve": solved.samples if solved.solved else math.nan,
                         "censored_at": math.nan if solved.solved else solved.censored_at,
                         "steps": int(last["step"]), "samples": int(last["samples"]), "stop_reason": last["stop_reason"],
                         "train_minutes": float(last["train_minutes"]), "samples_per_s": float(last["samples_per_s"])})
    return GridResult(pd.DataFrame(rows), pd.concat(histories, ignore_index=True), pd.DataFrame(sweep_rows))


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """The long table: one row per (cell, seed, length factor), with the score at that length
    (factor 1: the training length; 2 and 4 where the body reads longer sequences)."""
    keep = [c for c in table.columns if not c.startswith("score_len")]
    parts = [table[keep].assign(length_factor=1)]
    for f in (2, 4):
        if (col := f"score_len{f}x") in table:
            longer = table[table[col].notna()]
            parts.append(longer[keep].assign(length_factor=f, score=longer[col], score_past_b=math.nan, stability=math.nan))
    return pd.concat(parts, ignore_index=True)


def budget(s: GridSettings) -> dict[str, str]:
    """Per task, the training budget of one run and of the protocol, in sequences (for the anchors)."""
    def one(task: str) -> str:
        cap = s.cap(task) * s.batch_size
        most = (s.cap(task) + max(1, round(s.decay_fraction * s.cap(task)))) * s.batch_size
        return (f"at most {most:,} sequences per run ({cap:,} to the cap, batch {s.batch_size}, then the decay), "
                f"{len(s.lrs)} lrs ({min(s.lrs):g} .. {max(s.lrs):g}) on seed {s.seeds[0]}, {len(s.seeds)} seeds")
    return {t: one(t) for t in s.tasks}


def model_table(s: GridSettings) -> pd.DataFrame:
    """Width, heads, parameters (and their gap to the target) and state size of every model of the grid."""
    rows = []
    for (t, lv), (_, task) in tasks_of(s).items():
        for body, lp in itertools.product(s.bodies, s.looped):
            cfg = model_config(s, body, lp, task)
            n = n_params(cfg)
            rows.append({"task": t, "difficulty": lv, "body": body, "looped": lp, "layers": cfg.body.n_layer, "b": cfg.b,
                         "width": cfg.body.d_model, "heads": cfg.body.n_head if body in ("attention", "hybrid") else None,
                         "params": n, "params_gap_pct": round(100 * (n / s.params - 1), 1),
                         "state_size": state_size(cfg.body, task.seq_len), "seq_len": task.seq_len})
    return pd.DataFrame(rows)
