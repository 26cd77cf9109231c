"""Notebook-side helpers for what ends up in a report: figures, tables, the tidy results CSV.

Figures are displayed as PNG with a stable `filename` in the output metadata, so the
runner writes them to images/<notebook>/<filename>.png whatever the cell order, and
independently of the matplotlib backend (a headless backend would otherwise capture none).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

OUT_ENV = "SEQLAB_OUT"  # set by the runner: where the notebook leaves results.csv


def show(fig: Figure, name: str, dpi: int = 110) -> None:
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    display(Image(data=buf.getvalue(), format="png"), metadata={"filename": name})


def table(df: pd.DataFrame, floatfmt: str = ".4g", index: bool = False) -> None:
    from IPython.display import Markdown, display

    display(Markdown(df.to_markdown(index=index, floatfmt=floatfmt)))


def save_results(df: pd.DataFrame) -> None:
    """Under the runner, hand the tidy results to it (reports/<notebook>.csv); else do nothing.

    Returns None on purpose: as a cell's last expression it must not echo into the report.
    """
    out = os.environ.get(OUT_ENV)
    if out:
        df.to_csv(Path(out) / "results.csv", index=False)


def seed_interval(values, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of per-seed values and a 95 % bootstrap interval of that mean.

    With one seed the interval is the value itself (no spread to resample).
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = np.random.default_rng(seed).choice(v, (n_boot, v.size)).mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def compare(name_a: str, a: tuple[float, float, float], name_b: str, b: tuple[float, float, float], lower: str = "better") -> str:
    """A sentence comparing two (mean, lo, hi) intervals: apart (which is lower) or overlapping."""
    higher = {"better": "worse", "more stable": "less stable", "flatter": "sharper"}.get(lower, f"not {lower}")
    if a[1] == a[2] or b[1] == b[2]:
        return f"{name_a} {a[0]:.3g} vs {name_b} {b[0]:.3g} (one seed: no interval, not compared)"
    if a[2] < b[1]:
        return f"{name_a} is **{lower}** than {name_b} ({a[0]:.3g} vs {b[0]:.3g}, intervals apart)"
    if b[2] < a[1]:
        return f"{name_a} is **{higher}** than {name_b} ({a[0]:.3g} vs {b[0]:.3g}, intervals apart)"
    return f"{name_a} and {name_b} are **not distinguishable** ({a[0]:.3g} vs {b[0]:.3g}, intervals overlap)"
