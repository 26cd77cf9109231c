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
