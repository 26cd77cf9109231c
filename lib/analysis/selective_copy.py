"""Findings of the selective-copy study (notebooks/selective_copy.ipynb): values and labels first, prose second.

    side_table(history)                     # one row per configuration: ours (mean over seeds) beside the reference's
    found = findings(history, seq_len)      # the classifications: ranking, ordering against the reference, radius, parameters
    render(found, channels, warmup_steps)   # the report's "What we found"

The reference (selective_copy.md §4-5; its numbers in lib/analysis/reference.py) ran each
configuration once. A ranking over fewer than MIN_SEEDS seeds per configuration is descriptive,
and its sentence says so (lib/analysis/stats.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from lib.analysis.reference import selective_copy_table
from lib.analysis.stats import MIN_SEEDS
from lib.sweep import final_rows

CONFIG = ["layers", "kernel_size", "dilation"]  # a configuration, as the reference's tables name it
MATCHES, DIFFERS = "matches", "differs"  # our ordering of the configurations against the reference's
EQUAL, DIFFER, NONE = "equal", "differ", "none"  # our parameter counts against the reference's


def sweep_table(configs, steps: int, batch_size: int, seeds) -> pd.DataFrame:
    """The expanded sweep: one row per model config, its parameters and the training budget of each run."""
    return pd.DataFrame([{"run": c.name, **c.columns(), "params": c.n_params(), "steps": steps, "batch_size": batch_size,
                          "samples": steps * batch_size, "seeds": ", ".join(map(str, seeds))} for c in configs])


def loss_fell(history: pd.DataFrame) -> bool:
    """Every run and seed ended with a lower validation loss than its first evaluation."""
    first = history.sort_values("step").groupby(["run", "seed"]).head(1).set_index(["run", "seed"])["val_loss"]
    last = final_rows(history).set_index(["run", "seed"])["val_loss"]
    return bool((last < first.reindex(last.index)).all())


def summary(history: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration from its final evaluations: validation loss and masked-cell error
    (means over seeds), samples, steps, stop reason, minutes, speed and seeds; lowest loss first."""
    final = final_rows(history)
    return (final.groupby(CONFIG + ["run", "params", "radius"], as_index=False)
            .agg(samples=("samples", "max"), steps=("step", "max"), stop_reason=("stop_reason", "first"), val_loss=("val_loss", "mean"),
                 val_error_pct=("val_error_pct", "mean"), train_minutes=("train_minutes", "mean"),
                 samples_per_s=("samples_per_s", "mean"), seeds=("seed", "nunique"))
            .sort_values("val_loss"))


def beside_reference(history: pd.DataFrame) -> pd.DataFrame:
    """summary() with the reference's row of the same configuration beside it (its columns end in
    `_ref`; NaN where the reference did not run that configuration)."""
    return summary(history).merge(selective_copy_table(), on=CONFIG, how="left", suffixes=("", "_ref"))


def side_table(history: pd.DataFrame) -> pd.DataFrame:
    """beside_reference() in the report's columns."""
    return beside_reference(history)[CONFIG + ["params", "params_ref", "radius", "samples", "val_loss", "val_loss_ref", "val_error_pct",
                                               "val_error_pct_ref", "steps", "stop_reason", "train_minutes", "samples_per_s",
                                               "samples_per_s_ref"]]


@dataclass(frozen=True)
class Versus:
    """One configuration the reference also ran: our final validation loss and masked-cell error % (means over seeds) and its."""
    run: str
    radius: int
    val_loss: float
    ref_val_loss: float
    val_error_pct: float
    ref_val_error_pct: float  # NaN: the reference published no error curve for it

    @property
    def ratio(self) -> float:
        return self.val_loss / self.ref_val_loss


@dataclass(frozen=True)
class Findings:
    samples: int  # training samples per run
    seeds: int  # the fewest seeds of any configuration
    ranking: tuple[tuple[str, float], ...]  # (run, mean final validation loss), lowest first
    ordering: str | None  # MATCHES / DIFFERS: our order of the configurations the reference ran against its order; None: fewer than 2
    reference_ranking: tuple[str, ...]  # those configurations in the reference's order
    versus: tuple[Versus, ...]  # our order
    reach: int  # cells the receptive radius must span: from the last answer cell to cell 0
    covers_error: float  # mean masked-cell error % of the configurations whose radius spans `reach` (NaN: none)
    short_error: float  # ... and of the rest (NaN: none)
    params: str  # EQUAL / DIFFER / NONE: our parameter counts against the reference's, over the configurations it lists
    params_compared: int

    @property
    def descriptive(self) -> bool:
        return self.seeds < MIN_SEEDS


def params_match(side: pd.DataFrame) -> tuple[str, int]:
    """(EQUAL / DIFFER / NONE, how many configurations were compared): our parameter counts against the reference's."""
    matched = side.dropna(subset=["params_ref"])
    if not len(matched):
        return NONE, 0
    return (EQUAL if (matched["params"] == matched["params_ref"]).all() else DIFFER), len(matched)


def findings(history: pd.DataFrame, seq_len: int) -> Findings:
    """The classifications behind the report's findings, from the sweep's history (`seq_len`: the task's sequence length)."""
    side = beside_reference(history)
    ranked = side.sort_values("val_loss")
    known = side.dropna(subset=["val_loss_ref"])
    ref_order = tuple(known.sort_values("val_loss_ref")["run"])
    ordering = None if len(known) < 2 else MATCHES if tuple(known.sort_values("val_loss")["run"]) == ref_order else DIFFERS
    reach = seq_len - 1
    covers, short = side[side["radius"] >= reach], side[side["radius"] < reach]
    params, compared = params_match(side)
    return Findings(
        samples=int(side["samples"].max()), seeds=int(side["seeds"].min()),
        ranking=tuple(zip(ranked["run"], ranked["val_loss"])), ordering=ordering, reference_ranking=ref_order,
        versus=tuple(Versus(r.run, r.radius, r.val_loss, r.val_loss_ref, r.val_error_pct, r.val_error_pct_ref) for r in known.itertuples()),
        reach=reach, covers_error=covers["val_error_pct"].mean() if len(covers) else math.nan,
        short_error=short["val_error_pct"].mean() if len(short) else math.nan, params=params, params_compared=compared)


def render(f: Findings, channels: int, warmup_steps: int) -> str:
    """The report's "What we found", from findings()."""
    seeds = (f" ({f.seeds} seed{'s' if f.seeds != 1 else ''} per configuration, fewer than {MIN_SEEDS}: descriptive)"
             if f.descriptive else "")
    lines = [f"- After {f.samples:,} training samples per run{seeds}, the ranking by validation loss is "
             + " < ".join(f"`{r}` ({v:.3g})" for r, v in f.ranking) + "."]
    if f.ordering is not None:
        lines.append(f"- On the {len(f.versus)} configurations the reference also ran, the ordering "
                     + ("**matches** the reference's." if f.ordering == MATCHES
                        else "**differs** from the reference's (" + " < ".join(f.reference_ranking) + ")."))
    for v in f.versus:
        lines.append(f"- `{v.run}` (radius {v.radius}): val loss {v.val_loss:.3g} vs reference {v.ref_val_loss:.3g} "
                     f"({v.ratio:.2g}x); masked-cell error {v.val_error_pct:.3g}%"
                     + (f" vs ~{v.ref_val_error_pct:.3g}%." if not math.isnan(v.ref_val_error_pct) else "."))
    if not (math.isnan(f.covers_error) or math.isnan(f.short_error)):
        lines.append(f"- Runs whose radius reaches the whole sequence (>= {f.reach} cells) end at a mean masked-cell error of "
                     f"{f.covers_error:.3g}%, against {f.short_error:.3g}% for the rest.")
    note = {EQUAL: f"our parameter counts equal the reference's for all {f.params_compared} configurations it lists",
            NONE: "no configuration here is in the reference table, so no parameter count to compare",
            DIFFER: "some parameter counts DIFFER from the reference's"}[f.params]
    lines.append(f"- Model: head tied to the embedding, as in the reference: an untied head would add 256·{channels} = "
                 f"{256 * channels:,} parameters, which is exactly the gap the issue noticed; {note}. "
                 f"Schedule: cosine to 0 with {warmup_steps} warmup steps (the reference named a warmup but its optimizer never saw it).")
    lines.append("- Speed is not judged from these runs (one timing each, under whatever else the machine ran); "
                 "`benchmarks/` measures it with ratios taken in one run.")
    return "\n".join(lines)
