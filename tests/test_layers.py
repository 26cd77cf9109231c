"""The package's layers, read from the source: lib's import graph (module-level and function-level
imports alike) has no cycle, tasks import neither models nor analysis, and the study layer never
imports the runner."""
import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The lib modules `path` imports anywhere in its body (`from lib.x import y` counts lib.x.y
    when y is a module, else lib.x)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lib")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("lib"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in modules else node.module)
    return {m for m in out if m in modules}


def graph() -> dict[str, set[str]]:
    paths = sorted(LIB.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} for p in paths}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_imports(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    from lib.studies import looped\n    import lib.run\n")
    assert imports_of(tmp_path / "m.py", {"lib.studies", "lib.studies.looped", "lib.run"}) == {"lib.studies.looped", "lib.run"}


def test_lib_has_no_import_cycle():
    assert cycles(graph()) == []


@pytest.mark.parametrize("layer, forbidden", [
    ("lib.tasks", ("lib.models", "lib.analysis", "lib.studies", "lib.run")),
    ("lib.models", ("lib.tasks", "lib.analysis", "lib.studies", "lib.run")),
    ("lib.studies", ("lib.run",)),
])
def test_a_layer_imports_only_below_it(layer, forbidden):
    bad = {m: sorted(i for i in deps if i.startswith(forbidden)) for m, deps in graph().items() if m.startswith(layer)}
    assert not {m: v for m, v in bad.items() if v}
