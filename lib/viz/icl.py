"""Pictures of in-context learning: error vs in-context examples, error vs loop iterations."""
from __future__ import annotations

import textwrap

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lib.analysis.stats import t_band

ERROR = "squared error / E[y²] (1 = predicting 0)"


def _finish(ax, xlabel: str, title: str, legend_title: str | None = None) -> None:
    """Shared styling: log error axis, predict-zero line, labels, grid, legend."""
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ERROR)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6 if legend_title else 7, title=legend_title, title_fontsize=6)


def error_vs_k(errors: pd.DataFrame | None, baselines: pd.DataFrame | None = None, title: str = "") -> Figure:
    """errors: columns label, k, error (mean over seeds is drawn with a 95 % t-band; None: baselines
    only); baselines dashed."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    errors = pd.DataFrame(columns=["label", "k", "error"]) if errors is None else errors
    if len(errors):
        sns.lineplot(data=errors, x="k", y="error", hue="label", ax=ax, errorbar=t_band)
    if baselines is not None:
        for name, g in baselines.groupby("model"):
            ax.plot(g["k"], g["error"], ls="--", lw=1, label=name)
    _finish(ax, "in-context examples k", title or "Error vs number of in-context examples")
    if len(errors):  # least squares reaches ~1e-13: keep the models' range readable
        ax.set_ylim(bottom=max(float(errors["error"].min()) * 0.3, 1e-8))
    fig.tight_layout()
    return fig


def error_vs_iters(errors: pd.DataFrame, marks: dict[str, int] | None = None, flat: dict[str, float] | None = None, title: str = "") -> Figure:
    """errors: columns label, iters, error. `marks`: label -> b (dotted vertical line); `flat`: label -> level."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    sns.lineplot(data=errors, x="iters", y="error", hue="label", ax=ax, errorbar=t_band)
    palette = dict(zip(errors["label"].unique(), sns.color_palette()))
    for label, b in (marks or {}).items():
        ax.axvline(b, color=palette.get(label, "grey"), ls=":", lw=1)
    greys = sns.color_palette("dark", len(palette) + len(flat or {}))[len(palette):]  # colours the looped lines do not use
    for (label, level), colour, dash in zip((flat or {}).items(), greys, [(4, 2), (1, 1), (6, 2, 1, 2), (2, 2), (8, 3)] * 4):
        ax.axhline(level, color=colour, ls=(0, dash), lw=1.2, label=f"{label} (no loop)")
    _finish(ax, "loop iterations at inference (dotted: b used in training)", title or "Error at the last position vs loop iterations")
    fig.tight_layout()
    return fig


def error_vs_masking(df: pd.DataFrame, title: str = "", panels: dict[str, str] | None = None) -> Figure:
    """df: columns where (a mask side), n_pairs, error, label (model), multiple (iterations / b).
    One panel per mask side, titled by `panels` (side -> what it keeps)."""
    wheres = list(dict.fromkeys(df["where"]))
    fig = Figure(figsize=(6 * len(wheres), 4.2))
    axes = fig.subplots(1, len(wheres), sharey=True, squeeze=False)[0]
    for ax, where in zip(axes, wheres):
        sns.lineplot(data=df[df["where"] == where], x="n_pairs", y="error", hue="label", style="multiple", ax=ax,
                     errorbar=t_band)
        panel = textwrap.fill((panels or {}).get(where, f"state kept for the {where} N pairs only"), 45)
        _finish(ax, f"pairs whose state is kept ({where.split(',')[0]} N)", panel, "model / loops÷b")
    fig.suptitle(title or "Masking the recurrent state at evaluation")
    fig.tight_layout()
    return fig
