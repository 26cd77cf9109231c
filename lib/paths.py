"""Repository paths, independent of the working directory (notebooks run from notebooks/)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Checkpoints live under the checkout unless SEQLAB_CHECKPOINTS names a folder that outlives the
# session (e.g. a mounted Google Drive on Colab, /kaggle/working on Kaggle).
CHECKPOINTS = Path(os.environ["SEQLAB_CHECKPOINTS"]).expanduser() if os.environ.get("SEQLAB_CHECKPOINTS") else ROOT / "checkpoints"
CONFIGS = ROOT / "configs"
NOTEBOOKS = ROOT / "notebooks"
REPORTS = ROOT / "reports"
IMAGES = ROOT / "images"


def git_revision() -> str:
    """Short commit hash, with '+dirty' when tracked files (outside reports/ and images/) differ from
    it; 'unknown' outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        # reports/ and images/ are the runner's outputs, not inputs: a report written meanwhile is not a dirty tree
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!reports", ":!images"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
