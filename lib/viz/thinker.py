"""The latent thinker report's pictures and samples (notebooks/latent_thinker.ipynb)."""
from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lib.analysis.stats import t_band
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig, decode_number
from lib.viz import curves


def samples(V: int, length: int, base: int, limit: int) -> str:
    """One sample of each copy-family task (values 1..V-1, 0 = blank) and one of base-b addition (little-endian)."""
    lines = []
    for name in ("copy", "flip", "roll", "cumsum"):
        b = Algorithmic(AlgorithmicConfig(task=name, V=V, length=length, val_size=4)).val
        lines.append(f"{name:8s} x = {b.x[0].tolist()}  ->  y = {b.y[0].tolist()}")
    cfg = AlgorithmicConfig(task="addition", base=base, limit=limit, val_size=4)
    val = Algorithmic(cfg).val
    x, y = val.x[0].tolist(), val.y[0].tolist()
    lines.append(f"addition x = {x}  ->  y = {y}  (= {decode_number(y, cfg)} in base {base}, little-endian)")
    return "\n".join(lines)


def copy_curves(history: pd.DataFrame, length: int) -> Figure:
    return curves.plot(history, x="step", y="val_token_acc", hue="curriculum", logy=False,
                       title=f"Copy, L = {length}: held-out token accuracy (mean, 95 % CI over seeds)")


def addition_curves(history: pd.DataFrame, base: int, limit: int) -> Figure:
    return curves.plot(history, x="step", y="val_exact", logy=False, title=f"Base-{base} addition (operands < {limit}): held-out exact match")


def compute_heatmap(grid: pd.DataFrame, latents: list[int], n_steps: list[int], task: str, length: int, seeds: int) -> Figure:
    """Held-out token accuracy over (n_latent, n_step) at test time, mean over seeds; the trained cells boxed."""
    heat = grid.groupby(["n_latent", "n_step"])["val_token_acc"].mean().unstack()
    fig = Figure(figsize=(1.1 * heat.shape[1] + 2.5, 0.55 * heat.shape[0] + 1.8))
    ax = fig.subplots()
    sns.heatmap(heat, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax, cbar_kws={"label": "held-out token accuracy"})
    for i, m in enumerate(heat.index):
        for j, s in enumerate(heat.columns):
            if m in latents and s in n_steps:
                ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="white", lw=2))
    ax.set_title(f"{task}, L = {length} (mean of {seeds} seed(s)); boxed: trained")
    ax.set_xlabel("n_step at test time (latent steps)")
    ax.set_ylabel("n_latent at test time (slots)")
    fig.tight_layout()
    return fig


def length_curve(by_len: pd.DataFrame, max_keep: int, length: int) -> Figure:
    """Token accuracy on the kept positions against the kept length (mean, 95 % t-band over seeds); dotted: the longest trained."""
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    sns.lineplot(data=by_len, x="kept length", y="kept_token_acc", marker="o", ax=ax, errorbar=t_band)
    ax.axvline(max_keep + 0.5, color="grey", ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(range(1, length + 1))
    ax.set_xlabel("kept length (tokens); dotted: longest trained length")
    ax.set_ylabel("token accuracy on the kept positions")
    ax.set_title(f"copy, L = {length}: accuracy vs length (mean, 95 % CI over seeds)")
    fig.tight_layout()
    return fig
