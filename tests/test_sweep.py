import dataclasses
import shutil
import uuid

import pytest
import torch

from lib.curriculum import AdaptiveLength
from lib.models.thinker import Thinker, ThinkerConfig
from lib.paths import CHECKPOINTS
from lib.sweep import train_sweep
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig

COPY = AlgorithmicConfig(task="copy", V=6, length=5, val_size=64)
MODEL = ThinkerConfig(vocab=COPY.vocab, out_len=COPY.out_len, d=16, n_head=2, n_latent=2, n_step=2, max_len=20)
TRAIN = {"steps": 30, "batch_size": 32, "lr": 3e-3, "eval_every": 10, "device": "cpu"}


@pytest.fixture
def study():
    name = f"test-sweep-{uuid.uuid4().hex[:8]}"
    yield name
    shutil.rmtree(CHECKPOINTS / name, ignore_errors=True)


def test_each_run_starts_the_curriculum_afresh(study):
    """The adaptive target length is per run: seed 1 in a sweep trains exactly as seed 1 alone."""
    task = Algorithmic(COPY, lengths=AdaptiveLength(COPY.length, start=1, inc=0.5, threshold=0.0))
    both, _ = train_sweep(Thinker, [MODEL], task, TRAIN, seeds=[0, 1], study=study)
    assert task.lengths.target == 1.0  # the caller's task object is not advanced by the runs
    alone, _ = train_sweep(Thinker, [MODEL], task, TRAIN, seeds=[1], study=study + "-alone")
    shutil.rmtree(CHECKPOINTS / (study + "-alone"), ignore_errors=True)
    cols = ["step", "train_loss", "val_token_acc"]
    assert both[both.seed == 1][cols].reset_index(drop=True).equals(alone[cols])


def test_parallel_workers_train_the_same_runs(study):
    """workers=2 trains in spawned processes; the results equal a sequential sweep's."""
    models = [MODEL, dataclasses.replace(MODEL, d=8)]
    task = Algorithmic(COPY, lengths=AdaptiveLength(COPY.length, start=1, inc=0.5, threshold=0.0))
    par, par_models = train_sweep(Thinker, models, task, TRAIN, seeds=[0], study=study, workers=2)
    seq, _ = train_sweep(Thinker, models, task, TRAIN, seeds=[0], study=study + "-seq")
    shutil.rmtree(CHECKPOINTS / (study + "-seq"), ignore_errors=True)
    assert (CHECKPOINTS / study).exists() and len(list((CHECKPOINTS / study).glob("*.pt"))) == 2
    assert list(par["run"]) == list(seq["run"]) and list(par["step"]) == list(seq["step"])
    trained = lambda h: torch.tensor(h.loc[h.step > 0, ["train_loss", "val_token_acc"]].values)
    torch.testing.assert_close(trained(par), trained(seq), rtol=1e-4, atol=1e-5)
    # the returned models are the workers' trained weights (threads differ, so not bit-equal to `seq`)
    for (name, seed), model in par_models.items():
        (path,) = (CHECKPOINTS / study).glob(f"{name}-s{seed}-*.pt")
        saved = torch.load(path, weights_only=False)["model"]
        assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_workers_must_be_positive(study):
    with pytest.raises(ValueError, match="workers"):
        train_sweep(Thinker, [MODEL], Algorithmic(COPY), TRAIN, seeds=[0], study=study, workers=0)


def test_a_stale_lock_is_reclaimed_and_a_live_one_is_waited_for(tmp_path):
    import subprocess
    import sys
    import threading
    import time

    from lib.sweep import run_lock

    ckpt = tmp_path / "run.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "run.pt.lock").write_text(dead)  # its process has exited: stale
    with run_lock(ckpt, poll=0.05):
        assert (tmp_path / "run.pt.lock").read_text().split()[0] == str(__import__("os").getpid())  # PID, then its start time
    assert not (tmp_path / "run.pt.lock").exists()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "run.pt.lock").write_text(str(holder.pid))  # a live process trains this run
        threading.Timer(0.6, lambda: (tmp_path / "run.pt.lock").unlink()).start()  # ...and finishes
        t0 = time.monotonic()
        with run_lock(ckpt, poll=0.05):
            waited = time.monotonic() - t0
        assert waited >= 0.5
    finally:
        holder.kill()


SLOW_SWEEP = """
import sys, time
import torch
from lib.models.thinker import Thinker, ThinkerConfig
from lib.sweep import train_sweep
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig

class Slow(Algorithmic):
    def train_batch(self, *a, **k):
        time.sleep(0.05)
        return super().train_batch(*a, **k)

if __name__ == "__main__":  # spawned workers import this file again
    cfg = AlgorithmicConfig(task="copy", V=6, length=5, val_size=32)
    models = [ThinkerConfig(vocab=cfg.vocab, out_len=cfg.out_len, d=d, n_head=2, n_latent=2, n_step=2, max_len=20) for d in (8, 16)]
    train_sweep(Thinker, models, Slow(cfg), {"steps": 100000, "batch_size": 8, "eval_every": 1000, "device": "cpu"},
                seeds=[0], study=sys.argv[1], workers=2)
"""


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_workers_die_with_the_process_that_started_them(study, tmp_path, sig):
    """The issue's reproduction: kill the parent of a workers=2 sweep; no spawned worker may survive it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "slow.py").write_text(SLOW_SWEEP)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "slow.py"), study], cwd=str(CHECKPOINTS.parent),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    for _ in range(100):  # wait until both workers run
        time.sleep(0.2)
        out = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
        children = [int(p) for p in out]
        if len(children) >= 2 and list((CHECKPOINTS / study).glob("*.lock")):
            break
    assert children, "the sweep started no workers"
    os.kill(parent.pid, getattr(signal, sig))
    parent.wait(timeout=30)
    deadline = time.monotonic() + 15
    alive = lambda pid: subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip() not in ("", "Z")
    while time.monotonic() < deadline and any(alive(c) for c in children):
        time.sleep(0.2)
    assert not any(alive(c) for c in children), f"orphaned workers after {sig}: {[c for c in children if alive(c)]}"


def test_a_ray_sweep_gives_the_sequential_histories(study):
    """train_sweep(backend="ray") on a local Ray with 2 CPUs: the 4 runs equal the sequential sweep's."""
    ray = pytest.importorskip("ray")
    models = [MODEL, dataclasses.replace(MODEL, d=8)]
    task = Algorithmic(COPY)
    try:
        par, par_models = train_sweep(Thinker, models, task, TRAIN, seeds=[0, 1], study=study, workers=2, backend="ray")
    finally:
        ray.shutdown()
    seq, _ = train_sweep(Thinker, models, task, TRAIN, seeds=[0, 1], study=study + "-seq")
    shutil.rmtree(CHECKPOINTS / (study + "-seq"), ignore_errors=True)
    assert len(list((CHECKPOINTS / study).glob("*.pt"))) == 4
    assert list(par["run"]) == list(seq["run"]) and list(par["step"]) == list(seq["step"])
    trained = lambda h: torch.tensor(h.loc[h.step > 0, ["train_loss", "val_token_acc"]].values)
    torch.testing.assert_close(trained(par), trained(seq), rtol=1e-4, atol=1e-5)


def test_stale_finished_runs_count_as_missing_only_under_retrain_stale(study, monkeypatch):
    """So `--retrain-stale` retrains them in the parallel workers, not one by one afterwards."""
    from lib import provenance
    from lib.sweep import _finished, checkpoint_for
    from lib.train import TrainConfig

    task = Algorithmic(COPY)
    train_sweep(Thinker, [MODEL], task, TRAIN, seeds=[0], study=study)
    path = checkpoint_for(study, MODEL, task, TrainConfig.load({**TRAIN, "seed": 0}))
    cfg = TrainConfig.load({**TRAIN, "seed": 0})
    saved = torch.load(path, weights_only=False)
    saved["revisions"] = ["unknown"]  # a revision this clone cannot check: stale by rule
    torch.save(saved, path)
    assert _finished(path, cfg)  # without the flag a finished run is loaded
    monkeypatch.setenv(provenance.RETRAIN_STALE_ENV, "1")
    assert not _finished(path, cfg)
    monkeypatch.setattr(provenance, "stale_for", lambda revisions, code, changed=None: [])
    assert _finished(path, cfg)  # fresh code: loaded even under the flag
