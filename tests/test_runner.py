"""The runner end to end: bad input fails in one line and writes nothing; a good run writes a full report."""
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from lib import procs, run
from lib.config import ConfigError
from lib.notebooks import parameters_of, validate
from lib.paths import CHECKPOINTS, ROOT
from lib.sweep import run_lock

SMOKE = ROOT / "configs/selective_copy/smoke.yml"


def runner(*args, out: Path):
    return subprocess.run([sys.executable, "-m", "lib.run", *args, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args, yaml, message",
    [
        (["no_such_study", "--config", str(SMOKE)], None, "error: no notebook 'no_such_study'; available: ['block_task_grid', 'latent_thinker'"),
        (["selective_copy", "--config", "configs/selective_copy/nope.yml"], None, "error: config file not found: configs/selective_copy/nope.yml"),
        (["selective_copy", "--config", "{cfg}"], "samples: 100\nlayerz: 3\n", "unknown key(s) ['layerz']"),
        (["selective_copy", "--config", "{cfg}"], "samples: many\n", "samples = 'many' (str); expected int"),
    ],
)
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, args, yaml, message):
    if yaml is not None:
        (tmp_path / "bad.yml").write_text(yaml)
        args = [a.replace("{cfg}", str(tmp_path / "bad.yml")) for a in args]
    out = tmp_path / "out"
    r = runner(*args, out=out)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr
    assert not out.exists()


def test_failing_notebook_leaves_no_partial_report(tmp_path):
    raw = SMOKE.read_text() + "receptive_field_specs: [[6, 3, 0, 50, false]]\n"  # dilation 0: passes the checks, fails in a cell
    (tmp_path / "broken.yml").write_text(raw)
    out = tmp_path / "out"
    r = runner("selective_copy", "--config", str(tmp_path / "broken.yml"), out=out)
    assert r.returncode == 1
    assert "error: notebook selective_copy failed in cell 8 " in r.stderr  # the receptive-field cell, counted from 1 (after the hosted-install cell)
    assert not (out / "reports").exists() and not (out / "images").exists()


def test_smoke_profile_writes_report_figures_and_table(tmp_path):
    r = runner("selective_copy", "--config", str(SMOKE), out=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    md = (tmp_path / "reports/selective_copy.md").read_text()
    for field in ("| profile | `smoke`", "| device | CPU", "| torch |", "| git revision |", "| date |", "| wall time |", "| command |"):
        assert field in md
    figures = {p.name for p in (tmp_path / "images/selective_copy").glob("*.png")}
    assert {"error_curves.png", "val_loss_curves.png", "validation_best.png", "rf-l6-ks9-dil1-s50.png"} <= figures
    for name in figures:
        assert f"](../images/selective_copy/{name})" in md
    df = pd.read_csv(tmp_path / "reports/selective_copy.csv")
    assert {"run", "layers", "kernel_size", "dilation", "params", "seed", "step", "samples", "val_loss", "val_error_pct",
            "samples_per_s", "train_minutes", "device"} <= set(df.columns)
    assert sorted(df["run"].unique()) == ["l2-ks3-dil1-2-ch16", "l2-ks3-dil1-ch16"]
    assert "## What we found" in md and "Traceback" not in md


def _with_env(entry: str) -> list[int]:
    """Live processes whose environment holds `entry` ('NAME=value')."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry.encode() in environ.read_bytes().split(b"\0") and procs.alive(int(environ.parent.name)):
                found.append(int(environ.parent.name))
        except (OSError, ValueError):
            continue
    return found


def test_a_profile_trains_its_runs_as_ray_tasks_through_the_runner(tmp_path):
    """`backend: ray` in a notebook's config: its kernel trains the missing runs as Ray tasks on a
    local Ray, into the checkpoint folder; the report is written as with processes, and nothing of
    Ray outlives the runner."""
    (tmp_path / "ray.yml").write_text(SMOKE.read_text() + "backend: ray\nworkers: 2\n")
    ckpt = tmp_path / "ckpt"
    env = {**os.environ, "SEQLAB_CHECKPOINTS": str(ckpt), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "lib.run", "selective_copy", "--config", str(tmp_path / "ray.yml"), "--out",
                        str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if "The current node timed out during startup" in r.stderr:  # Ray's own 30 s limit, on a machine loaded by others
        pytest.skip("Ray could not start a local node within its 30 s on this machine")
    assert r.returncode == 0, r.stderr[-2000:]
    md = (tmp_path / "out/reports/selective_copy.md").read_text()
    assert "trained 2 runs as Ray tasks of " in md and "| profile | `none`" in md
    assert len(list((ckpt / "selective_copy").glob("*.pt"))) == 2
    for _ in range(120):  # Ray's processes stop with the kernel that started them
        if not _with_env(f"SEQLAB_CHECKPOINTS={ckpt}"):
            break
        time.sleep(0.5)
    assert not _with_env(f"SEQLAB_CHECKPOINTS={ckpt}")


def test_every_config_matches_its_notebook_parameters():
    from lib.config import read_config

    params = parameters_of(ROOT / "notebooks/selective_copy.ipynb")
    assert {"samples", "sweep", "seeds", "lr", "val_size", "device"} <= set(params)
    configs = sorted(c for c in (ROOT / "configs").glob("*/*.yml") if c.parent.name != "looped")  # looped/: bases only
    assert len(configs) >= 15
    for cfg in configs:
        nb = ROOT / "notebooks" / f"{cfg.parent.name}.ipynb"
        assert nb.exists(), f"{cfg} has no notebook"
        params = read_config(cfg)[0]
        validate({**params, **({"device": "cpu"} if params.get("device") == "cuda" else {})}, nb, where=str(cfg))


def _below(pid: int) -> set[int]:
    """PIDs of every process below `pid`."""
    return procs.descendants(pid)


def _alive(pids) -> list[int]:
    def state(p):
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return "X"

    return [p for p in pids if state(p) not in ("X", "Z")]


def _lock_pid(lock: Path) -> int:
    try:
        return int(lock.read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0


def _runner_training(tmp_path):
    """A runner on a long smoke config, once a process below it holds a run lock: (process, the
    processes below it, the locks they hold)."""
    (tmp_path / "long.yml").write_text(SMOKE.read_text().replace("samples: 1280", "samples: 64000000"))
    proc = subprocess.Popen([sys.executable, "-m", "lib.run", "selective_copy", "--config", str(tmp_path / "long.yml"),
                             "--out", str(tmp_path / "out")], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    below, locks = set(), []
    for _ in range(1200):  # until a kernel below the runner holds a run lock (up to 5 min on a loaded machine)
        time.sleep(0.25)
        below |= _below(proc.pid)
        locks = [p for p in (CHECKPOINTS / "selective_copy").glob("*.lock") if _lock_pid(p) in below]
        if locks:
            break
    if not locks:
        _kill(below | {proc.pid})
        pytest.fail("the runner never started training")
    return proc, below, locks


def _kill(pids) -> list[int]:
    """SIGKILL whatever of `pids` is still alive (so a failing test leaves nothing behind); returns them."""
    left = _alive(pids)
    for p in left:
        os.kill(p, signal.SIGKILL)
    return left


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_interrupting_the_runner_is_one_line_and_leaves_no_process(tmp_path, sig):
    """Ctrl-C, a batch scheduler's SIGTERM or a closed terminal's SIGHUP mid-training: one line
    naming the run, exit 130, the kernel and its workers gone, no report and no temporary folder left."""
    before = set(Path(tempfile.gettempdir()).glob("seqlab-selective_copy-*"))
    proc, below, _ = _runner_training(tmp_path)
    os.kill(proc.pid, getattr(signal, sig))
    try:
        err = proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:  # a process below holds stderr open: the runner died, its children did not
        pytest.fail(f"the runner did not finish after {sig}; left: {_kill(below | {proc.pid})}")
    if proc.returncode != 130:
        _kill(below)
    assert proc.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(("interrupted while training selective_copy/", "terminated while training selective_copy/")), last
    assert "Traceback" not in err
    for _ in range(50):  # multiprocessing's resource tracker notices its parent's exit a moment later
        if not _alive(below):
            break
        time.sleep(0.1)
    left = _kill(below)
    assert not left, f"processes left after {sig}: {left}"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.md"))
    assert set(Path(tempfile.gettempdir()).glob("seqlab-selective_copy-*")) == before


def test_killing_the_runner_leaves_no_process_and_frees_the_run_lock(tmp_path):
    """SIGKILL gives the runner no chance to clean up: the papermill child dies with it, the kernel
    follows its parent, the workers theirs, within seconds; the run lock is then stale (its
    holder is gone), so the next run does not wait."""
    proc, below, locks = _runner_training(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)  # not communicate: an orphan holding stderr open would keep it waiting
    for _ in range(50):
        if not _alive(below):
            break
        time.sleep(0.1)
    left = _kill(below)
    assert not left, f"processes left after SIGKILL: {left}"
    assert not _alive([_lock_pid(lock) for lock in locks if lock.exists()])


def _finish(args):
    """One runner finishing: a report, its figures and its table moved into place (lib.run.install)."""
    from lib.run import install

    out, tag = args
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        (tmp / "images" / "fig.png").write_text(tag)
        (tmp / "results.csv").write_text(f"run\n{tag}\n")
        install(tmp, "study", f"report {tag}\n", out)
    return tag


def test_concurrent_finishes_never_crash_or_mix_files(tmp_path):
    """40 runners finishing at once into one folder: none fails, and the report, figures and table
    left in place all come from the same run; no lock file is left in the folder."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(8) as pool:
        done = pool.map(_finish, [(tmp_path, f"run{i}") for i in range(40)])
    assert len(done) == 40
    tag = (tmp_path / "reports" / "study.md").read_text().split()[1]
    assert (tmp_path / "images" / "study" / "fig.png").read_text() == tag
    assert (tmp_path / "reports" / "study.csv").read_text().split()[1] == tag
    assert not [p for p in tmp_path.rglob("*") if ".new-" in p.name or ".old-" in p.name or p.suffix == ".tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "reports"]  # no .seqlab.lock


def test_a_full_disk_while_installing_leaves_no_partial_folder_and_is_one_line(tmp_path, monkeypatch):
    """The temporary folder is on another file system, so figures are copied; the disk fills up on
    the second figure. Nothing is replaced, nothing staged is left, and the error is one line."""
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    (tmp / "images").mkdir(parents=True)
    for i in range(3):
        (tmp / "images" / f"fig{i}.png").write_text(f"new {i}")
    (tmp / "results.csv").write_text("run\nnew\n")
    (out / "reports").mkdir(parents=True)
    (out / "images" / "study").mkdir(parents=True)
    (out / "reports" / "study.md").write_text("old report")
    (out / "images" / "study" / "fig0.png").write_text("old")
    real_copy, copied = shutil.copyfile, []

    def cross_device(*a, **k):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    def copy_until_full(src, dst, **k):
        if copied:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        copied.append(src)
        return real_copy(src, dst, **k)

    monkeypatch.setattr(os, "rename", cross_device)
    monkeypatch.setattr(shutil, "copyfile", copy_until_full)
    with pytest.raises(RuntimeError) as e:
        run.install(tmp, "study", "new report", out)
    monkeypatch.undo()
    assert "\n" not in str(e.value) and "the disk is full" in str(e.value)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["images", "images/study", "images/study/fig0.png",
                                                                         "reports", "reports/study.md"]
    assert (out / "reports" / "study.md").read_text() == "old report"


def test_the_profile_comes_from_the_config_location_not_its_file_name(tmp_path, monkeypatch, capsys):
    """A cpu.yml outside configs/<notebook>/ has no profile: it writes under scratch/ (or --out),
    never into the repository's reports/, unless --profile says so."""
    chosen = []

    def stop_at_out(out):
        chosen.append(Path(out).resolve())
        raise ConfigError("stopped before the kernel")

    def no_kernel(*a, **k):
        raise AssertionError("a kernel would start")

    monkeypatch.setattr(run, "check_out", stop_at_out)
    monkeypatch.setattr(run, "execute", no_kernel)
    (tmp_path / "cpu.yml").write_text(SMOKE.read_text())
    looped_cpu = ROOT / "configs/looped/cpu.yml"  # the family's base, not configs/looped_vs_standard/: no profile
    assert run.main(["selective_copy", "--config", str(tmp_path / "cpu.yml")]) == 2
    assert chosen[-1] != ROOT.resolve() and chosen[-1].is_relative_to((ROOT / "scratch").resolve())
    assert run.main(["selective_copy", "--config", str(tmp_path / "cpu.yml"), "--profile", "cpu"]) == 2
    assert chosen[-1] == ROOT.resolve()  # asked for explicitly
    assert run.main(["selective_copy", "--config", str(ROOT / "configs/selective_copy/cpu.yml")]) == 2
    assert chosen[-1] == ROOT.resolve()
    n = len(chosen)
    capsys.readouterr()
    for argv in (["--config", str(tmp_path / "cpu.yml"), "--out", str(ROOT)],
                 ["--config", str(ROOT / "configs/selective_copy/smoke.yml"), "--out", str(ROOT)],
                 ["--config", str(looped_cpu), "--out", str(ROOT)]):
        assert run.main(["looped_vs_standard" if looped_cpu in map(Path, argv) else "selective_copy", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "reports/ take only the cpu, gpu, paper profiles" in err, err
    assert len(chosen) == n  # refused before --out is touched


def test_a_lock_whose_pid_now_belongs_to_another_process_is_stale(tmp_path):
    """The holder died and its PID went to a process started later: the lock is reclaimed at once
    (by the start time recorded with the PID, or for a lock holding only a PID, by the lock's age)."""
    ckpt, lock = tmp_path / "run.pt", tmp_path / "run.pt.lock"
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = int(Path(f"/proc/{stranger.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        for text, age in ((f"{stranger.pid} {start - 1}", 0), (str(stranger.pid), 3600)):
            lock.write_text(text)
            os.utime(lock, (time.time() - age, time.time() - age))
            got = threading.Event()

            def take():
                with run_lock(ckpt, poll=0.05):
                    got.set()

            threading.Thread(target=take, daemon=True).start()
            assert got.wait(timeout=10), f"waited on a lock holding {text!r}, a process that is not its holder"
        lock.write_text(f"{stranger.pid} {start}")  # the same process: a live holder, waited for
        got = threading.Event()
        threading.Thread(target=take, daemon=True).start()
        assert not got.wait(timeout=1.0)
    finally:
        stranger.kill()
        stranger.wait()
    assert got.wait(timeout=10)  # its holder gone, the lock is taken


def test_waiting_for_a_lock_is_said_on_stderr(tmp_path, capsys):
    """The waiting line reaches the runner's terminal from inside a kernel: papermill forwards the
    kernel's stderr there, its stdout only into the executed notebook."""
    ckpt, lock = tmp_path / "run.pt", tmp_path / "run.pt.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.1)
        lock.write_text(str(holder.pid))
        threading.Timer(0.5, lambda: lock.unlink()).start()
        with run_lock(ckpt, poll=0.05):
            pass
    finally:
        holder.kill()
        holder.wait()
    captured = capsys.readouterr()
    assert f"process {holder.pid} is training this run; waiting for it to finish" in captured.err
    assert "waiting" not in captured.out
