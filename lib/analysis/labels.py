"""Reference-first verdicts as data: each claim of a reference judged on its own metric and horizon.

The five labels, and the one rule that derives them from the evidence (`derive`):
    untested                        no runs of ours for this claim
    not comparable                  our metric, units or setup differ from the reference's
    not reproduced at this budget   fewer than MIN_SEEDS seeds, the evidence undecided (an interval
                                    straddling the threshold, a comparison not apart), or it goes
                                    against the claim while the runs are unfinished
    reproduced                      the evidence shows the claim (>= MIN_SEEDS seeds)
    contradicted                    the evidence goes against the claim, from finished runs in a
                                    comparable setup with >= MIN_SEEDS seeds: nothing else can say it

A Threshold names its value, unit and source (the reference card's section, or "project" with the
reason), so each threshold is defined once (lib/analysis/reference.py) and every sentence that uses
it can say where it comes from. `sentence(verdict)` is the prose; tests check `label`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from lib.analysis.stats import MIN_SEEDS, Comparison, fmt, seed_interval

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
NOT_AT_BUDGET = "not reproduced at this budget"
UNTESTED = "untested"
NOT_COMPARABLE = "not comparable"
LABELS = (REPRODUCED, CONTRADICTED, NOT_AT_BUDGET, UNTESTED, NOT_COMPARABLE)


@dataclass(frozen=True)
class Threshold:
    """A named threshold: `value` in `unit`, from `source` (e.g. 'looped_transformers.md §5a')."""
    name: str
    value: float
    unit: str
    source: str

    def __str__(self) -> str:
        return f"{self.value:g}{' ' + self.unit if self.unit else ''} ({self.source})"


@dataclass(frozen=True)
class Verdict:
    """One claim of a reference, judged. `ref_value` is the reference's number or criterion as it
    states it; `ours` and `interval` are our value on the reference's metric at its horizon (mean or
    geometric mean over `n_seeds` seeds, 95 % t-interval); `finished`: every run stopped on its
    plateau rule, not on a cap; `comparable`: same metric, units and setup as the reference."""
    claim: str
    ref_metric: str
    ref_horizon: str
    ref_value: str
    ours: float
    interval: tuple[float, float]
    n_seeds: int
    finished: bool
    comparable: bool
    label: str
    reason: str


def derive(holds: bool | None, n_seeds: int, finished: bool, comparable: bool, why: str = "") -> tuple[str, str]:
    """(label, reason) from the evidence. `holds`: True when our numbers show the claim, False when
    they go against it, None when they decide neither way; `why` says what the evidence is."""
    why = f": {why}" if why else ""
    if n_seeds == 0:
        return UNTESTED, f"no runs of ours for this claim{why}"
    if not comparable:
        return NOT_COMPARABLE, f"our metric or setup differs from the reference's{why}"
    if n_seeds < MIN_SEEDS:
        return NOT_AT_BUDGET, f"descriptive only, {n_seeds} seeds (fewer than {MIN_SEEDS}){why}"
    if holds is None:
        return NOT_AT_BUDGET, f"undecided{why}"
    if holds:
        return REPRODUCED, f"shown{why}"
    if not finished:
        return NOT_AT_BUDGET, f"against the claim, but a cap (steps or time) stopped the runs before their plateau rule fired{why}"
    return CONTRADICTED, f"against the claim, from finished runs{why}"


def against(interval: tuple[float, float, float], threshold: Threshold, claim: str) -> bool | None:
    """Does the claim `claim` ('below': at most the threshold, 'above': above it) hold for the
    interval (mean, lo, hi)? True when the whole interval is on the claimed side, False when the
    whole interval is on the other side, None when it straddles the threshold (or is NaN)."""
    if claim not in ("below", "above"):
        raise ValueError(f"against: claim must be 'below' or 'above', got {claim!r}")
    _, lo, hi = interval
    if math.isnan(lo) or math.isnan(hi):
        return None
    below, above = hi <= threshold.value, lo > threshold.value
    if not (below or above):
        return None
    return below if claim == "below" else above


def from_comparison(cmp: Comparison, expected: str) -> bool | None:
    """Does a comparison show the reference's direction (`expected`: 'lower' or 'higher', for side a)?
    True / False when apart (p < 0.05) that way / the other way, None when not apart, descriptive or untested."""
    if expected not in ("lower", "higher"):
        raise ValueError(f"from_comparison: expected must be 'lower' or 'higher', got {expected!r}")
    if not cmp.apart:
        return None
    return cmp.verdict == expected


def reference_check(cmp: Comparison, expected: str, finished: bool, comparable: bool = True) -> str:
    """The label of "side a is `expected` ('lower'/'higher') than side b" from a stats.compare result."""
    return derive(from_comparison(cmp, expected), min(cmp.n_a, cmp.n_b), finished, comparable)[0]


def threshold_verdict(claim: str, values, threshold: Threshold, side: str, *, ref_metric: str, ref_horizon: str,
                      finished: bool, comparable: bool = True, log: bool = True) -> Verdict:
    """Judge "our per-seed `values` are `side` ('below'/'above') the reference's `threshold`"."""
    ci = seed_interval(values, log=log)
    n = int(pd.Series(values, dtype=float).notna().sum())
    holds = against(ci, threshold, side)
    word = "≤" if side == "below" else ">"
    label, reason = derive(holds, n, finished, comparable, f"{fmt(ci)} against {word} {threshold}")
    return Verdict(claim, ref_metric, ref_horizon, f"{word} {threshold.value:g} {threshold.unit}".strip(), ci[0], (ci[1], ci[2]),
                   n, finished, comparable, label, reason)


def comparison_verdict(claim: str, cmp: Comparison, expected: str, *, ref_metric: str, ref_horizon: str, ref_value: str,
                       finished: bool, comparable: bool = True) -> Verdict:
    """Judge "side a is `expected` ('lower'/'higher') than side b" from a stats.compare result."""
    holds = from_comparison(cmp, expected)
    evidence = (f"{fmt((cmp.mean_a, *cmp.ci_a))} vs {fmt((cmp.mean_b, *cmp.ci_b))}, "
                + (f"{cmp.test} p = {cmp.p:.2g}" if cmp.verdict != "untested" else "under 2 seeds on a side"))
    label, reason = derive(holds, min(cmp.n_a, cmp.n_b), finished, comparable, evidence)
    return Verdict(claim, ref_metric, ref_horizon, ref_value, cmp.mean_a, cmp.ci_a, min(cmp.n_a, cmp.n_b),
                   finished, comparable, label, reason)


def finished(history: pd.DataFrame, runs=None, by: tuple[str, str] = ("run", "seed")) -> bool:
    """Every seed of every run in `runs` (default: all in `history`; runs and seeds named by the
    columns `by`) stopped because its plateau rule fired (stop_reason 'converged'), not on a step
    or time cap. No rows, or no stop_reason column: False."""
    h = history if runs is None else history[history[by[0]].isin(list(runs))]
    if not len(h) or "stop_reason" not in h:
        return False
    last = h.sort_values("step").groupby(list(by))["stop_reason"].last()
    return bool((last == "converged").all())


def sentence(v: Verdict) -> str:
    """One Markdown sentence: the label in bold, the claim, the reference's value, metric and
    horizon, our seeds and whether the runs finished, and the reason (which carries our numbers)."""
    state = "finished runs" if v.finished else "runs the cap stopped"
    ours = "no runs of ours" if v.n_seeds == 0 else f"ours over {v.n_seeds} seed{'s' if v.n_seeds != 1 else ''}, {state}"
    return f"**{v.label}** — {v.claim} (the reference: {v.ref_value}, {v.ref_metric}, {v.ref_horizon}; {ours}): {v.reason}."
