"""Samples-to-solve: training sequences until a run's score first reaches its task's solve threshold
(lib.analysis.ceilings.solve_threshold), with runs that never reached it kept as censored values
("not solved within N"), never as a score.

A run's history is lib.train's: one row per evaluation with `samples` (training sequences so far)
and the task's metrics; the score is read from a row by a column name or a function of the row
(a GridTask's `score`, which turns e.g. val_error into 1 - val_error).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

Row = Mapping[str, Any]


@dataclass(frozen=True)
class SolveTime:
    solved: bool
    samples: int | None  # training sequences at the first evaluation at or above the threshold
    censored_at: int | None  # not solved: the sequences the run trained on (its last evaluation)

    def __post_init__(self):
        if self.solved != (self.samples is not None) or self.solved == (self.censored_at is not None):
            raise ValueError(f"a SolveTime has samples when solved, censored_at when not; got {self!r}")

    @property
    def bound(self) -> int:
        """The solve time if solved, else the count it is known to exceed."""
        return self.samples if self.solved else self.censored_at

    def __str__(self) -> str:
        return f"{self.samples:,}" if self.solved else f"> {self.censored_at:,}"


def _scorer(score: str | Callable[[Row], float]) -> Callable[[Row], float]:
    return (lambda row: row.get(score, math.nan)) if isinstance(score, str) else score


def samples_to_solve(history: Iterable[Row] | Any, threshold: float, score: str | Callable[[Row], float]) -> SolveTime:
    """The first evaluation (by samples) whose score is >= threshold; rows without the score
    (a missing or NaN metric) are skipped. A DataFrame is read row by row."""
    rows = history.to_dict("records") if hasattr(history, "to_dict") else list(history)
    read = _scorer(score)
    evaluated = []
    for row in rows:
        try:
            value = read(row)
        except KeyError:
            continue
        if value is not None and not math.isnan(value):
            evaluated.append((int(row["samples"]), float(value)))
    if not evaluated:
        raise ValueError("samples_to_solve: the history has no row with the score (is the metric name right?)")
    evaluated.sort()
    for samples, value in evaluated:
        if value >= threshold:
            return SolveTime(True, samples, None)
    return SolveTime(False, None, evaluated[-1][0])


@dataclass(frozen=True)
class SolveSummary:
    """The lower median over seeds (the ceil(n/2)-th smallest solve time), kept with its censoring:
    `low` and `high` bound it (a censored run counts as its censoring point for `low` and as never
    for `high`). Fewer than half solved: high is infinite and the median reads "> low"."""

    n: int
    solved: int
    low: float
    high: float

    @property
    def known(self) -> bool:
        return self.low == self.high

    def __str__(self) -> str:
        if self.known:
            return f"{self.low:,.0f}"
        if math.isinf(self.high):
            return f"> {self.low:,.0f}"
        return f"{self.low:,.0f}–{self.high:,.0f}"


def summarize(times: Sequence[SolveTime]) -> SolveSummary:
    """Samples-to-solve over seeds, censoring kept (no Kaplan-Meier: a few seeds, one order statistic)."""
    if not times:
        raise ValueError("summarize needs at least one SolveTime")
    rank = math.ceil(len(times) / 2) - 1
    low = sorted(t.bound for t in times)[rank]
    high = sorted(t.samples if t.solved else math.inf for t in times)[rank]
    return SolveSummary(len(times), sum(t.solved for t in times), float(low), float(high))
