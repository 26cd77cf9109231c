"""Pictures of loss surfaces (the numbers are lib.analysis.loss_surface): contour with the training
trajectory, 3-D surface, 1-D slices through the centre; colour scales can be shared across models.
`figures(res)` draws every figure of the loss-surface study from its lib.analysis.loss_surface.Surfaces."""
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


def panel_grid(n: int, cols: int = 3) -> tuple[Figure, np.ndarray]:
    """A figure of n panels, up to `cols` a row; the axes flat (the unused ones hidden)."""
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.3 * cols, 3.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def shared_levels(frames, n: int = 16) -> np.ndarray:
    """Contour levels of log10 loss spanning every surface in `frames`: one colour scale for all."""
    logs = np.log10(np.concatenate([df["loss"].values for df in frames]))
    return np.linspace(logs.min(), logs.max(), n)


def contour_panels(surfaces: dict, trajectories: dict | None = None, suffix: str = "") -> Figure:
    """One contour panel per surface ({label: DataFrame}), on one colour scale."""
    fig, axes = panel_grid(len(surfaces))
    levels = shared_levels(surfaces.values())
    for ax, (label, df) in zip(axes, surfaces.items()):
        plot_contour(df, (trajectories or {}).get(label), levels=levels, title=f"{label}{suffix}", ax=ax)
    fig.tight_layout()
    return fig


def figures(res) -> dict[str, Figure]:
    """Every figure of the loss-surface study, by its report name: per direction kind, the first
    seed's contours (with the training trajectory on PCA planes) and slices; one 3-D surface; the
    large surface and the selective-copy contours when computed."""
    out, seed = {}, res.seeds[0]
    for kind in res.settings.directions:
        keys = [k for k in res.surfaces if k[2] == kind and k[1] == seed]
        if not keys:
            continue
        out[f"contours_{kind}"] = contour_panels({k[0]: res.surfaces[k] for k in keys}, {k[0]: res.trajectories[k] for k in keys},
                                                 f" ({kind})")
        out[f"slices_{kind}"] = plot_slices({k[0]: res.surfaces[k] for k in keys}, title=f"Slices through the centre ({kind} directions)")
    first = next(iter(res.surfaces))
    out["surface_3d"] = plot_3d(res.surfaces[first], title=f"{first[0]} ({first[2]} directions)")
    if res.large is not None:
        name, df = res.large
        n = res.settings.large_resolution
        out["surface_large"] = plot_3d(df, title=f"{name}, {n} x {n} Hessian grid")
    if res.copy_surfaces:
        out["contours_selective_copy"] = contour_panels(res.copy_surfaces, suffix=" (random directions)")
    return out
