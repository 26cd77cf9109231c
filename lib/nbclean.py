"""The git clean filter that keeps committed notebooks in one form, whatever ran or saved them.

A notebook saved by JupyterLab after Run All carries outputs, execution counts, the kernelspec of
whichever kernel ran it ("Python 3 (ipykernel)", a user-registered "seqlab", ...), the kernel's full
language_info, widget state and editor metadata on cells. This filter turns any of that into the
committed form: no outputs or execution counts; notebook metadata `kernelspec` = python3 /
"Python 3", `language_info` = {"name": "python"}, plus the project's own `seqlab` key; cell
metadata `tags` only; papermill's injected-parameters cell removed; JSON written as nbformat
writes it (sorted keys, indent 1, a final newline). So after Run All and save, `git status` stays
clean unless a cell's source changed.

Set up once per clone (the committed .gitattributes routes *.ipynb through it):

    python3 lib/nbclean.py --install

git then runs `python3 -I lib/nbclean.py` (standard library only, no venv needed) on every
notebook it stages or compares. `python3 lib/nbclean.py notebooks/x.ipynb` cleans files in place.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FILTER = "seqlab-notebook"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}
NOTEBOOK_KEYS = ("seqlab",)  # notebook metadata kept as it is (kernelspec and language_info are set)
CELL_KEYS = ("tags",)  # cell metadata kept


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


def install(repo: Path) -> None:
    """Point this clone's git at the filter (the attribute itself is in the committed .gitattributes)."""
    for key, value in ((f"filter.{FILTER}.clean", "python3 -I lib/nbclean.py"), (f"filter.{FILTER}.required", "true")):
        subprocess.run(["git", "config", key, value], cwd=repo, check=True)
    print(f"git filter {FILTER} installed in {repo}: notebooks are staged without outputs or kernel metadata")


def main(argv: list[str]) -> int:
    if argv == ["--install"]:
        install(Path.cwd())
        return 0
    if any(a.startswith("-") for a in argv):
        print("usage: python3 lib/nbclean.py [--install | NOTEBOOK...]  (no argument: filter stdin to stdout)", file=sys.stderr)
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
