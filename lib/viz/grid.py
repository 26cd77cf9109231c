"""Figures of the block x task grid: a score heatmap and score against state size."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lib.viz.curves import color


def heatmap(summ: pd.DataFrame) -> Figure:
    """Rows: body x plain/looped; columns: task (difficulty); cells: mean score with its 95 % interval."""
    s = summ.assign(model=summ.body + np.where(summ.looped, " (looped)", ""), column=summ.task + "\n" + summ.difficulty)
    mean = s.pivot(index="model", columns="column", values="score")
    lo = s.pivot(index="model", columns="column", values="lo").reindex_like(mean)
    hi = s.pivot(index="model", columns="column", values="hi").reindex_like(mean)
    fig = Figure(figsize=(1.6 * mean.shape[1] + 2.5, 0.5 * mean.shape[0] + 1.8))
    ax = fig.subplots()
    im = ax.imshow(mean.values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            if not np.isnan(mean.values[i, j]):
                ax.text(j, i, f"{mean.values[i, j]:.2f}\n[{lo.values[i, j]:.2f}, {hi.values[i, j]:.2f}]", ha="center", va="center",
                        fontsize=6.5, color="white" if mean.values[i, j] < 0.6 else "black")
    ax.set_xticks(range(mean.shape[1]), mean.columns, fontsize=7)
    ax.set_yticks(range(mean.shape[0]), mean.index, fontsize=7)
    ax.set_title("score: mean [95 % CI] over seeds", fontsize=9)
    fig.colorbar(im, ax=ax, label="score (higher is better)")
    fig.tight_layout()
    return fig


def score_vs_state(summ: pd.DataFrame, tasks: list[str]) -> Figure:
    """Per recall task, score against the state size a model keeps (log scale), as zoology draws it."""
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, task in zip(axes, tasks):
        g = summ[summ.task == task]
        for (body, looped), r in g.groupby(["body", "looped"]):
            ax.errorbar(r.state_size, r.score, yerr=[r.score - r.lo, r.hi - r.score], fmt="s" if looped else "o", color=color(body),
                        label=f"{body}{' (looped)' if looped else ''}", capsize=2, ms=5, mfc="none" if looped else None)
        ax.set_xscale("log")
        ax.set_xlabel("state size (numbers kept after the sequence)")
        ax.set_ylabel("score")
        ax.set_title(task)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig
