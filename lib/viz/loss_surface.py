"""Pictures of loss surfaces (the numbers are lib.analysis.loss_surface): contour with the training
trajectory, 3-D surface, 1-D slices through the centre; colour scales can be shared across models."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _pivot(df: pd.DataFrame):
    p = df.pivot(index="beta", columns="alpha", values="loss")
    return p.columns.values, p.index.values, p.values


def plot_contour(df: pd.DataFrame, trajectory: np.ndarray | None = None, levels=None, title: str = "", ax=None) -> Figure | None:
    """Filled contour of log10(loss); pass the same `levels` to several plots to share the colour scale."""
    own = ax is None
    fig = Figure(figsize=(5, 4.2)) if own else None
    ax = fig.subplots() if own else ax
    A, B, Z = _pivot(df)
    cs = ax.contourf(A, B, np.log10(Z), levels=levels if levels is not None else 20, cmap="viridis")
    ax.contour(A, B, np.log10(Z), levels=cs.levels, colors="k", linewidths=0.3)
    if trajectory is not None:
        ax.plot(trajectory[:, 0], trajectory[:, 1], "w.-", lw=1, ms=3, label="training trajectory")
        ax.legend(fontsize=6)
    ax.plot(0, 0, "r*", ms=8)
    ax.set_xlabel("α (direction 1)")
    ax.set_ylabel("β (direction 2)")
    ax.set_title(title, fontsize=8)
    (fig or ax.figure).colorbar(cs, ax=ax, label="log10 loss")
    if own:
        fig.tight_layout()
    return fig


def plot_3d(df: pd.DataFrame, title: str = "", zlim=None) -> Figure:
    fig = Figure(figsize=(5, 4.2))
    ax = fig.add_subplot(projection="3d")
    A, B, Z = _pivot(df)
    AA, BB = np.meshgrid(A, B)
    ax.plot_surface(AA, BB, np.log10(Z), cmap="viridis", linewidth=0)
    ax.set_xlabel("α")
    ax.set_ylabel("β")
    ax.set_zlabel("log10 loss")
    if zlim is not None:
        ax.set_zlim(*zlim)
    ax.set_title(title, fontsize=8)
    return fig


def plot_slices(surfaces: dict[str, pd.DataFrame], title: str = "") -> Figure:
    """1-D slices through the centre along each direction, one line per model."""
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    for label, df in surfaces.items():
        b0 = df.loc[(df.beta.abs()).idxmin(), "beta"]
        a0 = df.loc[(df.alpha.abs()).idxmin(), "alpha"]
        s = df[df.beta == b0].sort_values("alpha")
        axes[0].plot(s.alpha, s.loss, label=label)
        s = df[df.alpha == a0].sort_values("beta")
        axes[1].plot(s.beta, s.loss, label=label)
    for ax, name in zip(axes, ("α (β = 0)", "β (α = 0)")):
        ax.set_yscale("log")
        ax.set_xlabel(name)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("loss")
    axes[1].legend(fontsize=6)
    fig.suptitle(title or "Slices through the centre")
    fig.tight_layout()
    return fig
