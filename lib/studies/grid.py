"""The block x task grid's wiring: every body (lib/models/bodies.py), plain and looped, on every
task, iso-parameter, with a small lr sweep and seeds.

    settings = GridSettings.load(params)
    cells = expand(settings)                 # one Cell per (body, looped, task, level, lr, seed)
    table = run(settings)                    # trains what is missing (resumable), scores every cell

Protocol. Every (body, plain/looped) is sized to `params` parameters by solving its width
(`solve_width`, multiples of 16). The lr sweep runs on the first seed; the best lr on validation
then runs every seed. Looped cells (L = 1, b iterations, T = b: full backprop) are scored at b, 2b,
4b and 10b; stability = worst error up to 10b / error at b (both floored at 1 %), for cells that
learned. Token tasks are scored by accuracy at the labelled positions; regression by 1 - error
(SE/E[y^2] at the last position), so higher is better everywhere. Length extrapolation: token tasks that can be drawn longer are scored at 2n and 4n.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from lib.analysis import reference
from lib.analysis.stats import MIN_SEEDS, compare, seed_interval
from lib.config import Config
from lib.contracts import GridTask
from lib.models import bodies
from lib.models.bodies import BodyConfig, state_size
from lib.models.seq import SeqConfig, SeqModel
from lib.studies import eval_every
from lib.sweep import train_missing, train_sweep
from lib.tasks.algo_sequence import AlgoSequence
from lib.tasks.algorithmic import AlgorithmicConfig
from lib.tasks.recall import Recall, RecallConfig
from lib.tasks.regression import InContextRegression
from lib.tasks.selective_copy import SelectiveCopy, SelectiveCopyConfig
from lib.train import TrainConfig

STUDY = "block_task_grid"
LEARNED = 0.5  # a cell "learned" when its score at b is at least this (stability is reported only then)
ERROR_FLOOR = 0.01  # errors below this count as this in the stability ratio


@dataclass(frozen=True)
class Entry:
    """A task of the grid at one difficulty: how to build it (a lib.contracts.GridTask: its seq_len
    and vocab size the model) and how to read its score."""

    build: Callable[[], GridTask]
    score: Callable[[dict], float]  # evaluate()'s metrics -> higher-is-better score
    extrapolates: bool = False  # can be drawn at 2n and 4n (Recall.at_length)
    metric: str = "val_acc"  # the metric the convergence rule watches, and its direction
    mode: str = "max"


def _recall(kind: str, **kw) -> Entry:
    return Entry(lambda: Recall(RecallConfig(kind=kind, **kw)), lambda m: m["val_acc"], extrapolates=True)


def _algo(task: str, **kw) -> Entry:
    return Entry(lambda: AlgoSequence(AlgorithmicConfig(task=task, **kw)), lambda m: m["val_acc"])


def _regression(kind: str, **kw) -> Entry:
    return Entry(lambda: InContextRegression.of(kind, **kw), lambda m: 1 - m["val_error"], metric="val_error", mode="min")


# Tasks by name and difficulty level: vocabulary, length, pairs.
TASKS: dict[str, dict[str, Entry]] = {
    # MQAR's vocabulary exceeds its length (zoology's condition): stray copies of a key stay rare
    "mqar": {"easy": _recall("mqar", vocab=128, seq_len=64, pairs=8, val_size=500),
             "hard": _recall("mqar", vocab=256, seq_len=128, pairs=24, val_size=500)},
    "induction": {"easy": _recall("induction", vocab=16, seq_len=32, val_size=500),
                  "hard": _recall("induction", vocab=64, seq_len=128, val_size=500)},
    "selective_mamba": {"easy": _recall("selective", vocab=16, seq_len=64, pairs=8, val_size=500),
                        "hard": _recall("selective", vocab=16, seq_len=256, pairs=16, val_size=500)},
    "selective_copy": {"easy": Entry(lambda: SelectiveCopy(SelectiveCopyConfig(val_size=500)), lambda m: 1 - m["val_error_pct"] / 100,
                                     metric="val_error_pct", mode="min")},
    "copy": {"easy": _algo("copy", V=16, length=10, val_size=500), "hard": _algo("copy", V=16, length=20, val_size=500)},
    "flip": {"easy": _algo("flip", V=16, length=10, val_size=500), "hard": _algo("flip", V=16, length=20, val_size=500)},
    "cumsum": {"easy": _algo("cumsum", V=10, length=10, val_size=500), "hard": _algo("cumsum", V=16, length=20, val_size=500)},
    "addition": {"easy": _algo("addition", base=16, limit=256, val_size=500), "hard": _algo("addition", base=16, limit=4096, val_size=500)},
    "linear": {"easy": _regression("linear", n_dims=4, points=12, val_size=500), "hard": _regression("linear", n_dims=8, points=24, val_size=500)},
    "noisy_linear": {"easy": _regression("noisy_linear", n_dims=4, points=12, val_size=500)},
    "sparse_linear": {"easy": _regression("sparse_linear", n_dims=8, points=12, val_size=500)},
}


@dataclass(frozen=True)
class GridSettings(Config):
    bodies: tuple[str, ...] = ("attention", "mamba", "ssd", "conv", "mixer", "hybrid")
    tasks: tuple[str, ...] = ("mqar", "induction", "flip", "linear")
    levels: tuple[str, ...] = ("easy",)
    looped: tuple[bool, ...] = (False, True)
    params: int = 50_000  # target parameter count of every model
    layers: int = 2  # plain depth L
    b: int = 4  # looped: iterations of a 1-layer body
    lrs: tuple[float, ...] = (1e-3, 3e-3)
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 2000
    batch_size: int = 64
    warmup_steps: int = 100
    evals: int = 10
    # convergence: a run stops once its task's metric (Entry.metric) improved by less than
    # converge_tol (relative) over converge_window evaluations, checked from min_steps on; None: the cap only
    converge_tol: float | None = None
    converge_window: int = 3
    min_steps: int = 0
    device: str = "auto"
    workers: int = 1
    batch_seeds: str = "auto"  # auto | true | false: seeds and lrs of a model as one batched model (lib.batched; auto: on CUDA)

    def __post_init__(self):
        object.__setattr__(self, "bodies", tuple(bodies.resolve(b, "bodies") for b in self.bodies))
        bad = sorted(set(self.tasks) - set(TASKS))
        if bad:
            raise ValueError(f"tasks: {bad} not among {sorted(TASKS)}")
        for t in self.tasks:
            missing = sorted(set(self.levels) - set(TASKS[t]))
            if missing and len(TASKS[t]) > 1:
                raise ValueError(f"levels: task {t!r} has no level {missing}; it has {sorted(TASKS[t])}")
        if not self.lrs or not self.seeds or self.params < 1000 or self.b < 2 or self.layers < 1:
            raise ValueError("need lrs and seeds, params >= 1000, b >= 2, layers >= 1")
        if self.batch_seeds not in ("auto", "true", "false"):
            raise ValueError(f"batch_seeds must be one of ['auto', 'false', 'true'], got {self.batch_seeds!r}")


@dataclass(frozen=True)
class Cell:
    body: str
    looped: bool
    task: str
    level: str
    lr: float
    seed: int


def levels_of(s: GridSettings, task: str) -> list[str]:
    return [lv for lv in s.levels if lv in TASKS[task]] or [next(iter(TASKS[task]))]


def expand(s: GridSettings) -> list[Cell]:
    """The cells of the lr sweep (every lr on the first seed). The other seeds then run at each
    (body, looped, task, level)'s chosen lr: n_runs() counts them."""
    return [Cell(b, lp, t, lv, lr, s.seeds[0])
            for t in s.tasks for lv in levels_of(s, t) for b in s.bodies for lp in s.looped for lr in s.lrs]


def n_runs(s: GridSettings) -> int:
    """Training runs of the whole grid: the lr sweep plus the further seeds at the chosen lr."""
    combos = sum(len(levels_of(s, t)) for t in s.tasks) * len(s.bodies) * len(s.looped)
    return combos * (len(s.lrs) + len(s.seeds) - 1)


def model_config(s: GridSettings, body: str, looped: bool, task: GridTask) -> SeqConfig:
    """The (body, plain/looped) model for `task`, its width solved to s.params parameters."""
    n, V = task.seq_len, task.vocab
    io = dict(vocab=V, n_out=V) if V else dict(d_in=task.cfg.n_dims)
    loop = dict(b=s.b, T=s.b) if looped else {}
    spec = bodies.get(body)
    layers = max(1 if looped else s.layers, spec.min_layers)
    # room for 4n tokens (length extrapolation), except for a body whose weights are sized by its
    # window (the mixer's T x T matrices would dominate its parameters): its window is the task's length
    ctx = n if spec.window == "fixed" else 4 * n

    def make(width: int) -> SeqConfig:
        return SeqConfig(body=BodyConfig(kind=body, d_model=width, n_layer=layers, n_head=4, d_head=16, ctx=ctx), **io, **loop)

    return make(solve_width(lambda w: SeqModel(make(w)).n_params(), s.params))


def solve_width(params_at: Callable[[int], int], target: int, widths=range(16, 1025, 16)) -> int:
    """The width (a multiple of 16) whose parameter count is closest to `target` (counts grow with width)."""
    best, best_gap = widths[0], None
    for w in widths:
        gap = abs(params_at(w) - target)
        if best_gap is None or gap < best_gap:
            best, best_gap = w, gap
        elif params_at(w) > target:
            break
    return best


def train_config(s: GridSettings, lr: float, seed: int, grid_task: Entry | None = None) -> dict:
    """A run's TrainConfig keys; with s.converge_tol set, the convergence rule on `grid_task`'s metric."""
    cfg = dict(steps=s.steps, batch_size=s.batch_size, lr=lr, warmup_steps=s.warmup_steps, eval_every=eval_every(s.steps, s.evals),
               device=s.device, seed=seed, batch_seeds=s.batch_seeds)
    if s.converge_tol is not None and grid_task is not None:
        cfg.update(converge_metric=grid_task.metric, converge_mode=grid_task.mode, converge_tol=s.converge_tol,
                   converge_window=s.converge_window, min_steps=s.min_steps)
    return cfg


def tasks_of(s: GridSettings) -> dict[tuple[str, str], tuple[Entry, GridTask]]:
    return {(t, lv): (TASKS[t][lv], TASKS[t][lv].build()) for t in s.tasks for lv in levels_of(s, t)}


def score_cell(model, task: GridTask, grid_task: Entry, cfg: SeqConfig) -> dict:
    """Score at the training iterations; looped: also at 2b, 4b, 10b (stability); token tasks that
    extrapolate: at 2n and 4n."""
    out = {"score": grid_task.score(task.evaluate(model))}
    if cfg.looped:
        errs = {k: 1 - grid_task.score(task.evaluate(model, iters=k * cfg.b)) for k in (2, 4, 10)}
        out.update({f"score_{k}b": 1 - e for k, e in errs.items()})
        out["score_past_b"] = min(1 - e for e in errs.values())
        # worst error up to 10b over the error at b, both floored at ERROR_FLOOR (a solved cell is 1.0, not 0/0);
        # only for cells that learned (score at b >= LEARNED): an unlearned cell has no stability to speak of
        out["stability"] = (max(max(errs.values()), ERROR_FLOOR) / max(1 - out["score"], ERROR_FLOOR)
                            if out["score"] >= LEARNED else float("nan"))
    if grid_task.extrapolates and cfg.body.ctx >= 4 * task.seq_len:
        n = task.seq_len
        for f in (2, 4):
            out[f"score_len{f}x"] = grid_task.score(task.evaluate(model, val=task.at_length(f * n)))
    return out


def run(s: GridSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (or load) every cell, then score: (tidy table, one row per cell and seed; histories).

    Two passes, each training its missing runs side by side (`workers`): the lr sweep on the first
    seed, then the other seeds at each model's best lr (highest validation score at its last
    evaluation). Finished runs are loaded, so a cut grid resumes."""
    tasks = tasks_of(s)
    models = {(t, lv, body, looped): model_config(s, body, looped, task)
              for (t, lv), (gt, task) in tasks.items() for body, looped in itertools.product(s.bodies, s.looped)}

    def runs(pairs):  # [(key, lr, seed)] -> train_missing's (model config, task, TrainConfig)
        return [(models[k], tasks[k[:2]][1], TrainConfig.load(train_config(s, lr, seed, tasks[k[:2]][0])))
                for k, lr, seed in pairs]

    def sweep(key, lr, seeds):
        return train_sweep(SeqModel, [models[key]], tasks[key[:2]][1], train_config(s, lr, seeds[0], tasks[key[:2]][0]),
                           seeds=list(seeds), study=STUDY)

    train_missing(SeqModel, runs([(k, lr, s.seeds[0]) for k in models for lr in s.lrs]), STUDY, s.workers)
    best = {}
    for k in models:
        finals = {lr: sweep(k, lr, s.seeds[:1])[0].sort_values("step").iloc[-1].to_dict() for lr in s.lrs}
        best[k] = max(s.lrs, key=lambda lr: tasks[k[:2]][0].score(finals[lr]))
    train_missing(SeqModel, runs([(k, best[k], seed) for k in models for seed in s.seeds[1:]]), STUDY, s.workers)
    rows, histories = [], []
    for k, mcfg in models.items():
        (t, lv, body, looped), (gt, task) = k, tasks[k[:2]]
        h, trained = sweep(k, best[k], s.seeds)
        h = h.assign(task=t, difficulty=lv, body=body, looped=looped, lr=best[k])
        histories.append(h)
        for seed in s.seeds:
            last = h[h.seed == seed].sort_values("step").iloc[-1]
            rows.append({"body": body, "looped": looped, "layers": mcfg.body.n_layer, "b": mcfg.b, "width": mcfg.body.d_model,
                         "params": SeqModel(mcfg).n_params(), "state_size": state_size(mcfg.body, task.seq_len),
                         "task": t, "difficulty": lv, "lr": best[k], "seed": seed,
                         **score_cell(trained[mcfg.name, seed], task, gt, mcfg),
                         "steps": int(last["step"]), "stop_reason": last.get("stop_reason", ""),
                         "train_minutes": float(last["train_minutes"]), "samples_per_s": float(last["samples_per_s"])})
    return pd.DataFrame(rows), pd.concat(histories, ignore_index=True)


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """The issue's long table: one row per (cell, seed, length factor), with score at that length
    (factor 1: the training length) and score_past_b (looped cells: the worst score at 2b..10b)."""
    base = ["body", "looped", "layers", "b", "params", "state_size", "task", "difficulty", "lr", "seed"]
    rows = []
    for _, r in table.iterrows():
        for factor, col in ((1, "score"), (2, "score_len2x"), (4, "score_len4x")):
            if col in r and pd.notna(r[col]):
                rows.append({**{k: r[k] for k in base}, "length_factor": factor, "score": r[col],
                             "score_past_b": r.get("score_past_b") if factor == 1 else None,
                             "stability": r.get("stability") if factor == 1 else None, "steps": r["steps"],
                             "stop_reason": r["stop_reason"], "train_minutes": r["train_minutes"], "samples_per_s": r["samples_per_s"]})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, difficulty, body, looped): score mean and 95 % t-interval over seeds, and
    the stability ratio for looped cells (geometric mean, interval on the log scale)."""
    rows = []
    for key, g in table.groupby(["task", "difficulty", "body", "looped"], sort=False):
        mean, lo, hi = seed_interval(g["score"])
        row = dict(zip(["task", "difficulty", "body", "looped"], key), score=mean, lo=lo, hi=hi, seeds=len(g),
                   params=int(g["params"].iloc[0]), state_size=int(g["state_size"].iloc[0]), lr=float(g["lr"].iloc[0]))
        if "stop_reason" in g:
            row["steps"] = int(g["steps"].max())
            row["stop"] = ", ".join(f"{k} ×{v}" for k, v in g["stop_reason"].value_counts().items())
        if "stability" in g and g["stability"].notna().any():
            row["stability"], row["stab_lo"], row["stab_hi"] = seed_interval(g["stability"], log=True)
        rows.append(row)
    return pd.DataFrame(rows)


def stopping_line(summ: pd.DataFrame) -> str:
    """How the cells stopped: converged on every seed at a score of at least LEARNED; converged on
    a plateau below it (the rule saw no improvement, but a later rise cannot be excluded); or the
    step cap stopped at least one seed (their scores are what the cap allowed)."""
    if "stop" not in summ:
        return ""
    done = summ["stop"].str.fullmatch(r"converged ×\d+")
    name = lambda g: ", ".join(f"{b}{' (looped)' if lp else ''}" for b, lp in zip(g.body, g.looped))
    by_task = lambda d: "; ".join(f"{t}: {name(g)}" for t, g in d.groupby("task", sort=False))
    learned, plateau, capped = summ[done & (summ.score >= LEARNED)], summ[done & (summ.score < LEARNED)], summ[~done]
    parts = [f"- Stopping: {len(learned)}/{len(summ)} cells converged on every seed at a score ≥ {LEARNED}"]
    if len(plateau):
        parts.append(f"{len(plateau)} converged on a plateau below {LEARNED} (no improvement over the rule's window; a later "
                     f"rise cannot be excluded) — {by_task(plateau)}")
    if len(capped):
        parts.append(f"the {int(capped['steps'].max())}-step cap stopped at least one seed of {len(capped)}, so their scores are "
                     f"what the cap allowed, lower bounds on what the body can reach — {by_task(capped)}")
    return "; ".join(parts) + "."


def findings(summ: pd.DataFrame, table: pd.DataFrame) -> str:
    """Where looping helps and hurts, and the best body per task at equal parameters, from the
    per-seed scores in `table` (stats.compare: apart only at p < 0.05 with >= MIN_SEEDS seeds a
    side; fewer seeds: descriptive, said so)."""
    lines = [line] if (line := stopping_line(summ)) else []
    scores = table.groupby(["task", "difficulty", "body", "looped"])["score"]
    for (task, lv), g in summ.groupby(["task", "difficulty"], sort=False):
        g = g.set_index(["body", "looped"])
        of = lambda body, looped: scores.get_group((task, lv, body, looped))
        helps, hurts, same, few = [], [], [], []
        for body in g.index.get_level_values(0).unique():
            if (body, True) in g.index and (body, False) in g.index:
                c = compare(of(body, True), of(body, False))
                {"higher": helps, "lower": hurts, "not apart": same}.get(c.verdict, few).append(
                    body if c.verdict != "descriptive" else f"{body} (looped mean {c.direction}, {min(c.n_a, c.n_b)} seeds)")
        best = g["score"].idxmax()
        name = lambda b, lp: f"{b}{' (looped)' if lp else ''}"
        ties = [name(*k) for k in g.index if k != best and compare(of(*best), of(*k)).verdict != "higher"]
        seeds = int(g["seeds"].min()) if "seeds" in g else len(of(*best))
        lines.append(f"- **{task}** ({lv}): the most parameter-efficient (best at ~{int(g['params'].median()):,} parameters) is "
                     f"**{best[0]} ({'looped' if best[1] else 'plain'})** at {g.loc[best, 'score']:.3f} "
                     f"[{g.loc[best, 'lo']:.3f}, {g.loc[best, 'hi']:.3f}]"
                     + (f", not apart from {', '.join(ties)}" if ties else ", apart from every other cell (p < 0.05)")
                     + (f" (descriptive: {seeds} seeds, fewer than {MIN_SEEDS})" if seeds < MIN_SEEDS else "")
                     + f". Looping helps {', '.join(helps) or 'no body'}; hurts {', '.join(hurts) or 'no body'}; "
                     f"not apart for {', '.join(same) or 'none'}"
                     + (f"; descriptive only (fewer than {MIN_SEEDS} seeds a side) for {', '.join(few)}" if few else "")
                     + " (looped vs plain, exact permutation test on the seeds' scores, apart at p < 0.05).")
    return "\n".join(lines)


def model_table(s: GridSettings) -> pd.DataFrame:
    """Width, parameters and state size of every (task, body, plain/looped) model of the grid."""
    rows = []
    for (t, lv), (gt, task) in tasks_of(s).items():
        for body, looped in itertools.product(s.bodies, s.looped):
            cfg = model_config(s, body, looped, task)
            rows.append({"task": t, "difficulty": lv, "body": body, "looped": looped, "layers": cfg.body.n_layer, "b": cfg.b,
                         "width": cfg.body.d_model, "params": SeqModel(cfg).n_params(), "state_size": state_size(cfg.body, task.seq_len),
                         "seq_len": task.seq_len})
    return pd.DataFrame(rows)


def anchors_beside(summ: pd.DataFrame) -> pd.DataFrame:
    """The anchors' published findings with our cells of the same task (best plain score per body)."""
    rows = []
    for _, a in reference.GRID_ANCHORS.iterrows():
        ours = summ[(summ.task == a.task) & ~summ.looped]
        text = ", ".join(f"{r.body} {r.score:.3f} [{r.lo:.3f}, {r.hi:.3f}]" for _, r in ours.iterrows()) or "not in this grid"
        rows.append({**a.to_dict(), "ours (plain, score [95 % CI])": text})
    return pd.DataFrame(rows)
