"""Findings of the latent thinker study (notebooks/latent_thinker.ipynb): values and labels first, prose second.

One function per claim returns its classification; `render` writes the report's "What we found":

    claim = copy_claim(history, curricula, length, steps, batch)         # claim 1: a length curriculum and copy
    claim = addition_claim(history, base, limit, steps, batch, ...)      # claim 2: base-b addition on held-out pairs
    claim = compute_claim(grid, task, length, latents, n_steps)          # claim 3: accuracy over test-time compute
    claim = length_claim(by_len, max_keep, length)                       # kept lengths beyond the trained ones
    render([claims...])

Intervals are lib.analysis.stats' (95 % Student-t over seeds); comparisons are stats.compare; the
reference's claims get lib.analysis.labels' labels; its numbers are lib/analysis/reference.py's.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.analysis import labels
from lib.analysis.reference import THINKER_ADDITION_SUMMARY, THINKER_COMPUTE, THINKER_COPY, THINKER_COPY_BATCH
from lib.analysis.stats import Comparison, compare, seed_interval
from lib.sweep import final_rows

SOLVED = 1.0  # token accuracy that counts as a solved copy run
REACH = 0.99  # "reached": the first evaluation at or above this
NO_FALL = 0.01  # neighbouring compute cells "do not fall" when accuracy drops by at most this
MET, MISSED = "met", "missed"  # a target's classification


def ci_text(ci: tuple[float, float, float]) -> str:
    """'0.946 [0.881, 1.012]' from (mean, lo, hi); the mean alone when there is no interval (one value)."""
    m, lo, hi = ci
    return f"{m:.3f}" if lo == hi else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


# --- tables ---

def copy_final(history: pd.DataFrame, curricula: list[str]) -> pd.DataFrame:
    """The last evaluation of every copy run, in the order of `curricula` (others, e.g. the causal TF, last)."""
    final = final_rows(history, by=("curriculum", "run", "seed"))
    return final.sort_values("curriculum", key=lambda c: c.map({k: i for i, k in enumerate(curricula)}).fillna(len(curricula)))


def copy_table(history: pd.DataFrame, curricula: list[str]) -> pd.DataFrame:
    """One row per curriculum: model, parameters, seeds, steps, stop reason and held-out accuracies (means over seeds)."""
    return copy_final(history, curricula).groupby("curriculum", sort=False).agg(
        model=("model", "first"), params=("params", "first"), seeds=("seed", "count"), steps=("step", "mean"),
        stop_reason=("stop_reason", "first"), val_token_acc=("val_token_acc", "mean"), val_exact=("val_exact", "mean"),
        train_minutes=("train_minutes", "mean")).reset_index()


def addition_table(history: pd.DataFrame, target: float, seed: int) -> pd.DataFrame:
    """One row per addition run (first: the main model) with held-out exact match and token accuracy (means over
    seeds), and `minutes to <target>`: the training minutes of seed `seed` at its first evaluation at or above target."""
    hit = (history[history.val_exact >= target].sort_values("step").groupby(["run", "seed"]).head(1)
           .set_index(["run", "seed"])["train_minutes"])
    table = final_rows(history).groupby("run", as_index=False, sort=False).agg(
        model=("model", "first"), params=("params", "first"), steps=("step", "mean"), stop_reason=("stop_reason", "first"),
        val_exact=("val_exact", "mean"), val_token_acc=("val_token_acc", "mean"), train_minutes=("train_minutes", "mean"))
    table[f"minutes to {target:.0%}"] = [hit.get((r, seed), float("nan")) for r in table.run]
    return table


def tidy(copy: pd.DataFrame, addition: pd.DataFrame, compute: pd.DataFrame, grid: pd.DataFrame, length: pd.DataFrame,
         by_len: pd.DataFrame) -> pd.DataFrame:
    """Every table of the study in one tidy frame, told apart by its `table` column (the report's CSV)."""
    parts = {"copy": copy, "addition": addition, "compute": compute, "compute_grid": grid, "length": length, "by_length": by_len}
    return pd.concat([df.assign(table=name) for name, df in parts.items()], ignore_index=True)


# --- claim 1: copy with a length curriculum ---

@dataclass(frozen=True)
class Curriculum:
    """One curriculum's copy runs: held-out token accuracy (mean, lo, hi over seeds), seeds at SOLVED,
    seeds whose accuracy reached REACH at some evaluation, and the first step any seed did (NaN: none)."""
    name: str
    accuracy: tuple[float, float, float]
    seeds: int
    solved: int
    reached: int
    first_step: float


@dataclass(frozen=True)
class Gain:
    """A curriculum against none: the comparison over seeds, and the reference's claim (a curriculum raises copy accuracy) judged."""
    curriculum: str
    comparison: Comparison
    verdict: labels.Verdict


@dataclass(frozen=True)
class CopyClaim:
    length: int
    steps: int
    batch: int
    curricula: tuple[Curriculum, ...]
    gains: tuple[Gain, ...]  # each curriculum of `curricula` against none (when none ran)
    target: str | None  # MET when the best curriculum (by mean accuracy) reached SOLVED on every seed, else MISSED; None: no curriculum ran
    best: str | None

    def of(self, name: str) -> Curriculum:
        return next(c for c in self.curricula if c.name == name)


def copy_claim(history: pd.DataFrame, curricula: list[str], length: int, steps: int, batch: int) -> CopyClaim:
    """Claim 1: a length curriculum lets copy reach 1.00 (reference: THINKER_COPY). `history`: the copy
    runs' evaluations, with a `curriculum` column; `curricula`: the curricula asked for (none among them)."""
    final = copy_final(history, curricula)
    acc = final.groupby("curriculum", sort=False)["val_token_acc"]
    reached = history[history.val_token_acc >= REACH].groupby(["curriculum", "seed"])["step"].min().groupby("curriculum").agg(["count", "min"])
    results = tuple(Curriculum(k, seed_interval(v), len(v), int((v >= SOLVED).sum()),
                               int(reached.loc[k, "count"]) if k in reached.index else 0,
                               float(reached.loc[k, "min"]) if k in reached.index else math.nan) for k, v in acc)
    others = [c for c in curricula if c != "none" and c in acc.groups]
    gains = []
    if "none" in acc.groups:
        none_acc, none_iters, _ = THINKER_COPY["none"]
        uniform_acc = THINKER_COPY["uniform"][0]
        for c in others:
            cmp = compare(acc.get_group(c), acc.get_group("none"))
            gains.append(Gain(c, cmp, labels.comparison_verdict(
                "a curriculum raises copy accuracy", cmp, "higher", ref_metric="token accuracy", ref_horizon="the end of training",
                ref_value=f"{uniform_acc:.2f} with the uniform curriculum vs {none_acc:.2f} without",
                finished=labels.finished(history, [c, "none"], by=("curriculum", "seed")))))
    best = max(others, key=lambda c: acc.get_group(c).mean()) if others else None
    target = None
    if best is not None:
        b = next(r for r in results if r.name == best)
        target = MET if b.solved == b.seeds else MISSED
    return CopyClaim(length, steps, batch, results, tuple(gains), target, best)


def render_copy(c: CopyClaim) -> list[str]:
    (none_acc, none_iters, none_said), (uni_acc, uni_iters, uni_said) = THINKER_COPY["none"], THINKER_COPY["uniform"]
    parts = [f"{r.name} {ci_text(r.accuracy)} ({r.solved}/{r.seeds} seeds at 1.000, {r.reached}/{r.seeds} reach {REACH}"
             + (f", the first at step {r.first_step:.0f})" if r.reached else ")") for r in c.curricula]
    lines = [f"- **Claim 1, copy (L = {c.length}, {c.steps} steps of batch {c.batch})**: held-out token accuracy " + "; ".join(parts)
             + f". Reference: {none_acc:.2f} without a curriculum ({none_said} iterations), {uni_acc:.2f} with the uniform one ({uni_said})."]
    for g in c.gains:
        lines.append(f"  - `{g.curriculum}` vs `none`: " + g.comparison.sentence(f"`{g.curriculum}`", "`none`", lower="worse")
                     + f"; the reference's gain from a curriculum: **{g.verdict.label}** ({g.verdict.reason}).")
    if c.target is not None:
        b = c.of(c.best)
        lines.append(f"- Target (copy at L = {c.length} reaching 1.00 token accuracy with a curriculum): "
                     + (f"**met** by `{b.name}` in {b.solved}/{b.seeds} seeds." if c.target == MET
                        else f"**missed**: best `{b.name}` {b.accuracy[0]:.3f} ({b.solved}/{b.seeds} seeds at 1.000)."))
    samples = c.steps * c.batch
    lines.append(f"  - Budget: {samples:,} samples per run, {samples / (uni_iters * THINKER_COPY_BATCH):.1%} of what the reference's "
                 f"uniform curriculum used to reach 1.00 ({uni_said} iterations of batch {THINKER_COPY_BATCH}), "
                 f"{samples / (none_iters * THINKER_COPY_BATCH):.2%} of its no-curriculum run.")
    return lines


# --- claim 2: addition ---

@dataclass(frozen=True)
class AdditionClaim:
    base: int
    limit: int
    steps: int
    batch: int
    runs: pd.DataFrame  # addition_table(): one row per run, the main model first
    target: float  # held-out exact match ...
    minutes: float  # ... within this much training
    reached_at: float  # training minutes at which the main model first reached `target` (NaN: never)
    label: str  # MET / MISSED

    @property
    def main(self) -> pd.Series:
        return self.runs.iloc[0]


def addition_claim(history: pd.DataFrame, base: int, limit: int, steps: int, batch: int, target: float, minutes: float,
                   seed: int) -> AdditionClaim:
    """Claim 2: the thinker learns base-b addition on held-out pairs (reference: THINKER_ADDITION), and
    the target: the main model (the first run) at `target` exact match within `minutes` of training (seed `seed`)."""
    table = addition_table(history, target, seed)
    when = float(table.iloc[0][f"minutes to {target:.0%}"])
    return AdditionClaim(base, limit, steps, batch, table, target, minutes, when, MET if when <= minutes else MISSED)


def render_addition(c: AdditionClaim) -> list[str]:
    main = c.main
    return [f"- **Claim 2, base-{c.base} addition (operands < {c.limit}, held-out pairs)**: "
            + "; ".join(f"`{r.run}` ({int(r.params):,} params) exact {r.val_exact:.3f}, token {r.val_token_acc:.3f} after "
                        f"{r.train_minutes:.1f} min" for r in c.runs.itertuples())
            + f". Reference: {THINKER_ADDITION_SUMMARY}; ours ran {c.steps:,} iterations of batch {c.batch} for every width.",
            f"- Target ({c.target:.0%} exact within {c.minutes:.0f} min of training, `{main.run}`): "
            + (f"**met** at {c.reached_at:.1f} min." if c.label == MET else
               f"**missed**: {main.val_exact:.3f} after {main.train_minutes:.1f} min ({c.target - main.val_exact:.3f} short).")]


# --- claim 3: accuracy over test-time compute ---

@dataclass(frozen=True)
class ComputeClaim:
    task: str
    length: int
    heat: pd.DataFrame  # mean held-out token accuracy, n_latent x n_step
    inside: float  # mean accuracy over the cells inside the training grid
    outside: float  # ... and outside it
    rising: float  # fraction of neighbouring cells that do not fall by more than NO_FALL when n_latent or n_step grows
    trained: tuple[int, int]  # the largest trained (n_latent, n_step)

    @property
    def best(self) -> tuple[tuple[int, int], float]:
        """The cell of the highest accuracy, and that accuracy."""
        cell = self.heat.stack().idxmax()
        return (int(cell[0]), int(cell[1])), float(self.heat.values.max())


def compute_claim(grid: pd.DataFrame, task: str, length: int, latents: list[int], n_steps: list[int]) -> ComputeClaim:
    """Claim 3: accuracy rises with test-time compute (n_latent, n_step) and holds beyond the trained range.
    `grid`: one row per (n_latent, n_step, seed) with val_token_acc and `trained`."""
    heat = grid.groupby(["n_latent", "n_step"])["val_token_acc"].mean().unstack()
    diffs = np.concatenate([np.diff(heat.values, axis=0).ravel(), np.diff(heat.values, axis=1).ravel()])
    return ComputeClaim(task, length, heat, grid[grid.trained]["val_token_acc"].mean(), grid[~grid.trained]["val_token_acc"].mean(),
                        float((diffs >= -NO_FALL).mean()), (max(latents), max(n_steps)))


def render_compute(c: ComputeClaim) -> list[str]:
    heat, (M, S) = c.heat, c.trained
    cell, best = c.best
    lines = [f"- **Claim 3, compute randomisation ({c.task}, L = {c.length})**: accuracy {heat.iloc[0, 0]:.3f} at "
             f"({heat.index[0]}, {heat.columns[0]}) → {heat.iloc[-1, -1]:.3f} at ({heat.index[-1]}, {heat.columns[-1]}); "
             f"mean {c.inside:.3f} inside the training grid, {c.outside:.3f} outside; {c.rising:.0%} of neighbouring cells do not fall "
             f"(by more than {NO_FALL}) when one of n_latent, n_step grows; best cell {cell} {best:.3f}. Reference (cumsum, training "
             f"batches): {THINKER_COMPUTE}."]
    more_steps, more_slots = [s for s in heat.columns if s > S], [m for m in heat.index if m > M]
    if more_steps and more_slots and M in heat.index and S in heat.columns:
        lines.append(f"  - Beyond the trained compute, from ({M}, {S}) {heat.loc[M, S]:.3f}: more steps ({M} latents, n_step "
                     + ", ".join(f"{s}: {heat.loc[M, s]:.3f}" for s in more_steps) + f"); more slots (n_step {S}, n_latent "
                     + ", ".join(f"{m}: {heat.loc[m, S]:.3f}" for m in more_slots) + "). The reference's \"converging compute\" "
                     "predicts accuracy that holds or rises as either grows.")
    return lines


# --- kept lengths beyond the trained ones ---

@dataclass(frozen=True)
class LengthClaim:
    """Token accuracy on the kept positions (mean, lo, hi over the (kept length, seed) rows) on the trained
    kept lengths, on the longer ones, and at the full length."""
    max_keep: int
    length: int
    seen: tuple[float, float, float]
    unseen: tuple[float, float, float]
    full: tuple[float, float, float]


def length_claim(by_len: pd.DataFrame, max_keep: int, length: int) -> LengthClaim:
    seen, unseen = by_len[by_len.trained]["kept_token_acc"], by_len[~by_len.trained]["kept_token_acc"]
    full = by_len[by_len["kept length"] == length]["kept_token_acc"]
    return LengthClaim(max_keep, length, seed_interval(seen), seed_interval(unseen), seed_interval(full))


def render_length(c: LengthClaim) -> list[str]:
    return [f"- Length: trained on kept lengths ≤ {c.max_keep}, token accuracy on the kept positions {ci_text(c.seen)} on those "
            f"lengths vs {ci_text(c.unseen)} on longer ones (up to {c.length}); at the full length {ci_text(c.full)}."]


# --- the report ---

@dataclass(frozen=True)
class Claims:
    seeds: dict[str, int]  # experiment(s) -> seeds
    copy: CopyClaim
    addition: AdditionClaim
    compute: ComputeClaim
    length: LengthClaim


def claims(p: Mapping, copy: pd.DataFrame, addition: pd.DataFrame, grid: pd.DataFrame, by_len: pd.DataFrame) -> Claims:
    """The four claims from the notebook's parameters `p` and the experiments' tables (copy and addition
    histories, the compute grid, the accuracy by kept length)."""
    return Claims({"copy and compute": len(p["copy_seeds"]), "addition": len(p["add_seeds"]), "length": len(p["length_seeds"])},
                  copy_claim(copy, p["curricula"], p["copy_length"], p["copy_steps"], p["copy_batch"]),
                  addition_claim(addition, p["add_base"], p["add_limit"], p["add_steps"], p["add_batch"], p["add_target"],
                                 p["add_minutes"], p["add_seeds"][0]),
                  compute_claim(grid, p["rand_task"], p["rand_length"], p["rand_latents"], p["rand_n_steps"]),
                  length_claim(by_len, p["train_max_keep"], p["copy_length"]))


def render(c: Claims) -> str:
    """The report's "What we found": the seeds of each experiment, then each claim."""
    return "\n".join(["Intervals: mean [95 % Student-t interval over seeds]; seeds: "
                      + ", ".join(f"{n} for {k}" for k, n in c.seeds.items()) + "."]
                     + render_copy(c.copy) + render_addition(c.addition) + render_compute(c.compute) + render_length(c.length))
