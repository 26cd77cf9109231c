"""The newcomer's path: JupyterLab leaves git clean, lib from another checkout is refused, progress
is readable and bounded, gpu profiles compile only where they can, cited references are in the repo."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import lib
from lib import nbclean
from lib.paths import CONFIGS, NOTEBOOKS, ROOT

NBS = sorted(NOTEBOOKS.glob("*.ipynb"))


def git(*args, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_committed_notebooks_are_what_the_clean_filter_stages(path: Path):
    """Byte for byte: otherwise a notebook saved unchanged by JupyterLab would show as modified."""
    text = path.read_text(encoding="utf-8")
    assert nbclean.clean_text(text) == text, f"{path.name} is not in its committed form: run `python3 lib/nbclean.py {path.relative_to(ROOT)}`"


def run_all_and_save_as_jupyterlab(src: Path, dst: Path) -> None:
    """What JupyterLab writes after Run All and save with the README's kernel: every code cell
    executed by a real kernel (here each runs a cheap stand-in that prints to stdout and stderr,
    returns a value, shows a PNG and raises nothing), the sources then restored as they were, the
    native kernel's kernelspec, the kernel's own language_info, widget state and editor metadata."""
    from nbclient import NotebookClient

    nb = nbformat.read(src, as_version=4)
    sources = [c.source for c in nb.cells]
    stand_in = ("import sys, base64\nfrom IPython.display import Image, display\nprint('out'); print('bar 50%', file=sys.stderr)\n"
                "display(Image(data=base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==')))\n42")
    for c in nb.cells:
        if c.cell_type == "code":
            c.source = stand_in
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    for c, s in zip(nb.cells, sources):
        c.source = s
        if c.cell_type == "code":
            c.metadata["scrolled"] = True
            c.metadata["jupyter"] = {"outputs_hidden": False}
            assert c.outputs and c.execution_count, "the simulated run must leave outputs"
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2, "version_minor": 0}}
    assert nb.metadata["language_info"].get("version"), "nbclient records the kernel's language_info"
    nbformat.write(nb, dst)  # jupyter_server saves through nbformat.write too


def test_jupyterlab_run_all_and_save_leaves_git_status_clean(tmp_path):
    """The README's path (clone, `python3 lib/nbclean.py --install`, Run All, save) leaves nothing to
    commit: git stages exactly the committed notebook and `git status` is clean once the index is
    refreshed. Without the filter the same save is a change."""
    repo, name = tmp_path / "clone", "selective_copy.ipynb"
    for rel in (".gitattributes", "lib/nbclean.py", f"notebooks/{name}"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, repo / rel)
    git("init", "-q", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c", "--allow-empty", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notebook", cwd=repo)
    committed = (repo / "notebooks" / name).read_bytes()

    run_all_and_save_as_jupyterlab(repo / "notebooks" / name, repo / "notebooks" / name)
    assert b'"image/png"' in (repo / "notebooks" / name).read_bytes()
    assert git("status", "--porcelain", cwd=repo).strip() == "M notebooks/selective_copy.ipynb"  # no filter yet

    subprocess.run(["python3", "lib/nbclean.py", "--install"], cwd=repo, check=True, capture_output=True)
    assert git("diff", "--stat", cwd=repo).strip() == ""  # content compared through the filter
    git("add", "-A", cwd=repo)  # (until the index is refreshed, `git status` may list it by its size alone)
    assert git("status", "--porcelain", cwd=repo).strip() == ""
    assert subprocess.run(["git", "show", f":notebooks/{name}"], cwd=repo, capture_output=True, check=True).stdout == committed


@pytest.mark.parametrize("hook", [True, False])
def test_jupyterlab_with_the_save_hook_leaves_git_status_clean(tmp_path, hook):
    """Saving through jupyter_server's own contents manager (what JupyterLab's save calls) with the
    README's `pre_save_hook`: the file on disk is the committed one and `git status` is clean without
    `git add`. Without the hook the same save is listed as modified."""
    from jupyter_server.services.contents.filemanager import FileContentsManager

    repo, rel = tmp_path / "clone", "notebooks/selective_copy.ipynb"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / rel, repo / rel)
    (repo / ".gitignore").write_text(".ipynb_checkpoints/\n")
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notebook", cwd=repo)
    committed = (repo / rel).read_bytes()

    cm = FileContentsManager(root_dir=str(repo), **({"pre_save_hook": "lib.nbclean.pre_save_hook"} if hook else {}))
    model = cm.get(rel)  # as JupyterLab opens it; then Run All in another kernel than the committed one
    nb = model["content"]
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"ran cell {i}\n")]
        cell.metadata["execution"] = {"iopub.status.busy": "2026-12-03T10:00:00Z"}
    cm.save({"type": "notebook", "format": "json", "content": nb}, rel)

    status = git("status", "--porcelain", cwd=repo).strip()
    if hook:
        assert status == "" and (repo / rel).read_bytes() == committed
    else:
        assert status == f"M {rel}"


def test_the_clean_filter_strips_what_editors_and_papermill_add():
    nb = json.loads((NOTEBOOKS / "selective_copy.ipynb").read_text())
    dirty = json.loads(json.dumps(nb))
    dirty["metadata"]["kernelspec"] = {"display_name": "seqlab (.venv)", "language": "python", "name": "seqlab"}
    dirty["metadata"]["papermill"] = {"parameters": {}}
    dirty["cells"].insert(2, {"cell_type": "code", "id": "x", "metadata": {"tags": ["injected-parameters"]},
                              "source": "steps = 1\n", "outputs": [], "execution_count": 3})
    dirty["cells"][3]["metadata"].update(papermill={"duration": 1.0}, ExecuteTime={}, collapsed=True)
    dirty["cells"][3]["source"] = "".join(dirty["cells"][3]["source"])  # one string, as some tools write it
    assert nbclean.clean_text(json.dumps(dirty)) == nbclean.dumps(nb)


def fake_checkout(root: Path, notebook: str) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "__init__.py").write_text("")
    (root / "notebooks").mkdir()
    shutil.copy(NOTEBOOKS / notebook, root / "notebooks" / notebook)
    return root / "notebooks"


def test_lib_from_another_checkout_is_refused_in_one_line(tmp_path):
    other = fake_checkout(tmp_path / "other-clone", "selective_copy.ipynb")
    with pytest.raises(ImportError) as e:
        lib.check_checkout("selective_copy.ipynb", cwd=other)
    message = str(e.value)
    assert "\n" not in message and str(other.parent) in message and str(lib.ROOT) in message
    assert lib.check_checkout("selective_copy.ipynb", cwd=NOTEBOOKS) == lib.ROOT  # its own checkout
    assert lib.check_checkout("selective_copy.ipynb", cwd=tmp_path) == lib.ROOT  # Colab: not inside any checkout


GPU_PROFILES = sorted(CONFIGS.glob("*/gpu.yml"))


@pytest.mark.parametrize("path", GPU_PROFILES, ids=[p.parent.name for p in GPU_PROFILES])
def test_gpu_profiles_compile_only_where_the_gpu_can(path: Path):
    """compile: true fails on a Kaggle P100 (sm_60); auto compiles from sm 7.0 on and is off elsewhere."""
    import torch

    from lib.config import read_config
    from lib.device import resolve_compile

    value = read_config(path)[0].get("compile", "auto")
    cuda = torch.device("cuda")
    assert value in ("auto", False), f"{path.relative_to(ROOT)}: compile {value!r}"
    assert resolve_compile(value, cuda, cap=(6, 0)) is False  # P100: runs, uncompiled
    assert resolve_compile(value, torch.device("cpu")) is False
    if value == "auto":
        assert resolve_compile(value, cuda, cap=(7, 5)) is True  # T4 and newer: compiled


def test_compile_true_on_a_p100_is_a_one_line_error():
    import torch

    from lib.device import resolve_compile

    with pytest.raises(ValueError, match="sm_60 .use compile: false."):
        resolve_compile(True, torch.device("cuda"), cap=(6, 0))


def test_every_cited_reference_card_is_in_the_repository():
    """Notebooks, README and lib cite reference cards by their in-repo path (references/<card>.md)."""
    cited = set()
    sources = [*NOTEBOOKS.glob("*.ipynb"), ROOT / "README.md", *(ROOT / "lib").rglob("*.py")]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert "shared/reference" not in text, f"{path.relative_to(ROOT)} cites a card outside the checkout"
        cited |= set(re.findall(r"references/(\w+\.md)", text))
    assert cited and all((ROOT / "references" / card).is_file() for card in cited), sorted(cited)
    assert cited == {p.name for p in (ROOT / "references").glob("*.md")}  # no card cited nowhere


# ---- progress -------------------------------------------------------------------------------------

def test_a_headless_bar_writes_a_bounded_number_of_lines(monkeypatch, capsys):
    from lib import progress

    clock = iter(range(10**6))
    monkeypatch.setattr(progress, "_clock", lambda: float(next(clock)))  # one second per call
    monkeypatch.setenv("SEQLAB_HEADLESS", "1")
    reason = {"why": None}
    bar = progress.bar(600, desc="gpt seed 0", cap=True, stop=lambda: reason["why"])
    for _ in range(240):
        bar.update(1)
    reason["why"] = "converged"
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert "\r" not in "".join(lines) and all(line.startswith("gpt seed 0 (cap 600): ") for line in lines)
    assert 2 <= len(lines) <= 2 + 2 * 240 // progress.HEADLESS_SECONDS  # the clock is read twice per update here
    assert lines[-1].endswith("stopped: converged") and " 240/600 " in lines[-1]


KERNEL_CELL = """
import lib, torch
from lib import progress
dev = lib.setup("selective_copy.ipynb", "cpu")
ticks = iter(range(10**7))
progress._clock = lambda: float(next(ticks))  # 1 s per reading: 3,000 steps are an hour's worth
bar = progress.bar(3000, desc="run")
for _ in range(3000):
    bar.update(1)
bar.close()
print(type(bar).__name__, torch.get_num_threads(), progress.live())
"""


def run_cell(kc, code: str, metadata: dict | None = None) -> list[dict]:
    """Execute one cell as a frontend would (JupyterLab sends the cell's id in the metadata) and return
    its output messages."""
    msg = kc.session.msg("execute_request", {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                                             "allow_stdin": False, "stop_on_error": True}, metadata=metadata or {})
    kc.shell_channel.send(msg)
    outputs = []
    while True:
        m = kc.get_iopub_msg(timeout=120)
        if m["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
            continue
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return outputs
        if m["msg_type"] in ("stream", "error"):
            outputs.append(m)


def test_a_notebook_run_headless_gets_throttled_lines_and_one_thread(tmp_path):
    """papermill / Kaggle "Save & Run All" / nbval (no cell id in the requests): an hour of steps gives
    a bounded number of progress messages, and the kernel trains on one thread; the same cell from
    JupyterLab (cell id present) gets the in-place bar."""
    from jupyter_client.manager import start_new_kernel

    env = {k: v for k, v in os.environ.items() if k not in ("SEQLAB_HEADLESS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SEQLAB_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(NOTEBOOKS))
    try:
        outs = run_cell(kc, KERNEL_CELL)
        assert not [o for o in outs if o["msg_type"] == "error"], outs
        stdout = "".join(o["content"]["text"] for o in outs if o["content"].get("name") == "stdout")
        progress_msgs = [o for o in outs if o["content"].get("name") == "stderr"]
        assert stdout.split()[-3:] == ["LineBar", "1", "False"], stdout
        assert len(progress_msgs) <= 2 + 2 * 3000 // 30  # at most one line per 30 s of (fake) time, plus first and last
        assert "\r" not in "".join(o["content"]["text"] for o in progress_msgs)
        live = run_cell(kc, "from lib import progress\nprint(progress.live(), progress.headless())", metadata={"cellId": "c1"})
        assert "".join(o["content"]["text"] for o in live).split() == ["True", "False"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


WORKER_SWEEP = """
import sys
from lib.models.thinker import Thinker, ThinkerConfig
from lib.sweep import train_sweep
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig

if __name__ == "__main__":  # spawned workers import this file again
    cfg = AlgorithmicConfig(task="copy", V=6, length=5, val_size=32)
    models = [ThinkerConfig(vocab=cfg.vocab, out_len=cfg.out_len, d=d, n_head=2, n_latent=2, n_step=2, max_len=20) for d in (8, 16)]
    train_sweep(Thinker, models, Algorithmic(cfg), {"steps": 40, "batch_size": 8, "eval_every": 10, "device": "cpu",
                "converge_metric": "val_token_acc", "converge_window": 1, "converge_tol": 10.0, "min_steps": 20},
                seeds=[0], study=sys.argv[1], workers=2)
"""


def test_two_workers_print_each_line_once_under_their_run_names(tmp_path):
    """workers: 2 -> the workers' lines reach the parent, which prints each once; plain lines, so two
    bars never overwrite one terminal line; the convergence rule's stop is named; phases are printed."""
    import uuid

    from lib.paths import CHECKPOINTS

    study = f"test-newcomer-{uuid.uuid4().hex[:8]}"
    (tmp_path / "sweep.py").write_text(WORKER_SWEEP)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEQLAB_HEADLESS": "1"}
    try:
        r = subprocess.run([sys.executable, str(tmp_path / "sweep.py"), study], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(CHECKPOINTS / study, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stderr.splitlines()
    assert "\r" not in r.stderr
    names = sorted({line.split(" (cap")[0] for line in lines if " (cap 40): " in line})
    assert len(names) == 2, lines
    for name in names:
        finals = [line for line in lines if line.startswith(f"{name} (cap 40): ") and "stopped: converged" in line]
        assert len(finals) == 1, lines  # trained in a worker, stopped by the rule at step 20, printed once
        assert " 20/40 " in finals[0]
    assert any(line.startswith("[seqlab] training 2 runs in 2 worker processes") for line in lines)
    assert any(line.startswith("[seqlab] run 2 of 2: ") for line in lines)
    assert any(line.startswith("[seqlab] 2 runs ready (0 trained now, 2 loaded); evaluating") for line in lines)


def test_nested_sweeps_count_their_runs_as_one(monkeypatch, capsys):
    from lib import progress

    monkeypatch.setattr(progress, "_clock", iter(range(0, 10**6, 60)).__next__)  # a minute per reading
    with progress.Runs(3):
        for name in ("a", "b", "c"):  # e.g. one train_sweep per model entry, one run each
            inner = progress.runs(1)
            inner.start(name)
            inner.done(trained=True)
            inner.finish()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[seqlab] run 1 of 3: a", "[seqlab] run 2 of 3: b; about 02:00 left at the pace so far",
                     "[seqlab] run 3 of 3: c; about 01:00 left at the pace so far", "[seqlab] 3 runs ready (3 trained now, 0 loaded); evaluating"]


# ---- Colab and Kaggle -----------------------------------------------------------------------------

def hosted_cells() -> dict[str, str]:
    return {p.stem: "".join(next(c for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code")["source"]) for p in NBS}


def test_every_notebook_opens_with_the_same_pinned_hosted_cell():
    cells = hosted_cells()
    repo, commit = nbclean.pinned(cells[NBS[0].stem])
    assert all(source == nbclean.hosted_cell(repo, commit) for source in cells.values())


PINNED_REPO = "https://example.org/seqlab.git"


def exec_hosted_cell(monkeypatch, tmp_path, env: dict, fail: bool = False, repo: str | None = PINNED_REPO):
    """Run the first cell as Colab/Kaggle would, with pip and lib.hosted recorded, not run; the
    committed cell pinned to `repo` (None: as committed)."""
    calls = []
    source = hosted_cells()["small_lms"]
    if repo is not None:
        source = nbclean.hosted_cell(repo, nbclean.pinned(source)[1])

    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1 if fail else 0)

    for key in ("COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {**env, "HOME": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(lib, "hosted", lambda: calls.append(["lib.hosted"]))
    exec(source, {"__name__": "__main__"})
    return calls


def test_the_hosted_cell_installs_the_pin_into_home_and_can_run_twice(monkeypatch, tmp_path):
    assert exec_hosted_cell(monkeypatch, tmp_path, {}) == []  # JupyterLab, papermill, nbval: nothing
    calls = exec_hosted_cell(monkeypatch, tmp_path, {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
    calls += exec_hosted_cell(monkeypatch, tmp_path, {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})  # run twice
    commit = nbclean.pinned(hosted_cells()["small_lms"])[1]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--src", str(tmp_path), "-e", f"git+{PINNED_REPO}@{commit}#egg=seqlab"]
    assert calls == [pip, ["lib.hosted"], pip, ["lib.hosted"]]  # pip clones into ~/seqlab, then updates that clone
    assert str(tmp_path / "seqlab") in sys.path


def test_an_unpinned_hosted_cell_asks_for_the_repository_url_before_any_download(monkeypatch, tmp_path):
    repo = nbclean.pinned(hosted_cells()["small_lms"])[0]
    if "<" not in repo:
        pytest.skip(f"the notebooks are pinned to {repo}")
    with pytest.raises(SystemExit, match="set REPO in this cell"):
        exec_hosted_cell(monkeypatch, tmp_path, {"COLAB_RELEASE_TAG": "x"}, repo=None)


def test_no_internet_in_the_hosted_cell_is_one_line_naming_the_toggle(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="Kaggle: Settings, Internet on"):
        exec_hosted_cell(monkeypatch, tmp_path, {"COLAB_RELEASE_TAG": "x"}, fail=True)


def test_pin_rewrites_every_hosted_cell(tmp_path):
    for p in NBS[:2]:
        shutil.copy(p, tmp_path / p.name)
    paths = sorted(tmp_path.glob("*.ipynb"))
    nbclean.pin(paths, "0123abcd", "https://example.org/seqlab.git")
    for p in paths:
        nb = json.loads(p.read_text())
        source = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
        assert nbclean.pinned(source) == ("https://example.org/seqlab.git", "0123abcd")
        assert nbclean.clean_text(p.read_text()) == p.read_text()


def test_hosted_on_kaggle_restores_an_attached_output_and_is_idempotent(monkeypatch, tmp_path):
    working, inputs = tmp_path / "working", tmp_path / "input"
    saved = inputs / "my-seqlab-output" / "seqlab" / "checkpoints" / "small_lms"
    saved.mkdir(parents=True)
    (saved / "gpt-s0-abc.pt").write_bytes(b"weights")
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("SEQLAB_CHECKPOINTS", raising=False)
    monkeypatch.delitem(sys.modules, "lib.paths", raising=False)  # a fresh session: not imported yet
    monkeypatch.chdir(tmp_path)
    out = lib.hosted(working, inputs)
    assert out == working / "seqlab" and Path.cwd() == lib.ROOT / "notebooks"
    restored = working / "seqlab" / "checkpoints" / "small_lms" / "gpt-s0-abc.pt"
    assert restored.read_bytes() == b"weights" and os.environ["SEQLAB_CHECKPOINTS"] == str(working / "seqlab" / "checkpoints")
    restored.write_bytes(b"trained further")  # this session's newer checkpoint is not overwritten on a rerun
    assert lib.hosted(working, inputs) == out and restored.read_bytes() == b"trained further"


def test_hosted_after_lib_paths_was_imported_elsewhere_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.chdir(tmp_path)
    import lib.paths  # noqa: F401  (already imported, pointing at the checkout's checkpoints/)

    with pytest.raises(RuntimeError, match="run the first cell first"):
        lib.hosted(tmp_path / "working", tmp_path / "input")


def test_hosted_does_nothing_off_colab_and_kaggle(monkeypatch, tmp_path):
    for key in ("COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    assert lib.hosted() is None and Path.cwd() == tmp_path


def test_hosted_on_colab_mounts_drive_once(monkeypatch, tmp_path):
    import types

    mounts = []
    fake = types.SimpleNamespace(mount=lambda where: (mounts.append(where), (Path(where) / "MyDrive").mkdir(parents=True)))
    monkeypatch.setitem(sys.modules, "google.colab", types.SimpleNamespace(drive=fake))
    monkeypatch.setitem(sys.modules, "google", types.SimpleNamespace(colab=sys.modules["google.colab"]))
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")
    monkeypatch.delenv("SEQLAB_CHECKPOINTS", raising=False)
    monkeypatch.delitem(sys.modules, "lib.paths", raising=False)
    monkeypatch.chdir(tmp_path)
    out = lib.hosted(drive=tmp_path / "drive")
    assert out == tmp_path / "drive" / "MyDrive" / "seqlab" and (out / "checkpoints").is_dir()
    assert lib.hosted(drive=tmp_path / "drive") == out and mounts == [str(tmp_path / "drive")]


def test_the_readmes_papermill_line_passes_lists_as_lists(tmp_path):
    """papermill -p gives strings ("[0, 1]"); the README's -y gives the list the notebook expects."""
    import shlex

    readme = (ROOT / "README.md").read_text()
    (line,) = [x for x in readme.splitlines() if x.startswith("papermill notebooks/")]
    argv = shlex.split(line)
    argv[2] = str(tmp_path / "out.ipynb")
    r = subprocess.run([sys.executable, "-m", *argv, "--prepare-only"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    nb = json.loads((tmp_path / "out.ipynb").read_text())
    (injected,) = ["".join(c["source"]) for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "seeds = [0, 1]" in injected


@pytest.mark.parametrize("value, ok", [("auto", True), (True, True), (False, True), ("sometimes", False), (1, False)])
def test_a_compile_key_is_auto_true_or_false_before_any_kernel(value, ok, tmp_path):
    from lib.config import ConfigError
    from lib.notebooks import notebook_path, validate

    params = {"compile": value}
    if ok:
        validate(params, notebook_path("selective_copy"), where="x.yml")
    else:
        with pytest.raises(ConfigError, match=r"^x.yml: compile"):
            validate(params, notebook_path("selective_copy"), where="x.yml")
