"""The git clean filter that keeps committed notebooks in one form, whatever ran or saved them.

A notebook saved by JupyterLab after Run All carries outputs, execution counts, the kernelspec of
whichever kernel ran it ("Python 3 (ipykernel)", a user-registered "seqlab", ...), the kernel's full
language_info, widget state and editor metadata on cells. This filter turns any of that into the
committed form: no outputs or execution counts; notebook metadata `kernelspec` = python3 /
"Python 3", `language_info` = {"name": "python"}, plus the project's own `seqlab` key; cell
metadata `tags` only; papermill's injected-parameters cell removed; JSON written as nbformat
writes it (sorted keys, indent 1, a final newline). With the filter, `git diff` is empty after Run All
and save unless a cell's source changed (git still lists the file by its changed size until `git add`);
with `pre_save_hook` below, JupyterLab writes the committed form itself and `git status` stays clean.

Set up once per clone (the committed .gitattributes routes *.ipynb through it):

    python3 lib/nbclean.py --install

git then runs `python3 -I lib/nbclean.py` (standard library only, no venv needed) on every
notebook it stages or compares. `python3 lib/nbclean.py notebooks/x.ipynb` cleans files in place.

The same tool pins the Colab/Kaggle first cell of every notebook (`hosted_cell`) to a commit:

    python3 lib/nbclean.py --pin COMMIT [--repo URL]

Pin after the last code change and commit the notebooks: they then install exactly COMMIT, which
differs from the commit holding them only in the pinned line.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

FILTER = "seqlab-notebook"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}
NOTEBOOK_KEYS = ("seqlab",)  # notebook metadata kept as it is (kernelspec and language_info are set)
CELL_KEYS = ("tags",)  # cell metadata kept

HOSTED_MARK = "# Colab / Kaggle only"
DEFAULT_REPO, DEFAULT_COMMIT = "https://github.com/<you>/seqlab.git", "main"
_PIN = re.compile(r'^    REPO, COMMIT = "([^"]*)", "([^"]*)"$', re.M)


def hosted_cell(repo: str, commit: str) -> str:
    """Every notebook's first code cell: on Colab or Kaggle only, pip clones this repository at `commit`
    into ~/seqlab (an editable install; run again, pip updates that clone to the pin) and calls
    lib.hosted(); elsewhere it does nothing."""
    return f"""{HOSTED_MARK} (elsewhere nothing happens; safe to run twice): install seqlab at COMMIT into ~/seqlab and
# keep checkpoints on Google Drive (Colab) or in /kaggle/working (Kaggle). README, "Colab and Kaggle".
import os, subprocess, sys
if "COLAB_RELEASE_TAG" in os.environ or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
    REPO, COMMIT = "{repo}", "{commit}"
    if "<" in REPO:
        raise SystemExit("set REPO in this cell to your seqlab repository's URL (README, 'Colab and Kaggle')")
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--src", os.path.expanduser("~"), "-e", f"git+{{REPO}}@{{COMMIT}}#egg=seqlab"]).returncode:
        raise SystemExit("pip could not fetch REPO: no internet? (Kaggle: Settings, Internet on; it needs a verified phone)")
    sys.path.insert(0, os.path.expanduser("~/seqlab"))
    import lib
    lib.hosted()"""


def pinned(source: str) -> tuple[str, str]:
    """(repo, commit) of a hosted cell."""
    m = _PIN.search(source)
    if m is None:
        raise ValueError("not a hosted cell: no `REPO, COMMIT = ...` line")
    return m.group(1), m.group(2)


def pin(paths: list[Path], commit: str, repo: str | None = None) -> None:
    """Rewrite the hosted cell of each notebook to install `commit` (and `repo` if given)."""
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        source = "".join(cell["source"])
        if not source.startswith(HOSTED_MARK):
            raise ValueError(f"{path}: the first code cell is not the Colab/Kaggle cell")
        cell["source"] = _lines(hosted_cell(repo or pinned(source)[0], commit))
        path.write_text(dumps(clean(nb)), encoding="utf-8")


def _lines(source) -> list[str]:
    """nbformat's on-disk form of a multi-line string: a list of lines, each with its newline."""
    return source.splitlines(keepends=True) if isinstance(source, str) else list(source)


def clean(nb: dict) -> dict:
    """The committed form of a notebook (a new dict; `nb` is left as it is)."""
    cells = []
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue
        out = {k: v for k, v in cell.items() if k not in ("outputs", "execution_count", "metadata")}
        out["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in CELL_KEYS and v}
        out["source"] = _lines(cell.get("source", []))
        if cell.get("cell_type") == "code":
            out["outputs"], out["execution_count"] = [], None
        cells.append(out)
    meta = {k: v for k, v in nb.get("metadata", {}).items() if k in NOTEBOOK_KEYS}
    meta.update(kernelspec=dict(KERNELSPEC), language_info=dict(LANGUAGE_INFO))
    return {**{k: v for k, v in nb.items() if k not in ("cells", "metadata")}, "cells": cells, "metadata": meta}


def dumps(nb: dict) -> str:
    """JSON as nbformat (and so JupyterLab) writes a notebook."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False, separators=(",", ": ")) + "\n"


def clean_text(text: str) -> str:
    return dumps(clean(json.loads(text)))


def pre_save_hook(model: dict, **kwargs) -> None:
    """jupyter_server's `ContentsManager.pre_save_hook`: JupyterLab writes a notebook in its committed
    form, so after Run All and save the file on disk is byte for byte the committed one and `git status`
    stays clean (the filter alone leaves git listing the file by its changed size until `git add`).
    Outputs then live in the open session and in reports/, not on disk. Enabled with
    `jupyter lab --ContentsManager.pre_save_hook=lib.nbclean.pre_save_hook`."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        model["content"] = clean(model["content"])


def install(repo: Path) -> None:
    """Point this clone's git at the filter (the attribute itself is in the committed .gitattributes)."""
    for key, value in ((f"filter.{FILTER}.clean", "python3 -I lib/nbclean.py"), (f"filter.{FILTER}.required", "true")):
        subprocess.run(["git", "config", key, value], cwd=repo, check=True)
    print(f"git filter {FILTER} installed in {repo}: notebooks are staged without outputs or kernel metadata")


def main(argv: list[str]) -> int:
    if argv == ["--install"]:
        install(Path.cwd())
        return 0
    if argv[:1] == ["--pin"] and len(argv) in (2, 4) and (len(argv) == 2 or argv[2] == "--repo"):
        pin(sorted(Path("notebooks").glob("*.ipynb")), argv[1], argv[3] if len(argv) == 4 else None)
        return 0
    if any(a.startswith("-") for a in argv):
        print("usage: python3 lib/nbclean.py [--install | --pin COMMIT [--repo URL] | NOTEBOOK...]  (no argument: filter stdin to stdout)",
              file=sys.stderr)
        return 2
    try:
        if not argv:  # git's clean filter: the worktree file on stdin, the staged form on stdout
            sys.stdout.buffer.write(clean_text(sys.stdin.buffer.read().decode("utf-8")).encode("utf-8"))
            return 0
        for name in argv:
            path = Path(name)
            path.write_text(clean_text(path.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as e:
        print(f"nbclean: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
