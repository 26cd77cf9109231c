"""Verdicts for the looped family; their thresholds are defined once, with sources, in
lib/analysis/reference.py.

Error is SE / E[y^2] at the last position (predicting 0 scores ~1). A model "learned" when its
error at b is at most LEARNED_MAX on every seed; only those get a stability verdict. Stability past
b is the ratio (worst error over b < iterations <= factor * b) / (error at b), per seed; errors and
ratios are summarised on the log scale (geometric mean over seeds, 95 % t-interval): 'stays flat'
when the whole interval is at most FLAT_MAX, 'diverges' when the whole interval is above
DIVERGES_MIN, 'drifts' otherwise. The reference's own criterion past b is absolute (PAST_B_STAYS,
in SE/d²): `past_b_verdict` judges it.

A finding is data first (`Finding`: our classification, the reference-first verdict when it judges a
reference claim, the numbers its sentence names) and prose second (`render`, one sentence per kind
in SENTENCES); tests assert the data. The five notebooks' findings: lib/analysis/looped_findings.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from lib.analysis import labels, reference
from lib.analysis.stats import seed_interval

LEARNED_MAX = reference.LEARNED.value
FLAT_MAX = reference.FLAT.value
DIVERGES_MIN = reference.DIVERGES.value
CONVERGED_TARGET = reference.CONVERGED_TARGET.value


@dataclass(frozen=True)
class Finding:
    """One finding of a study as data. `kind` names the sentence that renders it (SENTENCES);
    `subject`: what it is about (a run, a pair of runs, a b); `ours`: our classification (a
    stability or curve-shape word, a comparison's verdict, a count); `verdict`: the reference-first
    judgement (label, reason, our value and its interval over seeds) when the finding judges a
    reference claim, None for an observation; `facts`: the other values its sentence names."""
    kind: str
    subject: str
    ours: str
    verdict: labels.Verdict | None = None
    facts: dict = field(default_factory=dict)

    @property
    def label(self) -> str | None:
        return self.verdict.label if self.verdict else None


class Prose(str):
    """Markdown text that a notebook shows as Markdown when it is a cell's last expression."""

    def _repr_markdown_(self) -> str:
        return str(self)


SENTENCES: dict[str, Callable[[Finding], str]] = {}


def sentence(kind: str):
    """Register the function that writes the sentence of a finding of `kind`."""
    def register(fn):
        SENTENCES[kind] = fn
        return fn
    return register


def render(findings: list[Finding]) -> Prose:
    """The findings as Markdown, one line (a list item) each."""
    return Prose("\n".join(SENTENCES[f.kind](f) for f in findings))


def stability_seeds(errors: pd.DataFrame, k: int, by: tuple[str, ...] = ("run",)) -> pd.DataFrame:
    """One row per run and seed from an error table (columns run, seed, b, iters, k, error, ...):
    b, error at b, worst past b (NaN when not evaluated past b), ratio = worst / at b, iters max."""
    last = errors[errors["k"] == k]
    rows = []
    for key, g in last.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        b = int(g["b"].iloc[0])
        per_seed = g.groupby(["seed", "iters"])["error"].mean().unstack()  # seed x iters
        at_b = per_seed[b]
        past = per_seed.loc[:, per_seed.columns > b]
        worst = past.max(axis=1) if past.shape[1] else at_b * np.nan
        for seed in per_seed.index:
            rows.append({**dict(zip(by, key)), "seed": seed, "b": b, "error at b": at_b[seed], "worst past b": worst[seed],
                         "ratio": worst[seed] / at_b[seed], "iters max": int(per_seed.columns.max())})
    return pd.DataFrame(rows)


def stability_table(errors: pd.DataFrame, k: int, by: tuple[str, ...] = ("run",)) -> pd.DataFrame:
    """One row per run from an error table: error at b, worst past b and their ratio, each as
    geometric mean [95 % t-interval over seeds], learned, verdict (per-seed rows: stability_seeds)."""
    rows = []
    for key, g in stability_seeds(errors, k, by).groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        b = int(g["b"].iloc[0])
        e, w, r = (seed_interval(g[c], log=True) for c in ("error at b", "worst past b", "ratio"))
        learned = bool((g["error at b"] <= LEARNED_MAX).all())
        rows.append({**dict(zip(by, key)), "b": b, "seeds": len(g), "error at b": e[0], "error lo": e[1], "error hi": e[2],
                     "worst past b": w[0], "ratio": r[0], "ratio lo": r[1], "ratio hi": r[2],
                     "iters max": int(g["iters max"].iloc[0]), "learned": learned,
                     "verdict": stability_verdict((r[0], r[1], r[2]), learned, looped=b > 1)})
    return pd.DataFrame(rows)


def stability_verdict(ratio: tuple[float, float, float], learned: bool, looped: bool = True) -> str:
    if not looped:
        return "not looped"
    if not learned:
        return "did not learn"
    mean, lo, hi = ratio
    if np.isnan(mean):
        return "untested"
    if hi <= FLAT_MAX:
        return "stays flat"
    if lo > DIVERGES_MIN:
        return "diverges"
    return "drifts"


def reference_word(ours: str, theirs: str, seeds: int, finished: bool) -> str:
    """The label (lib.analysis.labels) of the reference's stability verdict `theirs` against ours:
    reproduced when ours is the same, contradicted when it is the opposite (finished runs only),
    not reproduced at this budget when ours is 'drifts' (the ratio's interval is neither wholly at
    most FLAT_MAX nor wholly above DIVERGES_MIN), the model did not learn, or there are fewer than
    MIN_SEEDS seeds; untested when there is no looped model to judge."""
    return reference_label(ours, theirs, seeds, finished)[0]


def reference_label(ours: str, theirs: str, seeds: int, finished: bool) -> tuple[str, str]:
    """(label, reason) of reference_word."""
    if ours in ("untested", "not looped"):
        return labels.UNTESTED, f"no looped model that learned to judge ({ours})"
    holds = None if ours in ("did not learn", "drifts") else ours == theirs
    return labels.derive(holds, seeds, finished, True, f"ours {ours}, the reference's {theirs}")


def word_verdict(claim: str, ours: str, theirs: str, seeds: int, finished: bool, value: float = float("nan"),
                 interval: tuple[float, float] = (float("nan"), float("nan")), ref_metric: str = "",
                 ref_horizon: str = "") -> labels.Verdict:
    """The reference's word `theirs` (a stability or curve-shape word) against ours, as a Verdict
    (labelled by reference_label); `value`, `interval`: our number behind `ours`."""
    label, reason = reference_label(ours, theirs, seeds, finished)
    return labels.Verdict(claim, ref_metric, ref_horizon, theirs, value, interval, seeds, finished, True, label, reason)


def past_b_verdict(seeds: pd.DataFrame, run: str, n_dims: int, finished: bool, claim: str = "",
                   comparable: bool = True) -> labels.Verdict:
    """The reference's own criterion past b (looped_transformers.md §5a: b = 10 and 20 stay ≤ 0.01
    SE/d²) for `run`, from its stability_seeds rows: worst error past b divided by d (SE/E[y²] ->
    SE/d² on linear regression), per seed, on the log scale."""
    worst = seeds.loc[seeds["run"] == run, "worst past b"] / n_dims
    return labels.threshold_verdict(claim or f"`{run}` stays low past b", worst.dropna(), reference.PAST_B_STAYS, "below",
                                    ref_metric="worst SE/d² at the last position", ref_horizon="past b",
                                    finished=finished, comparable=comparable)


def plateau_end(history: pd.DataFrame, level: float = 0.5, metric: str = "val_error") -> pd.Series:
    """Per (run, seed): the first evaluated step with `metric` below `level` (NaN if never)."""
    below = history[history[metric] < level]
    first = below.groupby(["run", "seed"])["step"].min()
    return first.reindex(pd.MultiIndex.from_frame(history[["run", "seed"]].drop_duplicates()))


def learned(stab: pd.DataFrame, steps: int) -> Finding:
    """Which runs learned (error at b <= LEARNED_MAX on every seed): ours 'all', 'none' or 'some'."""
    bad = list(stab.loc[~stab["learned"], "run"])
    ours = "all" if not bad else "none" if not stab["learned"].any() else "some"
    return Finding("learned", "every run", ours, facts={"not learned": bad, "steps": steps})


@sentence("learned")
def _learned(f: Finding) -> str:
    if f.ours == "all":
        return f"- Every model learned the task (error at b ≤ {LEARNED_MAX} on every seed)."
    if f.ours == "none":
        return (f"- **No model learned the task** (error at b ≤ {LEARNED_MAX}) within {f.facts['steps']} steps: "
                "every comparison below is between unlearned models and says nothing about the reference.")
    bad = ", ".join(f"`{r}`" for r in f.facts["not learned"])
    return f"- Did not learn (error at b > {LEARNED_MAX} on some seed; no stability verdict): {bad}."


def learned_line(stab: pd.DataFrame, steps: int) -> str:
    """A finding line on which runs learned (error at b <= LEARNED_MAX on every seed)."""
    return render([learned(stab, steps)])


def still_falling(history: pd.DataFrame, run: str, metric: str = "val_error", window: int = 5) -> float:
    """Mean over seeds of the relative drop of `metric` over a run's last `window` evaluations
    (0.2 = fell 20 % over them: still learning when it stopped)."""
    drops = []
    for _, h in history[history.run == run].groupby("seed"):
        v = h.sort_values("step")[metric].to_numpy()
        if len(v) > window:
            drops.append((v[-window - 1] - v[-1]) / v[-window - 1])
    return float(np.mean(drops)) if drops else float("nan")


STILL_FALLING = reference.STILL_FALLING.value  # fell by more than this over its last 5 evaluations: still learning


def unfinished(history: pd.DataFrame, runs=None) -> Finding | None:
    """The runs (of `runs`, default all) that the step cap stopped while their validation error was
    still falling by more than STILL_FALLING over the last 5 evaluations: their error at b is an
    upper bound, not a converged value. facts['runs']: [(run, drop, last step)]; None when there are none."""
    runs = list(dict.fromkeys(history["run"])) if runs is None else list(runs)
    capped = []
    for r in runs:
        h = history[history.run == r]
        if len(h) and (h["stop_reason"] == "max_steps").any() and (drop := still_falling(history, r)) > STILL_FALLING:
            capped.append((r, drop, int(h["step"].max())))
    return Finding("unfinished", "every run", f"{len(capped)} still falling", facts={"runs": capped}) if capped else None


@sentence("unfinished")
def _unfinished(f: Finding) -> str:
    return ("- Still improving when the step cap stopped them (fall of the validation error over their last 5 "
            "evaluations; their numbers are upper bounds, not converged values): "
            + ", ".join(f"`{r}` (−{drop:.0%} at step {step})" for r, drop, step in f.facts["runs"]) + ".")


def unfinished_line(history: pd.DataFrame, runs=None) -> str | None:
    """A finding line naming the runs `unfinished` finds; None when there are none."""
    f = unfinished(history, runs)
    return render([f]) if f else None


def target(stab: pd.DataFrame, level: float = CONVERGED_TARGET, history: pd.DataFrame | None = None) -> Finding:
    """The convergence target (reference.CONVERGED_TARGET): every standard TF and every looped model
    with b >= 10 at error <= `level` at b (geometric mean over seeds). ours: 'met/held'. Each miss
    (facts['missed']) says how it stopped and whether it was still improving (then the step cap,
    not a plateau, is why), and names the runs of the same b that met the target ('peers')."""
    held = stab[(stab["b"] == 1) | (stab["b"] >= 10)]
    met, missed = held[held["error at b"] <= level], held[held["error at b"] > level]
    misses = []
    for _, r in missed.iterrows():
        miss = {"run": r.run, "error": r["error at b"]}
        if history is not None:
            h = history[history.run == r.run]
            drop = still_falling(history, r.run)
            plateau = not drop > STILL_FALLING  # (a NaN drop counts as a plateau)
            peers = met[met["b"] == r["b"]]  # trained the same way (same b), and they reached the target
            miss |= {"stopped by": ", ".join(sorted(set(h["stop_reason"]))) if "stop_reason" in h else "?",
                     "step": int(h["step"].max()) if len(h) else None, "drop": drop, "plateau": plateau,
                     "peers": [(p.run, p["error at b"]) for _, p in peers.iterrows()] if plateau else []}
        misses.append(miss)
    ours = f"{len(met)}/{len(held)}" if len(held) else "no such model"
    return Finding("target", "convergence target", ours, facts={"level": level, "missed": misses})


@sentence("target")
def _target(f: Finding) -> str:
    level = f.facts["level"]
    if f.ours == "no such model":
        return f"- Convergence target (error ≤ {level} for standard TFs and looped b ≥ 10): no such model in this sweep."
    text = f"- Convergence target (error at b ≤ {level} for standard TFs and looped b ≥ 10): met by {f.ours}"
    parts = []
    for m in f.facts["missed"]:
        why = ""
        if "plateau" in m:
            why = (f", stopped by {m['stopped by']}: on a plateau" if m["plateau"] else f", stopped by {m['stopped by']} at step "
                   f"{m['step']} while still falling {m['drop']:.0%} over its last 5 evaluations: the step cap, not a plateau")
            if m["peers"]:
                why += ", where " + ", ".join(f"`{p}` ({e:.3g})" for p, e in m["peers"]) + \
                       " reached the target with the same training: the model, not the training, limits it"
        parts.append(f"`{m['run']}` ({m['error']:.3g}{why})")
    if parts:
        text += " — missed by " + "; ".join(parts)
    return text + "."


def target_line(stab: pd.DataFrame, target_level: float = CONVERGED_TARGET, history: pd.DataFrame | None = None) -> str:
    """The convergence target's finding line (`target`)."""
    return render([target(stab, target_level, history)])


RISE = reference.RISE.value  # a rise of the error by this factor after its minimum, as N grows: non-monotone


def curve_shape(n: pd.Series, error: pd.Series) -> dict:
    """Shape of an error-vs-N curve: the minimum's N and value, the largest later rise (ratio of a
    later error to the running minimum), and 'monotone' / 'non-monotone' by RISE."""
    order = np.argsort(n.to_numpy())
    n, e = n.to_numpy()[order], error.to_numpy()[order]
    running = np.minimum.accumulate(e)
    rises = e / running
    i = int(np.argmax(rises))
    return {"N at min": int(n[int(np.argmin(e))]), "min error": float(e.min()), "largest rise": float(rises.max()),
            "rise at N": int(n[i]), "shape": "non-monotone" if rises.max() >= RISE else "monotone"}
