"""seqlab: small sequence models on synthetic tasks (the thin package behind notebooks/).

Layout: lib.tasks (one file per task), lib.models (one file per model), lib.train (the
one training loop), lib.viz (pictures), lib.config (typed configs, sweeps), lib.run (the
notebook runner), lib.report (what a notebook hands to its report). Here: setup() (a notebook's
set-up line: this checkout's lib, the device, one CPU thread) and hosted() (Colab/Kaggle storage).
"""
import sys
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
    """A notebook's set-up line: check that `lib` is this checkout, draw figures inline, pick the
    device, print both.

    On a CPU the kernel keeps one thread (SEQLAB_THREADS=n for more), as each of the runner's worker
    processes does: two-thread OpenMP processes sharing two cores with other work ran up to 50x
    slower here (spin-waiting), and a notebook cannot know what else runs beside it."""
    import os

    import torch

    from lib import device as devices

    check_checkout(notebook)
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is not None:  # figures inline, also where the kernel's default backend is another
        shell.run_line_magic("matplotlib", "inline")
    dev = devices.pick(device)
    if dev.type == "cpu":
        threads = os.environ.get("SEQLAB_THREADS", "1")
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"SEQLAB_THREADS must be a whole number >= 1, got {threads!r}")
        torch.set_num_threads(int(threads))
    print(f"device: {devices.describe(dev)}, torch {torch.__version__}")
    return dev


def hosted(working: Path | None = None, inputs: Path | None = None, drive: Path = Path("/content/drive")) -> Path | None:
    """Colab or Kaggle: keep what a session produces where the next session finds it, and return
    that folder (None elsewhere: nothing is done). Safe to call twice; called by every notebook's
    first cell after it installed this checkout.

    Colab: Google Drive is mounted (once) and checkpoints go to MyDrive/seqlab/checkpoints; pass
    `--out <that folder's parent>` to the runner to write reports there too. Kaggle: /kaggle/working
    is saved as the notebook's output when you "Save Version"; make that output a dataset and
    attach it next time (Add Input): its checkpoints are copied back here, so finished runs load
    and cut runs resume. Either way SEQLAB_CHECKPOINTS is set before lib.paths reads it, and the
    working directory becomes this checkout's notebooks/, as under the runner.
    """
    import os
    import shutil

    if "COLAB_RELEASE_TAG" in os.environ or "google.colab" in sys.modules:
        if not (drive / "MyDrive").is_dir():
            from google.colab import drive as colab_drive

            colab_drive.mount(str(drive))
        out = (working or drive / "MyDrive") / "seqlab"
    elif "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        out = (working or Path("/kaggle/working")) / "seqlab"
        for saved in sorted((inputs or Path("/kaggle/input")).glob("*/seqlab/checkpoints")):  # an earlier output, attached
            for src in saved.rglob("*.pt"):
                dst = out / "checkpoints" / src.relative_to(saved)
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
    else:
        return None
    checkpoints = out / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    paths = sys.modules.get("lib.paths")
    if paths is not None and Path(paths.CHECKPOINTS) != checkpoints:
        raise RuntimeError(f"lib.paths was imported before lib.hosted() (checkpoints would go to {paths.CHECKPOINTS}): "
                           "restart the session and run the first cell first")
    os.environ["SEQLAB_CHECKPOINTS"] = str(checkpoints)
    os.chdir(ROOT / "notebooks")
    print(f"seqlab {ROOT}: checkpoints in {checkpoints}; reports: python -m lib.run <notebook> --config ... --out {out}")
    return out
