"""Bad input and a hostile environment for the runner: each case is one line on stderr beginning
with 'error:', exit code 2, nothing written (no report, no images, no checkpoint, no temporary
folder), and no process left behind. No case may reach papermill: `execute` is replaced by a
function that fails the test."""
import errno
import os
import tempfile
from pathlib import Path

import pytest

from lib import procs, run
from lib.paths import CHECKPOINTS, NOTEBOOKS, ROOT

SC, LOOPED, LMS = "selective_copy", "looped_vs_standard", "small_lms"
SMOKE = (ROOT / "configs/selective_copy/smoke.yml").read_text()

# A 'billion laughs' in one parameter: nine levels of nine aliases, 9**9 strings once expanded.
LEVELS = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"&{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
BOMB = f"seeds: [{', '.join(LEVELS)}]\n"


def _chain(tmp: Path, n: int) -> Path:
    """n config files, each starting from the next: c0 -> c1 -> ... -> c{n-1}."""
    for i in range(n):
        (tmp / f"c{i}.yml").write_text(f"base: c{i + 1}.yml\n" if i < n - 1 else SMOKE)
    return tmp / "c0.yml"


def _corrupt_notebook(tmp: Path, monkeypatch) -> None:
    nbs = tmp / "nbs"
    nbs.mkdir()
    (nbs / "broken.ipynb").write_text('{"cells": [ {"cell_type": "code", "sour')
    monkeypatch.setattr("lib.notebooks.NOTEBOOKS", nbs)


def _no_tmpdir(tmp: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp / "gone"))  # TMPDIR names a folder that is not there


def _full_tmpdir(tmp: Path, monkeypatch) -> None:
    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tempfile, "TemporaryDirectory", full)


# (id, notebook, config text (None: no file; a function: builds the config, returns its path), extra argv, set-up)
CASES = [
    ("dot-slash name", "./selective_copy", SMOKE, [], None),
    ("dot-dot name", "../notebooks/selective_copy", SMOKE, [], None),
    ("absolute name", str(NOTEBOOKS / SC), SMOKE, [], None),
    ("name with .ipynb", "selective_copy.ipynb", SMOKE, [], None),
    ("folder/name", "notebooks/selective_copy", SMOKE, [], None),
    ("empty name", "", SMOKE, [], None),
    ("alias bomb", SC, BOMB, [], None),
    ("alias bomb in a list of lists", SC, BOMB.replace("seeds:", "receptive_field_specs:"), [], None),
    ("recursive alias", SC, "sweep: &s [*s]\n", [], None),
    ("int key", SC, "1: 2\nlayerz: 3\n", [], None),
    ("null key", SC, "~: 2\nlayerz: 3\n", [], None),
    ("bool key", SC, "samples: 100\ntrue: 1\nlayerz: 3\n", [], None),
    ("list key", SC, "? [a, b]\n: 1\n", [], None),
    ("int key in a sweep entry", SC, "sweep: [{2: 3, layerz: 1}]\n", [], None),
    ("lr nan", SC, "lr: .nan\n", [], None),
    ("lr inf", SC, "lr: .inf\n", [], None),
    ("grad_clip -inf", SC, "grad_clip: -.inf\n", [], None),
    ("weight_decay nan", SC, "weight_decay: .nan\n", [], None),
    ("looped lr nan", LOOPED, "lr: .nan\n", [], None),
    ("looped converge_tol inf", LOOPED, "converge_tol: .inf\n", [], None),
    ("looped max_minutes nan", LOOPED, "max_minutes: .nan\n", [], None),
    ("task setting nan", "latent_thinker", "adaptive_threshold: .nan\n", [], None),
    ("task setting inf", "loss_surface", "span: .inf\n", [], None),
    ("LM min_lr_ratio nan", LMS, "min_lr_ratio: .nan\n", [], None),
    ("LM setting nan", LMS, "models: [{arch: gpt, d_model: .nan, n_layer: 2, n_head: 4}]\n", [], None),
    ("LM lr inf", LMS, "lr: .inf\n", [], None),
    ("empty prompt", LMS, "prompt: ''\n", [], None),
    ("steps 10**30", LOOPED, f"steps: {10**30}\n", [], None),
    ("steps 10**12", LOOPED, f"steps: {10**12}\n", [], None),
    ("LM steps 10**30", LMS, f"steps: {10**30}\n", [], None),
    ("warmup_steps 10**30", LOOPED, f"warmup_steps: {10**30}\n", [], None),
    ("seed 10**30", SC, f"seeds: [{10**30}]\n", [], None),
    ("steps_for 10**20", LOOPED, f"steps_for: {{tf: {10**20}}}\n", [], None),
    ("1,500-file base chain", SC, lambda tmp: _chain(tmp, 1500), [], None),
    ("corrupt notebook JSON", "broken", SMOKE, [], _corrupt_notebook),
    ("--out name too long", SC, SMOKE, ["--out", "{tmp}/" + "x" * 300], None),
    ("--out path too long", SC, SMOKE, ["--out", "{tmp}/" + "d/" * 2100], None),
    ("--profile with a slash", SC, SMOKE, ["--profile", "../cpu"], None),
    ("TMPDIR missing", SC, SMOKE, [], _no_tmpdir),
    ("TMPDIR full", SC, SMOKE, [], _full_tmpdir),
]


def _procs_below(pid: int) -> set[int]:
    """Live (not zombie) processes below `pid`."""
    return {p for p in procs.descendants(pid) if procs.alive(p)}


def _checkpoints() -> set:
    return {str(p) for p in CHECKPOINTS.rglob("*")} if CHECKPOINTS.exists() else set()


def _temporary() -> set:
    return set(Path(tempfile.gettempdir()).glob("seqlab-*"))


@pytest.fixture
def no_kernel(monkeypatch):
    def execute(*a, **k):
        raise AssertionError("a kernel would start")

    monkeypatch.setattr(run, "execute", execute)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_runner_answers_in_one_line_and_leaves_nothing(case, tmp_path, monkeypatch, capsys, no_kernel):
    _, notebook, text, extra, setup = case
    if callable(text):
        cfg = text(tmp_path)
    else:
        cfg = tmp_path / "config.yml"
        if text is not None:
            cfg.write_text(text)
    inputs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = tmp_path / "out"
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    argv = [notebook, "--config", str(cfg), *(extra if "--out" in extra else ["--out", str(out), *extra])]
    before = (_checkpoints(), _temporary(), _procs_below(os.getpid()))
    if setup is not None:
        setup(tmp_path, monkeypatch)
        inputs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    try:
        code = run.main(argv)
    except SystemExit as e:
        code = e.code
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    assert len(err) < 600, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == inputs  # --out never created
    assert (_checkpoints(), _temporary()) == before[:2]
    assert _procs_below(os.getpid()) <= before[2]


@pytest.mark.parametrize("name", ["./selective_copy", "../notebooks/selective_copy", str(NOTEBOOKS / SC)])
def test_notebook_must_be_a_bare_name_and_the_error_lists_them(name, tmp_path, capsys, no_kernel):
    (tmp_path / "c.yml").write_text(SMOKE)
    assert run.main([name, "--config", str(tmp_path / "c.yml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"no notebook {name!r}" in err and "'selective_copy'" in err and "'small_lms'" in err


@pytest.mark.parametrize("key, text", [("steps", f"steps: {10**30}\n"), ("steps", f"steps: {10**12}\n"),
                                       ("lr", "lr: .nan\n"), ("prompt", "prompt: ''\n")])
def test_the_error_names_the_key_and_the_file(key, text, tmp_path, capsys, no_kernel):
    (tmp_path / "c.yml").write_text(text)
    nb = LMS if key == "prompt" else LOOPED
    assert run.main([nb, "--config", str(tmp_path / "c.yml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{key} = " in err or f"{key} is empty" in err
    assert str(tmp_path / "c.yml") in err
    if key == "steps":
        assert "must be in [" in err  # the allowed range, named


def test_alias_bomb_is_refused_quickly(tmp_path, capsys, no_kernel):
    import time

    (tmp_path / "c.yml").write_text(BOMB)
    assert len(BOMB) < 450, len(BOMB)
    t0 = time.perf_counter()
    assert run.main([SC, "--config", str(tmp_path / "c.yml"), "--out", str(tmp_path / "out")]) == 2
    assert time.perf_counter() - t0 < 10
    assert "alias" in capsys.readouterr().err


def test_unreachable_ray_address_fails_in_bounded_time_with_one_line(tmp_path):
    """A sweep on a Ray cluster that is not there: one line naming the address within seconds (Ray
    itself would retry for minutes)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = f"""
import sys
from lib.models.thinker import Thinker, ThinkerConfig
from lib.sweep import train_missing
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig
from lib.train import TrainConfig
cfg = AlgorithmicConfig(task="copy", V=6, length=5, val_size=32)
model = ThinkerConfig(vocab=cfg.vocab, out_len=cfg.out_len, d=8, n_head=2, n_latent=2, n_step=2, max_len=20)
runs = [(model, Algorithmic(cfg), TrainConfig(steps=2, batch_size=4, seed=0))]
try:
    train_missing(Thinker, runs, "fuzz_ray", 1, backend="ray", ray_address="127.0.0.1:{port}")
except ConnectionError as e:
    print(f"error: {{e}}", file=sys.stderr)
    sys.exit(2)
"""
    env = {**os.environ, "SEQLAB_CHECKPOINTS": str(tmp_path / "ckpt")}
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port}" in r.stderr
    assert not (tmp_path / "ckpt").exists() or not list((tmp_path / "ckpt").rglob("*.pt"))


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30
