"""Committed notebooks stay clean (lib/nbclean.py, the git filter), run from a fresh kernel, and each declares what to expect."""
import json
import re
import sys
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lib.paths import NOTEBOOKS, ROOT
from lib.report import markdown_table

NBS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_committed_notebooks_hold_no_outputs(path: Path):
    # the staged form (git's index), not the working copy a Run All and save filled with outputs
    staged = subprocess.run(["git", "show", f":{path.relative_to(ROOT)}"], cwd=ROOT, capture_output=True, text=True)
    nb = json.loads(staged.stdout if staged.returncode == 0 else path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i + 1} holds outputs: run `python3 lib/nbclean.py --install` once, then `git add {path}`"
            assert cell.get("execution_count") is None, f"{path.name} cell {i + 1} holds an execution count"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert set(nb["metadata"]) <= {"kernelspec", "language_info", "seqlab"}, f"{path.name}: editor metadata {sorted(nb['metadata'])}"


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_each_notebook_sets_up_through_lib_setup(path: Path):
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert re.search(r"^from lib import .*\bsetup\b", code, re.M) and f'setup("{path.name}"' in code
    assert "%matplotlib" not in code  # lib.setup draws figures inline


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_papermill_reads_every_parameter(path: Path):
    """papermill names each top-level assignment of the parameters cell (else a config key that the
    notebook does declare is warned about as unknown, e.g. when a comment holds '=' or a quote)."""
    import ast

    from papermill.inspection import inspect_notebook

    cell = next(c for c in json.loads(path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    declared = {t.id for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    unread = declared - set(inspect_notebook(str(path)))
    assert not unread, f"{path.name}: papermill cannot read {sorted(unread)}"


def test_markdown_tables_print_counts_as_integers_and_nan_as_blank():
    md = markdown_table(pd.DataFrame({"params": [19000], "steps": [2500.0], "error": [float("nan")], "x": [0.012345]}))
    row = md.splitlines()[2]
    assert "19,000" in row and "2,500" in row and "nan" not in row and "1.9e+04" not in md and "0.01235" in row


def test_lib_setup_draws_figures_inline_in_a_kernel(monkeypatch):
    """The notebooks carry no `%matplotlib inline`: lib.setup runs it in an IPython kernel."""
    import types

    import lib

    magics = []
    shell = types.SimpleNamespace(run_line_magic=lambda *a: magics.append(a))
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    lib.setup("selective_copy.ipynb", "cpu")
    assert magics == [("matplotlib", "inline")]
