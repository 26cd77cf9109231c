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
