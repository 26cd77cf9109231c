"""Figures of the block x task grid: score against training samples per task, and heatmaps of the
final score and of samples-to-solve (lib.analysis.grid's verdicts)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lib.analysis.grid import CellVerdict
from lib.analysis.stats import t_band
from lib.viz.curves import color


def curves(history: pd.DataFrame) -> Figure:
    """Per task (and difficulty), the validation score against training samples: one line per body
    (solid plain, dashed looped), the mean over seeds with a 95 % t-band; the shortcut ceiling
    dotted. A seed that stopped early holds no later points, so the tail is the seeds still running."""
    panels = list(history.groupby(["task", "difficulty"], sort=False))
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, ((task, lv), h) in zip(axes, panels):
        for (body, looped), g in h.groupby(["body", "looped"], sort=False):
            by = g.groupby("samples")["score"]
            mean = by.mean()
            band = by.agg(lambda v: t_band(v) if len(v) > 1 else (v.iloc[0], v.iloc[0]))
            ax.plot(mean.index, mean.values, ls="--" if looped else "-", color=color(body), label=f"{body}{' (looped)' if looped else ''}")
            ax.fill_between(mean.index, [b[0] for b in band], [b[1] for b in band], color=color(body), alpha=0.12, lw=0)
        ax.axhline(h["ceiling"].iloc[0], color="grey", ls=":", lw=1, label="shortcut ceiling")
        ax.set_ylim(min(0.0, h["ceiling"].iloc[0]) - 0.05, 1.02)  # a regression's first evaluations can score far below 0
        ax.set_xscale("symlog", linthresh=max(1, h["samples"][h["samples"] > 0].min()))
        ax.set_xlabel("training samples (sequences)")
        ax.set_ylabel("validation score")
        ax.set_title(f"{task} ({lv})", fontsize=9)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def heatmaps(verdicts: list[CellVerdict]) -> Figure:
    """Two heatmaps, models x tasks: the final score (mean [95 % CI] over seeds) and samples-to-solve
    (median over seeds; a censored median, "> N", is drawn hatched in grey, never as a value)."""
    rows = sorted({v.name for v in verdicts})
    cols = list(dict.fromkeys(f"{v.task}\n{v.difficulty}" for v in verdicts))
    at = {(v.name, f"{v.task}\n{v.difficulty}"): v for v in verdicts}
    fig = Figure(figsize=(2 * (1.3 * len(cols) + 2.5), 0.45 * len(rows) + 1.8))
    left, right = fig.subplots(1, 2)
    score = np.array([[at[r, c].score if (r, c) in at else np.nan for c in cols] for r in rows])
    im = left.imshow(score, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(im, ax=left, label="final score (higher is better)")
    solved = np.array([[at[r, c].solve.low if (r, c) in at and at[r, c].solve.known else np.nan for c in cols] for r in rows])
    logs = np.log10(solved)
    im2 = right.imshow(logs, cmap="magma_r", aspect="auto",
                       vmin=np.nanmin(logs) if np.isfinite(logs).any() else 0, vmax=np.nanmax(logs) if np.isfinite(logs).any() else 1)
    fig.colorbar(im2, ax=right, label="log10 samples-to-solve (fewer is better)")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            v = at.get((r, c))
            if v is None:
                continue
            left.text(j, i, f"{v.score:.2f}\n[{v.lo:.2f}, {v.hi:.2f}]", ha="center", va="center", fontsize=6,
                      color="white" if v.score < 0.6 else "black")
            if not v.solve.known:
                right.add_patch(_hatch(j, i))
            right.text(j, i, str(v.solve), ha="center", va="center", fontsize=6,
                       color="black" if not v.solve.known or math.log10(v.solve.low) < np.nanmean(logs) else "white")
    for ax, title in ((left, "final score: mean [95 % CI] over seeds"), (right, "samples-to-solve (median over seeds; '> N': censored)")):
        ax.set_xticks(range(len(cols)), cols, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _hatch(j: int, i: int) -> Rectangle:
    return Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85", hatch="///", edgecolor="0.6", lw=0)
