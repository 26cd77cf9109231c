"""seqlab: small sequence models on synthetic tasks (the thin package behind notebooks/).

Layout: lib.tasks (one file per task), lib.models (one file per model), lib.train (the
one training loop), lib.viz (pictures), lib.config (typed configs, sweeps), lib.run (the
notebook runner), lib.report (what a notebook hands to its report).
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from lib.device import keep_freed_memory  # noqa: E402

keep_freed_memory()


def check_checkout(notebook: str | None = None, cwd: Path | None = None) -> Path:
    """Fail loudly if `import lib` resolved to something other than this repository's package: a
    package that is no seqlab checkout, or the `lib` of another checkout than the one whose
    notebooks/ folder the kernel runs in (JupyterLab and papermill start kernels there), e.g. from a
    kernel registered user-wide by another clone."""
    if not (ROOT / "notebooks").is_dir() or (notebook and not (ROOT / "notebooks" / notebook).exists()):
        raise ImportError(
            f"`lib` was imported from {ROOT}, which is not a seqlab checkout (no notebooks/{notebook or ''}). "
            "Another package named `lib` shadows it: run `pip install -e .` in the seqlab checkout."
        )
    here = (cwd or Path.cwd()).resolve()
    if notebook and (here / notebook).is_file() and (here.parent / "lib" / "__init__.py").is_file() and here.parent != ROOT:
        raise ImportError(
            f"this notebook is in the checkout {here.parent}, but its kernel imports `lib` from {ROOT}: "
            "start JupyterLab from this checkout's venv and pick the kernel 'Python 3' (README, \"JupyterLab\")"
        )
    return ROOT


def setup(notebook: str, device: str = "auto"):
    """A notebook's set-up line: check that `lib` is this checkout, pick the device, print both.

    On a CPU the kernel keeps one thread (SEQLAB_THREADS=n for more), as each of the runner's worker
    processes does: two-thread OpenMP processes sharing two cores with other work ran up to 50x
    slower here (spin-waiting), and a notebook cannot know what else runs beside it."""
    import os

    import torch

    from lib import device as devices

    check_checkout(notebook)
    dev = devices.pick(device)
    if dev.type == "cpu":
        threads = os.environ.get("SEQLAB_THREADS", "1")
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"SEQLAB_THREADS must be a whole number >= 1, got {threads!r}")
        torch.set_num_threads(int(threads))
    print(f"device: {devices.describe(dev)}, torch {torch.__version__}")
    return dev
