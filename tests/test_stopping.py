"""Stopping rules (convergence, wall-clock budget), run identity and provenance (issues 13, 14)."""
import shutil
import subprocess
import time
import uuid

import pytest
import torch
import torch.nn as nn

from lib import provenance
from lib.config import Config
from lib.curriculum import AdaptiveLength
from lib.paths import CHECKPOINTS
from lib.sweep import checkpoint_for, train_sweep
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig
from lib.train import TrainConfig, converged, load_checkpoint, train


def test_convergence_rule_stops_on_a_plateau_not_on_a_steady_decline():
    plateau = [1.0, 0.5, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    decline = [1.0 * 0.9**i for i in range(30)]  # -10 % per evaluation, forever
    assert converged(plateau, window=5, tol=0.01)
    assert not any(converged(decline[:n], window=5, tol=0.01) for n in range(1, 31))
    assert not converged(plateau[:5], window=5, tol=0.01)  # too few evaluations to judge
    assert converged([0.1, 0.5, 0.95, 0.95, 0.95, 0.95], window=3, tol=0.01, mode="max")  # accuracy plateau
    assert not converged([0.1, 0.5, 0.9, 0.95, 0.97, 0.99], window=3, tol=0.01, mode="max")  # still climbing


class Scripted:
    """A task whose validation metric follows a script (one value per evaluation)."""

    spec = ("scripted",)

    def __init__(self, values, sleep=0.0):
        self.values, self.sleep, self.calls = list(values), sleep, 0

    def train_batch(self, batch_size, gen, step=0):
        time.sleep(self.sleep)
        return (torch.randn(batch_size, 2, generator=gen),)

    def loss(self, model, batch):
        return model(batch[0]).pow(2).mean()

    def evaluate(self, model):
        v = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return {"val_loss": v}


def model():
    torch.manual_seed(0)
    return nn.Linear(2, 1)


def test_training_stops_when_the_metric_plateaus_and_records_why(tmp_path):
    cfg = TrainConfig(steps=200, eval_every=10, converge_metric="val_loss", converge_window=3, converge_tol=0.01)
    values = [9.0, 1.0, 0.5, 0.4, 0.4, 0.4, 0.4] + [0.4] * 30  # the value at step 0, then one per evaluation
    hist = train(model(), Scripted(values), cfg, checkpoint=tmp_path / "c.pt")
    assert list(hist["step"]) == [0, 10, 20, 30, 40, 50, 60]  # 0.4 at 30, no gain over 40, 50, 60
    assert (hist["stop_reason"] == "converged").all()
    again = train(model(), Scripted(values), cfg, checkpoint=tmp_path / "c.pt")  # finished: returned as is
    assert again[["step", "val_loss"]].equals(hist[["step", "val_loss"]]) and (again["stop_reason"] == "converged").all()
    declining = train(model(), Scripted([0.95**i for i in range(40)]), cfg)
    assert declining["step"].iloc[-1] == 200 and (declining["stop_reason"] == "max_steps").all()


def test_convergence_waits_for_min_steps():
    cfg = TrainConfig(steps=100, eval_every=10, converge_metric="val_loss", converge_window=2, min_steps=60)
    hist = train(model(), Scripted([1.0] * 4 + [0.5] + [0.5] * 20), cfg)  # an early plateau, then progress
    assert hist["step"].iloc[-1] >= 60 and hist["stop_reason"].iloc[0] == "converged"


def test_unknown_convergence_metric_is_named():
    with pytest.raises(ValueError, match=r"converge_metric 'val_acc' is not a metric of this task; it reports \['val_loss'\]"):
        train(model(), Scripted([1.0]), TrainConfig(steps=10, eval_every=5, converge_metric="val_acc"))


def test_budget_stops_within_one_evaluation_interval(tmp_path):
    budget_s = 0.6
    cfg = TrainConfig(steps=10_000, eval_every=1_000, max_minutes=budget_s / 60)
    hist = train(model(), Scripted([1.0], sleep=0.02), cfg, checkpoint=tmp_path / "b.pt")
    assert hist["stop_reason"].iloc[-1] == "budget"
    assert hist["step"].iloc[-1] < cfg.eval_every  # it did not wait for the next evaluation
    minutes = hist["train_minutes"].iloc[-1]
    assert budget_s / 60 <= minutes < (budget_s + 0.5) / 60
    saved = load_checkpoint(tmp_path / "b.pt")
    assert saved["stop_reason"] == "budget" and saved["step"] == hist["step"].iloc[-1]


def test_resume_keeps_the_convergence_rule(tmp_path):
    """A run cut after its first evaluations stops at the same step as an uninterrupted one."""
    cfg = TrainConfig(steps=200, eval_every=10, converge_metric="val_loss", converge_window=3)
    values = [9.0, 1.0, 0.5, 0.4] + [0.4] * 30
    straight = train(model(), Scripted(values), cfg)
    short = TrainConfig(**{**cfg.__dict__, "steps": 20})  # the same run, stopped by the cap at step 20...
    ckpt = tmp_path / "r.pt"
    task = Scripted(values)
    train(model(), task, short, checkpoint=ckpt)
    saved = load_checkpoint(ckpt)
    saved["stop_reason"] = None  # ...as if cut there; then resumed with the full settings
    torch.save(saved, ckpt)
    resumed = train(model(), task, cfg, checkpoint=ckpt)
    assert list(resumed["step"]) == list(straight["step"]) and resumed["stop_reason"].iloc[0] == "converged"


@pytest.fixture
def study():
    name = f"test-identity-{uuid.uuid4().hex[:8]}"
    yield name
    shutil.rmtree(CHECKPOINTS / name, ignore_errors=True)


COPY = AlgorithmicConfig(task="copy", V=6, length=5, val_size=64)


def test_device_amp_and_compile_do_not_change_a_runs_identity(study):
    from lib.models.thinker import Thinker, ThinkerConfig

    mcfg = ThinkerConfig(vocab=COPY.vocab, out_len=COPY.out_len, d=16, n_head=2, n_latent=2, n_step=2, max_len=20)
    task = Algorithmic(COPY)
    base = {"steps": 20, "batch_size": 16, "eval_every": 10, "device": "cpu"}
    path = checkpoint_for(study, mcfg, task, TrainConfig.load(base))
    for change in ({"compile": True}, {"amp": False}, {"device": "auto"}):
        assert checkpoint_for(study, mcfg, task, TrainConfig.load({**base, **change})) == path
    assert checkpoint_for(study, mcfg, task, TrainConfig.load({**base, "lr": 1e-3})) != path
    first, _ = train_sweep(Thinker, [mcfg], task, base, seeds=[0], study=study)
    stamp = path.stat().st_mtime_ns
    again, _ = train_sweep(Thinker, [mcfg], task, {**base, "compile": True}, seeds=[0], study=study)
    assert path.stat().st_mtime_ns == stamp  # the checkpoint was reused, not retrained
    assert again["val_token_acc"].equals(first["val_token_acc"])
    assert again["git_revision"].iloc[-1] == load_checkpoint(path)["git_revision"]


def test_curriculum_moves_in_the_hook_not_in_the_loss():
    from lib.models.thinker import Thinker, ThinkerConfig

    task = Algorithmic(COPY, lengths=AdaptiveLength(COPY.length, start=1, inc=0.5, threshold=0.0))
    m = Thinker(ThinkerConfig(vocab=COPY.vocab, out_len=COPY.out_len, d=16, n_head=2, n_latent=2, n_step=2, max_len=20))
    batch = task.train_batch(8, torch.Generator().manual_seed(0))
    loss, stats = task.loss(m, batch)
    assert task.lengths.target == 1.0  # computing the loss changes nothing
    task.after_step(stats)
    assert task.lengths.target == 1.5


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def test_a_changed_model_file_is_flagged(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@t")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "lib" / "models").mkdir(parents=True)
    (tmp_path / "lib" / "models" / "net.py").write_text("W = 1\n")
    (tmp_path / "notes.md").write_text("a\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "one")
    rev = git(tmp_path, "rev-parse", "--short", "HEAD")
    assert provenance.stale_files(rev, root=tmp_path) == []
    (tmp_path / "notes.md").write_text("b\n")  # not code a run depends on
    assert provenance.stale_files(rev, root=tmp_path) == []
    (tmp_path / "lib" / "models" / "net.py").write_text("W = 2\n")
    assert provenance.stale_files(rev, root=tmp_path) == ["lib/models/net.py"]
    git(tmp_path, "commit", "-qam", "two")  # committed since the run: still flagged
    assert provenance.stale_files(rev, root=tmp_path) == ["lib/models/net.py"]
    assert provenance.stale_files("unknown", root=tmp_path) == ["?"]
    assert provenance.stale_files("0000000", root=tmp_path) == ["?"]


def test_run_records_summarise_into_header_facts(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_OUT", str(tmp_path))
    cfg = TrainConfig(steps=20, eval_every=10)
    train(model(), Scripted([1.0]), cfg, checkpoint=tmp_path / "a.pt", desc="a")  # trained now
    train(model(), Scripted([1.0]), cfg, checkpoint=tmp_path / "a.pt", desc="a")  # then loaded: still one run
    train(model(), Scripted([1.0]), cfg, checkpoint=tmp_path / "b.pt", desc="b")
    facts = provenance.summary(provenance.read_records(tmp_path))
    assert facts["runs"] == 2 and facts["trained_now"] == 2 and facts["loaded"] == 0
    assert facts["stop_reasons"] == {"max_steps": 2} and facts["precision"] == {"fp32": 2}
    monkeypatch.setenv("SEQLAB_OUT", str(tmp_path / "second"))
    (tmp_path / "second").mkdir()
    train(model(), Scripted([1.0]), cfg, checkpoint=tmp_path / "a.pt", desc="a")
    again = provenance.summary(provenance.read_records(tmp_path / "second"))
    assert again["trained_now"] == 0 and again["loaded"] == 1 and again["train_minutes"] > 0


def test_a_run_is_stale_only_for_code_it_depends_on(tmp_path):
    deps = provenance.dependencies("lib.models.looped", "lib.tasks.regression")
    assert {"lib/models/looped.py", "lib/models/gpt.py", "lib/tasks/regression.py", "lib/train.py"} <= set(deps)
    assert not any(f.startswith("lib/data") or f.endswith("algorithmic.py") for f in deps)
    assert provenance.stale_for(["unknown"], deps) == ["?"]  # an unknown revision is never silently fresh
