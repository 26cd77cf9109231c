"""The looped family's figures: each picks its rows from a study's tidy tables (history, errors,
masking) and draws them with lib.viz.curves (training curves) or lib.viz.icl (errors)."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lib.analysis.looped_findings import VARIANT
from lib.viz import curves, icl

TRAINING = "Validation error (last position, at b loops) during training"


def training(history: pd.DataFrame, title: str = TRAINING, hue: str = "run") -> Figure:
    """Validation error vs steps, one line per `hue` value (mean and 95 % t-band over seeds)."""
    return curves.plot(history, x="step", y="val_error", hue=hue, title=title)


def baselines(baselines: pd.DataFrame, kind: str, n_dims: int) -> Figure:
    """The classical baselines' error vs k on the task's validation prompts."""
    return icl.error_vs_k(None, baselines, title=f"Baselines, {kind} regression, d = {n_dims}")


def error_vs_k(errors: pd.DataFrame, baselines: pd.DataFrame, title: str) -> Figure:
    """Error vs k of every run, looped models read at their b, beside the baselines."""
    return icl.error_vs_k(errors[errors["iters"] == errors["b"]], baselines, title=title)


def error_vs_iters(errors: pd.DataFrame, k: int, title: str = "") -> Figure:
    """Error at k vs loop iterations at inference: a line per looped run, its b dotted; the
    standard (unlooped) runs as horizontal levels (their error)."""
    e = errors[errors["k"] == k]
    flat = e[(e["iters"] == e["b"]) & ~e["looped"]].groupby("label")["error"].mean().to_dict()
    e = e[e["looped"]]
    marks = e.drop_duplicates("label").set_index("label")["b"].to_dict()
    return icl.error_vs_iters(e, marks=marks, flat=flat, title=title or f"Error at k = {k} vs loop iterations")


def masking(masked: pd.DataFrame, panels: dict[str, str], title: str) -> Figure:
    """Error vs the number N of pairs whose state is kept, one panel per mask side (the query-only control left out)."""
    return icl.error_vs_masking(masked[masked["where"] != "query only"], title=title, panels=panels)


def kinds_training(history: pd.DataFrame) -> dict[str, Figure]:
    """Per task kind: validation error vs steps and vs training time ({name: figure})."""
    out = {}
    for kind, h in history.groupby("kind", sort=False):
        out[f"curves_steps_{kind}"] = curves.plot(h, x="step", y="val_error", title=f"{kind}: validation error vs steps (mean, 95 % CI over seeds)")
        out[f"curves_time_{kind}"] = curves.plot(h, x="train_minutes", y="val_error", title=f"{kind}: validation error vs training time")
    return out


def kinds_errors(errors: pd.DataFrame, baselines: dict[str, pd.DataFrame], k: int) -> dict[str, Figure]:
    """Per task kind (the keys of `baselines`): error vs k at b beside its baselines, and error at
    k vs loop iterations ({name: figure})."""
    out = {}
    for kind, base in baselines.items():
        e = errors[errors["kind"] == kind]
        out[f"error_vs_k_{kind}"] = error_vs_k(e, base, f"{kind}: error vs in-context examples (looped read at b)")
        out[f"error_vs_iters_{kind}"] = error_vs_iters(e, k, f"{kind}: error at k = {k} vs loop iterations")
    return out


def _variant_label(df: pd.DataFrame) -> pd.Series:
    return df["inject"].map(VARIANT) + " b=" + df["b"].astype(str)


def variants_training(history: pd.DataFrame, n_seeds: int) -> Figure:
    """Validation error vs steps of each variant and b (learnable_loop_lr)."""
    return curves.plot(history.assign(run=_variant_label(history)), x="step", y="val_error", hue="run",
                       title=f"Validation error during training (mean over {n_seeds} seeds, 95 % CI)")


def variants_iters(errors: pd.DataFrame, k: int, n_seeds: int) -> Figure:
    """Error at k vs loop iterations of each variant and b, the plain models' b dotted (learnable_loop_lr)."""
    last = errors[errors["k"] == k].assign(label=_variant_label)
    marks = {f"plain b={b}": b for b in last.loc[last["inject"] == "none", "b"].unique()}
    return icl.error_vs_iters(last, marks=marks, title=f"Error at k = {k} vs loop iterations (mean over {n_seeds} seeds, 95 % CI)")
