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

    display(Markdown(markdown_table(df, floatfmt, index)))


def markdown(text: str) -> None:
    """Show Markdown text (a study's findings) in the notebook and its report."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4g", index: bool = False) -> str:
    """A Markdown table: NaN as a blank cell, integer counts as 19,000 (not 1.9e+04), other numbers `floatfmt`."""
    out = df.reset_index() if index else df.copy()
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            out[c] = col.map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v))
            continue
        finite = col.dropna()
        integral = pd.api.types.is_integer_dtype(col) or (len(finite) and (finite == finite.round()).all() and finite.abs().max() >= 1000)
        fmt = (lambda v: f"{v:,.0f}") if integral else (lambda v: format(v, floatfmt))
        out[c] = col.map(lambda v: "" if pd.isna(v) else fmt(v))
    return out.to_markdown(index=False, disable_numparse=True)


def save_results(df: pd.DataFrame) -> None:
    """Under the runner, hand the tidy results to it (reports/<notebook>.csv); else do nothing.

    Returns None on purpose: as a cell's last expression it must not echo into the report.
    """
    out = os.environ.get(OUT_ENV)
    if out:
        df.to_csv(Path(out) / "results.csv", index=False)
