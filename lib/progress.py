"""One progress-bar wrapper: a widget in JupyterLab, a throttled plain bar when headless.

Headless runs (the runner, nbval, scripts) set SEQLAB_HEADLESS=1; a widget there would
be stored as a bar frozen at 0%.
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
    if headless():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, initial=initial, mininterval=30, ascii=True, file=sys.stderr, **kw)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, initial=initial, **kw)
