"""One progress-bar wrapper: a plain text bar everywhere, throttled when headless.

A widget bar (tqdm.auto in Jupyter) is stored in a saved notebook as its widget state, which
renders as a bar frozen at 0 % wherever no live frontend updates it: papermill, Kaggle's "Save &
Run All", Colab's saved copies. A text bar on stderr is right in all of them, and in JupyterLab it
updates in place. SEQLAB_WIDGETS=1 opts into the widget for interactive JupyterLab sessions.
Headless runs (the runner, nbval, scripts) set SEQLAB_HEADLESS=1: one line every 30 s.
"""
from __future__ import annotations

import os
import sys


def headless() -> bool:
    if os.environ.get("SEQLAB_HEADLESS"):
        return True
    try:
        from IPython import get_ipython

        return get_ipython() is None or type(get_ipython()).__name__ != "ZMQInteractiveShell"
    except ImportError:
        return True


def bar(total: int, desc: str = "", initial: int = 0, **kw):
    if os.environ.get("SEQLAB_WIDGETS") == "1" and not headless():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, initial=initial, **kw)
    from tqdm import tqdm

    interval = 30 if headless() else 2
    # the bar keeps a fixed 20 cells whatever the run name's length (a long name must not squeeze it away)
    return tqdm(total=total, desc=desc, initial=initial, mininterval=interval, ascii=True, file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]", **kw)
