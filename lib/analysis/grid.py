"""The block x task grid's verdicts as data: each a value with its interval, a label and a reason,
computed from the per-seed table of lib.studies.grid.run (one row per task, level, body,
plain/looped and seed); `render` formats them as prose, and tests assert the values.

    cells(table)          -> [CellVerdict]      ceiling, final score [t-interval], samples-to-solve
                                                (censored: "> N"), learned / not learned, stopping
    cell_frame(verdicts)  -> DataFrame          the table of the report
    looping(table, cs)    -> [LoopVerdict]      looped vs plain, only where at least one of them learned
    efficiency(table, cs) -> [EfficiencyVerdict] per task: samples-to-solve at equal parameters, or
                                                the score above the ceiling per parameter
    zoology_mqar(table, cs) -> labels.Verdict   "attention solves MQAR", with our budget beside theirs
    choose_lr(finals)     -> lr                 the lr sweep's pick on validation

Labels: a cell is "not learned" when its mean score is at or below its task's shortcut ceiling,
"solved" at or above the solve threshold (lib.analysis.ceilings), "learning" between. Comparisons
use lib.analysis.stats.compare: "apart" only at p < 0.05 with >= MIN_SEEDS seeds a side; fewer
seeds are descriptive, and the words say so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from lib.analysis import labels, reference
from lib.analysis.ceilings import LEARNED
from lib.analysis.ceilings import learned as learned_label
from lib.analysis.solve import SolveSummary, SolveTime, summarize
from lib.analysis.stats import MIN_SEEDS, Comparison, compare, seed_interval

NOT_LEARNED, LEARNING, SOLVED = LEARNED
ERROR_FLOOR = 0.01  # errors below this count as this in the stability ratio
KEY = ("task", "difficulty", "body", "looped")


def name(body: str, looped: bool) -> str:
    return f"{body}{' (looped)' if looped else ''}"


# ---- the lr sweep

def choose_lr(finals: Mapping[float, tuple[float, SolveTime]]) -> float:
    """The lr of the sweep (lr -> (final validation score, samples-to-solve) on the first seed):
    the fastest to solve if any solved, else the highest final score (ties: the smaller lr)."""
    solved = {lr: t.samples for lr, (_, t) in finals.items() if t.solved}
    if solved:
        return min(solved, key=lambda lr: (solved[lr], lr))
    return max(finals, key=lambda lr: (finals[lr][0], -lr))


# ---- one cell

@dataclass(frozen=True)
class CellVerdict:
    task: str
    difficulty: str
    body: str
    looped: bool
    params: int
    lr: float
    ceiling: float  # the task's shortcut ceiling, in score units
    threshold: float  # the solve threshold
    score: float  # final score: mean over seeds and its 95 % t-interval
    lo: float
    hi: float
    seeds: int
    solve: SolveSummary  # samples-to-solve over seeds, censoring kept
    label: str  # not learned | learning | solved
    finished: bool  # every seed stopped by its plateau rule (not by the cap)
    stops: str  # e.g. "converged ×2, max_steps ×1"
    reason: str

    @property
    def learned(self) -> bool:
        return self.label != NOT_LEARNED

    @property
    def name(self) -> str:
        return name(self.body, self.looped)


def solve_times(g: pd.DataFrame) -> list[SolveTime]:
    """Per-seed samples-to-solve from the table's solved / samples_to_solve / censored_at columns."""
    return [SolveTime(True, int(r.samples_to_solve), None) if r.solved else SolveTime(False, None, int(r.censored_at))
            for r in g.itertuples()]


def cell(g: pd.DataFrame) -> CellVerdict:
    """The verdict of one cell from its per-seed rows."""
    first = g.iloc[0]
    mean, lo, hi = seed_interval(g["score"])
    ceiling, threshold = float(first["ceiling"]), float(first["threshold"])
    label = learned_label(mean, ceiling, threshold)
    solve = summarize(solve_times(g))
    stops = g["stop_reason"].value_counts()
    where = {NOT_LEARNED: f"at or below the shortcut ceiling {ceiling:.3f}",
             LEARNING: f"above the ceiling {ceiling:.3f}, below the solve threshold {threshold:.3f}",
             SOLVED: f"at or above the solve threshold {threshold:.3f}"}[label]
    reason = (f"mean {mean:.3f} [{lo:.3f}, {hi:.3f}] over {len(g)} seeds, {where}; solved on {solve.solved}/{solve.n} seeds, "
              f"samples-to-solve {solve}")
    return CellVerdict(first["task"], first["difficulty"], first["body"], bool(first["looped"]), int(first["params"]),
                       float(first["lr"]), ceiling, threshold, mean, lo, hi, len(g), solve, label,
                       bool((g["stop_reason"] == "converged").all()), ", ".join(f"{k} ×{v}" for k, v in stops.items()), reason)


def cells(table: pd.DataFrame) -> list[CellVerdict]:
    return [cell(g) for _, g in table.groupby(list(KEY), sort=False)]


def cell_frame(verdicts: list[CellVerdict]) -> pd.DataFrame:
    """The report's table: ceiling, final score [95 % t-interval], samples-to-solve (a censored
    median reads "> N"), learned, and how the runs stopped."""
    return pd.DataFrame([{
        "task": v.task, "difficulty": v.difficulty, "model": v.name, "params": v.params, "lr": v.lr,
        "ceiling": round(v.ceiling, 3), "score [95 % CI]": f"{v.score:.3f} [{v.lo:.3f}, {v.hi:.3f}]", "seeds": v.seeds,
        "samples-to-solve": str(v.solve), "solved": f"{v.solve.solved}/{v.solve.n}", "learned": v.label, "stopped": v.stops,
    } for v in verdicts])


# ---- looped vs plain

@dataclass(frozen=True)
class LoopVerdict:
    task: str
    difficulty: str
    body: str
    measure: str  # 'score' or 'samples-to-solve' (both solved on every seed)
    comparison: Comparison | None  # looped (a) vs plain (b); None when not compared
    label: str  # helps | hurts | not apart | descriptive | not compared
    reason: str


def _per_seed(table: pd.DataFrame, v: CellVerdict, column: str) -> list[float]:
    g = table[(table.task == v.task) & (table.difficulty == v.difficulty) & (table.body == v.body) & (table.looped == v.looped)]
    return g[column].astype(float).tolist()


def loop_verdict(table: pd.DataFrame, looped: CellVerdict, plain: CellVerdict) -> LoopVerdict:
    """Looping helps / hurts a body on a task: compared only where at least one of the two cells
    learned. Both solved on every seed: by samples-to-solve (log scale, fewer is better); else by
    the final score."""
    where = (looped.task, looped.difficulty, looped.body)
    if not (looped.learned or plain.learned):
        return LoopVerdict(*where, "score", None, "not compared",
                           f"neither learned (looped {looped.score:.3f}, plain {plain.score:.3f}, ceiling {looped.ceiling:.3f})")
    both_solved = looped.solve.solved == looped.solve.n and plain.solve.solved == plain.solve.n
    measure, column = ("samples-to-solve", "samples_to_solve") if both_solved else ("score", "score")
    c = compare(_per_seed(table, looped, column), _per_seed(table, plain, column), log=both_solved)
    better = "lower" if both_solved else "higher"  # fewer samples, or a higher score, is better
    label = {"descriptive": "descriptive", "untested": "descriptive", "not apart": "not apart"}.get(
        c.verdict, "helps" if c.verdict == better else "hurts")
    return LoopVerdict(*where, measure, c, label, c.sentence("looped", "plain", lower="fewer samples" if both_solved else "worse"))


def looping(table: pd.DataFrame, verdicts: list[CellVerdict]) -> list[LoopVerdict]:
    by = {(v.task, v.difficulty, v.body, v.looped): v for v in verdicts}
    return [loop_verdict(table, v, by[v.task, v.difficulty, v.body, False])
            for v in verdicts if v.looped and (v.task, v.difficulty, v.body, False) in by]


# ---- parameter efficiency

@dataclass(frozen=True)
class EfficiencyVerdict:
    task: str
    difficulty: str
    measure: str  # 'samples-to-solve at equal parameters' | 'score above the ceiling per 1k parameters' | 'none'
    best: str | None  # the model, or None when no cell learned
    value: float  # its samples-to-solve (median) or gain per 1k parameters
    ties: tuple[str, ...]  # cells not apart from it (stats.compare), or all within reach when descriptive
    descriptive: bool  # fewer than MIN_SEEDS seeds: no "apart"
    reason: str


def gain_per_kparam(v: CellVerdict) -> float:
    """The score above the ceiling, as a fraction of the way to 1, per 1,000 parameters."""
    return (v.score - v.ceiling) / (1 - v.ceiling) / (v.params / 1000) if v.ceiling < 1 else math.nan


def efficiency(table: pd.DataFrame, verdicts: list[CellVerdict]) -> list[EfficiencyVerdict]:
    """Per task: where cells solved on every seed, the fewest samples-to-solve at (within ±5 %)
    equal parameters; else, among cells that learned, the largest gain over the ceiling per
    parameter; no claim where no cell learned."""
    out = []
    for (task, lv), group in pd.DataFrame({"v": verdicts, "task": [v.task for v in verdicts],
                                           "lv": [v.difficulty for v in verdicts]}).groupby(["task", "lv"], sort=False):
        vs = list(group["v"])
        solved = [v for v in vs if v.solve.solved == v.solve.n]
        learned = [v for v in vs if v.learned]
        if solved:
            best = min(solved, key=lambda v: v.solve.low)
            column, log, measure, value = "samples_to_solve", True, "samples-to-solve at equal parameters", best.solve.low
            rivals = solved
        elif learned:
            best = max(learned, key=gain_per_kparam)
            column, log, measure, value = "score", False, "score above the ceiling per 1k parameters", gain_per_kparam(best)
            rivals = learned
        else:
            out.append(EfficiencyVerdict(task, lv, "none", None, math.nan, (), False,
                                         f"no cell learned (every mean score at or below the ceiling {vs[0].ceiling:.3f})"))
            continue
        ours = _per_seed(table, best, column)
        comparisons = {v.name: compare(ours, _per_seed(table, v, column), log=log) for v in rivals if v is not best}
        descriptive = any(c.verdict in ("descriptive", "untested") for c in comparisons.values())
        ties = tuple(n for n, c in comparisons.items() if not c.apart)
        seeds = min(v.seeds for v in rivals)
        reason = (f"{best.name}: {value:,.0f} samples (median over seeds)" if log else
                  f"{best.name}: {value:.3f} of the way from the ceiling to 1 per 1k parameters ({best.params:,} parameters)")
        reason += (f"; descriptive only ({seeds} seeds, fewer than {MIN_SEEDS})" if descriptive else
                   f"; not apart from {', '.join(ties)}" if ties else "; apart from every other cell (p < 0.05)")
        out.append(EfficiencyVerdict(task, lv, measure, best.name, value, ties, descriptive, reason))
    return out


# ---- the anchors

def zoology_mqar(verdicts: list[CellVerdict], budget: str = "") -> labels.Verdict:
    """Zoology's "attention solves MQAR", judged on our plain attention cell of MQAR (easy first),
    with our budget (`budget`: sequences per run, lrs, seeds) beside zoology's."""
    ref = reference.ZOOLOGY_MQAR
    ours = sorted((v for v in verdicts if v.task == "mqar" and v.body == "attention" and not v.looped), key=lambda v: v.difficulty != "easy")
    claim = "attention solves MQAR"
    if not ours:
        label, reason = labels.derive(None, 0, False, True)
        return labels.Verdict(claim, ref["metric"], ref["horizon"], ref["value"], math.nan, (math.nan, math.nan), 0, False, True,
                              label, reason)
    v = ours[0]
    holds = True if v.solve.solved == v.solve.n else (False if v.finished and v.solve.solved == 0 else None)
    why = (f"{v.solve.solved}/{v.solve.n} seeds reached the solve threshold {v.threshold:.3f} (score {v.score:.3f} [{v.lo:.3f}, "
           f"{v.hi:.3f}], samples-to-solve {v.solve}); our budget: {budget or 'not stated'}; zoology's: {ref['budget']}")
    label, reason = labels.derive(holds, v.seeds, v.finished, True, why)
    return labels.Verdict(claim, ref["metric"], ref["horizon"], ref["value"], v.score, (v.lo, v.hi), v.seeds, v.finished, True,
                          label, reason)


def anchors(verdicts: list[CellVerdict], budget: Mapping[str, str]) -> pd.DataFrame:
    """The anchors' published findings, their budget beside ours (per task: `budget[task]`), and
    our plain cells of the same task."""
    rows = []
    for a in reference.GRID_ANCHORS:
        ours = [v for v in verdicts if v.task == a["task"] and not v.looped]
        rows.append({"source": a["source"], "task": a["task"], "published": a["published"], "their budget": a["budget"],
                     "our budget": budget.get(a["task"], "not in this grid"),
                     "ours (plain: score [95 % CI], samples-to-solve)": "; ".join(
                         f"{v.body} {v.score:.3f} [{v.lo:.3f}, {v.hi:.3f}], {v.solve}" for v in ours) or "not in this grid"})
    return pd.DataFrame(rows)


# ---- stopping

@dataclass(frozen=True)
class Stopping:
    cells: int
    finished_learned: tuple[str, ...]  # every seed converged, the cell learned
    plateau: tuple[str, ...]  # every seed converged, not learned (a later rise cannot be excluded)
    capped: tuple[str, ...]  # the cap stopped at least one seed: its score is a lower bound


def stopping(verdicts: list[CellVerdict]) -> Stopping:
    label = lambda v: f"{v.task}: {v.name}"
    return Stopping(len(verdicts), tuple(label(v) for v in verdicts if v.finished and v.learned),
                    tuple(label(v) for v in verdicts if v.finished and not v.learned),
                    tuple(label(v) for v in verdicts if not v.finished))


# ---- prose

def render(verdicts: list[CellVerdict], loops: list[LoopVerdict], eff: list[EfficiencyVerdict],
           zoology: labels.Verdict) -> str:
    """The findings as Markdown bullets, every number from the verdicts."""
    st = stopping(verdicts)
    lines = [f"- **Stopping**: {len(st.finished_learned)}/{st.cells} cells stopped on their plateau rule on every seed having "
             f"learned; {len(st.plateau)} stopped on a plateau at or below their ceiling (a later rise cannot be excluded)"
             + (f": {', '.join(st.plateau)}" if st.plateau else "")
             + f"; the cap stopped at least one seed of {len(st.capped)}, whose scores are lower bounds"
             + (f": {', '.join(st.capped)}." if st.capped else ".")]
    learned = [v for v in verdicts if v.learned]
    lines.append(f"- **Learned**: {len(learned)}/{len(verdicts)} cells score above their task's shortcut ceiling "
                 f"({sum(v.label == SOLVED for v in verdicts)} reach the solve threshold).")
    lines.append(f"- **{zoology.label}** — {zoology.claim} (zoology: {zoology.ref_value}): {zoology.reason}.")
    for e in eff:
        lines.append(f"- **{e.task}** ({e.difficulty}), parameter efficiency: " +
                     (f"no claim, {e.reason}." if e.best is None else f"by {e.measure}, {e.reason}."))
    for (task, lv), group in pd.DataFrame({"l": loops, "t": [x.task for x in loops], "d": [x.difficulty for x in loops]}).groupby(
            ["t", "d"], sort=False):
        by_label: dict[str, list[str]] = {}
        for x in group["l"]:
            by_label.setdefault(x.label, []).append(x.body)
        few = [x for x in group["l"] if x.label == "descriptive"]
        text = "; ".join(f"{k}: {', '.join(v)}" for k, v in by_label.items())
        lines.append(f"- **{task}** ({lv}), looped vs plain: {text}"
                     + (f" (descriptive: fewer than {MIN_SEEDS} seeds a side, no difference is called apart)" if few else "")
                     + " (exact permutation test over seeds, apart at p < 0.05; compared only where one of the two learned).")
    return "\n".join(lines)
