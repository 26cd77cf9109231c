"""Metric curves over training for a sweep: one line per run."""
from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

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
}


def plot(df: pd.DataFrame, y: str = "val_error_pct", x: str = "samples", hue: str = "run", logy: bool = True, title: str = "",
         logx: bool = False) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    data = df[df[x] > 0] if logy and y in ("val_loss", "train_loss") else df
    sns.lineplot(data=data, x=x, y=y, hue=hue, marker="o", markersize=3, ax=ax, errorbar=("ci", 95), seed=0)  # seeded bootstrap: stable figures
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
