"""The runner end to end: bad input fails in one line and writes nothing; a good run writes a full report."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lib.paths import ROOT
from lib.notebooks import parameters_of, validate

SMOKE = ROOT / "configs/selective_copy/smoke.yml"


def runner(*args, out: Path):
    return subprocess.run([sys.executable, "-m", "lib.run", *args, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args, yaml, message",
    [
        (["no_such_study", "--config", str(SMOKE)], None, "error: no notebook 'no_such_study'; available: ['block_task_grid', 'latent_thinker'"),
        (["selective_copy", "--config", "configs/selective_copy/nope.yml"], None, "error: config file not found: configs/selective_copy/nope.yml"),
        (["selective_copy", "--config", "{cfg}"], "samples: 100\nlayerz: 3\n", "unknown key(s) ['layerz']"),
        (["selective_copy", "--config", "{cfg}"], "samples: many\n", "samples = 'many' is str; expected int"),
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
    assert "error: notebook selective_copy failed in cell 7 " in r.stderr  # the receptive-field cell, counted from 1
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


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupting_the_runner_is_one_line_and_leaves_no_process(tmp_path, sig):
    """Ctrl-C or a batch scheduler's SIGTERM mid-training: one line naming the run, exit 130, the
    kernel and its workers gone, no report and no temporary folder left."""
    import os
    import signal
    import tempfile
    import time

    from lib.run import _descendants

    (tmp_path / "long.yml").write_text(SMOKE.read_text().replace("samples: 1280", "samples: 64000000"))
    before = set(Path(tempfile.gettempdir()).glob("seqlab-selective_copy-*"))
    proc = subprocess.Popen([sys.executable, "-m", "lib.run", "selective_copy", "--config", str(tmp_path / "long.yml"),
                             "--out", str(tmp_path / "out")], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    below = set()
    for _ in range(240):  # until a kernel below the runner holds a run lock
        time.sleep(0.25)
        below |= _descendants(proc.pid)
        if any(int(p.read_text() or 0) in below for p in (ROOT / "checkpoints" / "selective_copy").glob("*.lock")):
            break
    os.kill(proc.pid, getattr(signal, sig))
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith(("interrupted while training selective_copy/", "terminated while training selective_copy/")), last
    assert "Traceback" not in err
    def alive():
        try:
            return [p for p in below if Path(f"/proc/{p}").exists() and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        except OSError:  # one vanished between the two reads
            return alive()

    for _ in range(50):  # multiprocessing's resource tracker notices its parent's exit a moment later
        if not alive():
            break
        time.sleep(0.1)
    assert not alive(), f"processes left after {sig}: {alive()}"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.md"))
    assert set(Path(tempfile.gettempdir()).glob("seqlab-selective_copy-*")) == before


def _finish(args):
    """One runner finishing: a report, its figures and its table moved into place (lib.run.install)."""
    import tempfile

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
    left in place all come from the same run."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(8) as pool:
        done = pool.map(_finish, [(tmp_path, f"run{i}") for i in range(40)])
    assert len(done) == 40
    tag = (tmp_path / "reports" / "study.md").read_text().split()[1]
    assert (tmp_path / "images" / "study" / "fig.png").read_text() == tag
    assert (tmp_path / "reports" / "study.csv").read_text().split()[1] == tag
    assert not [p for p in tmp_path.rglob("*") if ".new-" in p.name or ".old-" in p.name or p.suffix == ".tmp"]
