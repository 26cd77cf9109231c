"""Progress you can read: bars, phase lines and worker lines, each written once, at a bounded rate.

Where a bar goes depends on who watches:
  live     a JupyterLab (or Notebook 7) session: its execute requests carry the cell's id. A text
           bar updates in place every 2 s (SEQLAB_WIDGETS=1: the widget instead).
  terminal a script on a TTY: a text bar in place every second.
  headless everything else: the runner, papermill, Kaggle's "Save & Run All", nbval, a pipe.
           Plain lines, one at the start, then at most one every HEADLESS_SECONDS, and one at the
           end, so a saved notebook holds a few lines per run, never hundreds of frames (a
           widget's saved state would even render as a bar frozen at 0 %).
A worker process (lib.sweep's `workers`) sends its lines to the process that started it, which
prints each once, prefixed with the run's name: two workers never share or overwrite one line.

A bar counts toward its cap (training: `steps`); when a convergence rule or a time budget may stop
the run first, its label says "cap", and the last line says where and why it stopped.
Phase lines (`phase`) say what a long silent stretch is doing: corpus, tokenizer, run k of n with
the sweep's ETA, evaluation.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable

from tqdm import tqdm as _tqdm

HEADLESS_SECONDS = 30.0
_clock = time.monotonic
_to_parent = None  # in a worker process: the queue that the parent's relay reads


def live() -> bool:
    """A person watches a Jupyter frontend: the current execute request carries a cell id
    (JupyterLab, Notebook 7). nbclient (papermill, Kaggle batch, nbval) sends none."""
    if os.environ.get("SEQLAB_HEADLESS"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        return bool(shell.kernel.get_parent().get("metadata", {}).get("cellId"))
    except (AttributeError, LookupError):
        return False


def headless() -> bool:
    """No one watches in place: plain, throttled lines (see the module docstring)."""
    if _to_parent is not None or os.environ.get("SEQLAB_HEADLESS"):
        return True
    try:
        from IPython import get_ipython

        in_kernel = get_ipython() is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell"
    except ImportError:
        in_kernel = False
    return not live() if in_kernel else not sys.stderr.isatty()


def emit(line: str) -> None:
    """One line of progress, once: to the parent process from a worker, else to stderr."""
    if _to_parent is not None:
        _to_parent.put(line)
        return
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def phase(text: str) -> None:
    """A phase of a long job, on its own line (stderr: the runner shows it on the terminal, the
    report leaves it out)."""
    emit(f"[seqlab] {text}")


def _fmt(seconds: float) -> str:
    return _tqdm.format_interval(max(0.0, seconds))


class LineBar:
    """A throttled plain-text bar: one line at the start, at most one per `interval` seconds, one at
    the end. The tqdm calls the training loop makes (update, set_postfix, close, `with`)."""

    def __init__(self, total: int, desc: str = "", initial: int = 0, interval: float = HEADLESS_SECONDS,
                 stop: Callable[[], str | None] | None = None):
        self.total, self.desc, self.n, self.interval, self.stop = total, desc, initial, interval, stop
        self.postfix, self.closed = "", False
        self.start, self.initial = _clock(), initial
        self.last = self.start
        self._line()

    def _line(self, note: str = "") -> None:
        elapsed, done = _clock() - self.start, self.n - self.initial
        pct = 100.0 * self.n / self.total if self.total else 100.0
        rate = done / elapsed if elapsed > 0 and done else 0.0
        eta = f"<{_fmt((self.total - self.n) / rate)}" if rate and self.n < self.total else ""
        speed = f", {rate:.3g} it/s" if rate else ""
        emit(f"{self.desc}: {pct:3.0f}% {self.n}/{self.total} [{_fmt(elapsed)}{eta}{speed}]"
             + (f" {self.postfix}" if self.postfix else "") + (f" {note}" if note else ""))

    def update(self, n: int = 1) -> None:
        self.n += n
        now = _clock()
        if now - self.last >= self.interval:
            self.last = now
            self._line()

    def set_postfix(self, values: dict | None = None, refresh: bool = True, **kw) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**(values or {}), **kw}.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        reason = self.stop() if self.stop else None
        self._line(f"stopped: {reason}" if reason and self.n < self.total else "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _TqdmBar(_tqdm):
    """tqdm in place (terminal, live notebook) that notes why it stopped before its cap."""

    def __init__(self, *a, stop: Callable[[], str | None] | None = None, **kw):
        self._stop = stop
        super().__init__(*a, **kw)

    def close(self):
        reason = self._stop() if self._stop and not self.disable else None
        if reason and self.n < (self.total or 0):
            self.set_postfix_str(f"stopped at {self.n}: {reason}", refresh=False)
        super().close()


def bar(total: int, desc: str = "", initial: int = 0, cap: bool = False, stop: Callable[[], str | None] | None = None, **kw):
    """A progress bar over `total` (e.g. steps). cap=True: the run may stop before `total` (a
    convergence rule, a time budget), so the label says "cap"; `stop()` gives the reason at close."""
    label = f"{desc} (cap {total:,})" if cap else desc
    if headless():
        return LineBar(total, label, initial, stop=stop)
    if os.environ.get("SEQLAB_WIDGETS") == "1" and live():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=label, initial=initial, **kw)
    # the bar keeps a fixed 20 cells whatever the run name's length (a long name must not squeeze it away)
    return _TqdmBar(total=total, desc=label, initial=initial, mininterval=2 if live() else 1, ascii=True, file=sys.stderr, stop=stop,
                    bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]", **kw)


class Runs:
    """Phase lines of a sweep: "run k of n: <name>" with an ETA for the whole sweep at the pace of the
    runs trained so far (loaded runs cost nothing), then the evaluation phase. Used as `with
    Runs(n):` around several sweeps (e.g. one per model entry), it counts them all as one."""

    def __init__(self, n: int, what: str = "run"):
        self.n, self.what, self.k, self.trained, self.seconds = n, what, 0, 0, 0.0
        self.t0 = None

    def start(self, name: str) -> None:
        self.k += 1
        left = self.n - self.k + 1
        eta = f"; about {_fmt(self.seconds / self.trained * left)} left at the pace so far" if self.trained else ""
        phase(f"{self.what} {self.k} of {self.n}: {name}{eta}")
        self.t0 = _clock()

    def done(self, trained: bool) -> None:
        if trained and self.t0 is not None:
            self.trained += 1
            self.seconds += _clock() - self.t0

    def finish(self, last: bool = False) -> None:
        if self is _outer and not last:
            return
        loaded = self.k - self.trained
        phase(f"{self.k} {self.what}{'s' if self.k != 1 else ''} ready ({self.trained} trained now, {loaded} loaded); evaluating")

    def __enter__(self):
        global _outer
        _outer = self
        return self

    def __exit__(self, *exc):
        global _outer
        _outer = None
        if exc[0] is None:
            self.finish(last=True)


_outer: Runs | None = None


def runs(n: int) -> Runs:
    """The sweep's phase lines: the enclosing `with Runs(...)` if any, else a new one over n runs."""
    return _outer if _outer is not None else Runs(n)


def attach(queue) -> None:
    """In a worker process: send progress lines to the parent through `queue`."""
    global _to_parent
    _to_parent = queue


class relay:
    """In the parent: print the lines that worker processes send (each once, from a thread), for as
    long as the `with` block runs. `queue` goes to the workers (their initializer calls attach)."""

    def __init__(self, context):
        import threading

        self.queue = context.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)

    def _pump(self) -> None:
        while (line := self.queue.get()) is not None:
            emit(line)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.queue.put(None)
        self._thread.join(timeout=10)
