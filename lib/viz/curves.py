"""Metric curves over training for a sweep: one line per run (its seeds as a mean and a 95 % t-band).

Colours: `color(name)` gives each run name one colour for the whole kernel (a report), in the order
names are first drawn, so a model keeps its colour across every figure of a report.
"""
from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lib.analysis.stats import t_band

_COLORS: dict[str, tuple] = {}


def color(name) -> tuple:
    """The colour of `name` in every figure of this kernel (tab10, then tab20 beyond ten names)."""
    key = str(name)
    if key not in _COLORS:
        n = len(_COLORS)
        _COLORS[key] = sns.color_palette("tab10")[n] if n < 10 else sns.color_palette("tab20")[n % 20]
    return _COLORS[key]


def palette(names) -> dict:
    return {n: color(n) for n in names}

LABELS = {
    "samples": "training samples",
    "step": "optimizer steps",
    "train_minutes": "training time (min)",
    "val_loss": "validation loss (cross-entropy, nats)",
    "val_error_pct": "validation error on masked cells (%)",
    "train_loss": "training loss (nats)",
    "tokens": "training tokens",
    "context": "context (tokens)",
    "memory_mb": "memory of one forward+backward (MiB)",
    "val_token_acc": "held-out token accuracy (fraction of target tokens)",
    "val_exact": "held-out exact match (fraction of samples)",
    "val_bpc": "validation bits per character",
    "excess_bpc": "validation bits per character above the entropy floor",
}


def plot(df: pd.DataFrame, y: str = "val_error_pct", x: str = "samples", hue: str = "run", logy: bool = True, title: str = "",
         logx: bool = False, style: str | None = None, ax=None) -> Figure:
    """`y` against `x`, one line per `hue` value (seeds averaged, 95 % Student-t band over seeds), each value in
    its report-wide colour; `style` (e.g. a baseline flag column) gives distinct line styles."""
    fig = ax.figure if ax is not None else Figure(figsize=(7, 4))
    ax = ax if ax is not None else fig.subplots()
    data = df[df[x] > 0] if logy and y in ("val_loss", "train_loss") else df
    order = list(dict.fromkeys(data[hue]))
    sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=order, palette=palette(order), style=style, marker="o", markersize=3,
                 ax=ax, errorbar=t_band)
    if logy:
        ax.set_yscale("symlog" if (data[y] <= 0).any() else "log", **({"linthresh": 0.01} if (data[y] <= 0).any() else {}))
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.set_title(title or f"{LABELS.get(y, y)} vs {LABELS.get(x, x)}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, title=hue)
    fig.tight_layout()
    return fig
