"""Run ids pinned: the checkpoint file names every study family computes for its committed profiles.

A checkpoint's name holds the run name and a hash of the model config, the task's spec and the
training identity, so a refactor that changed any hashed field (a renamed body, a field added to a
config, a task spec that grew) would silently orphan every trained run. The values below were
computed with the code that trained the committed reports; each must stay as it is.
"""
import dataclasses
import hashlib
import types

import pytest
import torch

from lib.config import read_config
from lib.notebooks import profile_parameters, profile_settings
from lib.paths import CONFIGS
from lib.studies import family, grid, lm, looped, selective_copy, thinker
from lib.sweep import checkpoint_for
from lib.tasks.algorithmic import Algorithmic
from lib.train import TrainConfig


@pytest.fixture
def any_device(monkeypatch):
    """The gpu profiles ask for device 'cuda'; the device is not hashed, so on a CPU-only machine
    the profile is read as if a GPU were present."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def digest(names) -> str:
    return hashlib.sha1("\n".join(sorted(names)).encode()).hexdigest()[:12]


# (number of runs, digest of all their file names, a few of them spelled out)
LOOPED = {
    "cpu": (33, "00cc0c8adfe9", ["tf-L2-s0-5393eea096.pt", "looped-L1-b5-T10-s0-547a20f383.pt", "looped-L1-b5-T10-lr-s1-efa33a0249.pt",
                                 "looped-L1-b5-T10-folded-s2-6528730c6c.pt", "mamba-looped-L1-b5-T10-s0-cdac378612.pt",
                                 "ssd-looped-L1-b5-T10-s2-88d6c84704.pt"]),
    "gpu": (171, "6ca7d5f224d0", ["mamba-L1-s0-d6021180d5.pt", "mamba-L2-s2-90bf831f59.pt", "ssd-L1-s1-958ed22a3f.pt",
                                  "ssd-L2-s0-5fa5b0ba6f.pt"]),
}


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_looped_family_run_ids(profile, any_device):
    n, sha, some = LOOPED[profile]
    names = [checkpoint_for(looped.STUDY, *run).name for run in family.runs(profile)]
    assert not set(some) - set(names), f"missing {sorted(set(some) - set(names))}"
    assert (len(names), digest(names)) == (n, sha)


# The cpu profile's mqar and linear cells, every body plain then looped, at the first lr and seed (keyed
# since the grid sizes every body within 5 % of its target with a context of the task's length and trains
# warmup-stable-decay with per-task caps).
GRID = [
    "attention-e22-L2-s0-2bff56f2e1.pt", "attention-e29-L1-b2-T2-s0-af02fe6e8a.pt", "mamba-e25-L2-s0-db14565c1c.pt",
    "mamba-e34-L1-b2-T2-s0-a3aed87b78.pt", "ssd-e28-L2-s0-a834999ca6.pt", "ssd-e38-L1-b2-T2-s0-0152021ccc.pt",
    "conv-e40-L2-s0-cd5539e203.pt", "conv-e49-L1-b2-T2-s0-6aa8404ed6.pt", "mixer-e20-L2-s0-57228c4b36.pt",
    "mixer-e31-L1-b2-T2-s0-88933c81af.pt", "hybrid-e24-L2-s0-1380bbb025.pt", "hybrid-e24-L2-b2-T2-s0-a899272213.pt",
    "attention-e28-L2-s0-f07fa42acb.pt", "attention-e39-L1-b2-T2-s0-ef2794af07.pt", "mamba-e32-L2-s0-f9ac7e81de.pt",
    "mamba-e48-L1-b2-T2-s0-07c9b7e502.pt", "ssd-e36-L2-s0-c6f0c857e0.pt", "ssd-e52-L1-b2-T2-s0-21fccccad1.pt",
    "conv-e57-L2-s0-36992a0269.pt", "conv-e80-L1-b2-T2-s0-09ee1ad360.pt", "mixer-e33-L2-s0-f913630f2c.pt",
    "mixer-e48-L1-b2-T2-s0-b746f4f19d.pt", "hybrid-e31-L2-s0-32724ef747.pt", "hybrid-e31-L2-b2-T2-s0-f155aceeb3.pt",
]


def test_grid_run_ids():
    raw, _ = read_config(CONFIGS / "block_task_grid" / "cpu.yml")
    s = grid.GridSettings.load(raw)
    tasks = grid.tasks_of(s)
    names = []
    for key in [("mqar", "easy"), ("linear", "easy")]:
        _, task = tasks[key]
        names += [checkpoint_for(grid.STUDY, grid.model_config(s, body, lp, task), task,
                                 s.train_config(grid.Cell(body, lp, *key, s.lrs[0], s.seeds[0]))).name
                  for body in s.bodies for lp in s.looped]
    assert names == GRID


# Building the story corpus's tokenizer takes minutes, so the task is the real TextConfig (its spec)
# with the vocabulary size the trained tokenizer has at that profile.
LMS = {
    "smoke": (1525, ["mixer-d64-L2-h1-s0-c53ebbdbae.pt", "gpt-d64-L2-h4-s0-312b3278ab.pt", "ssd-d64-L3-N16-s0-bc32f29484.pt"]),
    "cpu": (1523, ["mixer-d192-L6-h1-s0-7b6c22d15f.pt", "gpt-d192-L5-h4-s0-a416d15daf.pt", "ssd-d192-L9-N16-s0-042623df6e.pt"]),
}


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_small_lm_run_ids(profile, monkeypatch):
    vocab, expected = LMS[profile]
    monkeypatch.setattr(lm, "LMTask", lambda cfg: types.SimpleNamespace(spec=(cfg,), vocab_size=vocab))
    p = profile_parameters("small_lms", profile)
    task = lm.make_task(p)
    names = [checkpoint_for(lm.STUDY, c, task, dataclasses.replace(t, seed=p["seeds"][0])).name for c, t in lm.runs(p, task)]
    assert names == expected


def test_latent_thinker_copy_run_ids():
    s = profile_settings("latent_thinker", "cpu")
    model, cfg = s.copy_model(s.copy_length), s.train_config("copy")
    names = [checkpoint_for(thinker.STUDY, model, Algorithmic(s.copy_task(), lengths=thinker.curriculum(s, cur, s.copy_length)), cfg).name
             for cur in s.curricula]
    assert names == ["thinker-d32-m4-s8-s0-01dd7824d2.pt", "thinker-d32-m4-s8-s0-5394d202fe.pt", "thinker-d32-m4-s8-s0-45155d5734.pt"]


SELECTIVE_COPY = {
    "cpu": ["l6-ks9-dil1-ch64-s0-8c205d9053.pt", "l12-ks9-dil1-ch64-s0-f90f0591ea.pt", "l6-ks9-dil1-2-3-4-5-1-ch64-s0-591e38ece7.pt",
            "l6-ks9-dil2-3-4-5-1-1-ch64-s0-518a56c686.pt"],
    "gpu": ["l6-ks9-dil1-ch64-s0-8c205d9053.pt", "l8-ks9-dil1-ch64-s0-3ef8425805.pt", "l6-ks17-dil1-ch64-s0-b4d18b69e0.pt",
            "l6-ks9-dil2-ch64-s0-2108bc3c0e.pt", "l6-ks9-dil3-5-7-9-11-1-ch64-s0-69911ba4f6.pt"],
}


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_selective_copy_run_ids(profile, any_device):
    s = profile_settings("selective_copy", profile)
    task, configs = selective_copy.make_task(s), s.model_configs()
    names = [checkpoint_for(selective_copy.STUDY, c, task, s.train_config()).name for c in configs]
    assert not set(SELECTIVE_COPY[profile]) - set(names), f"missing {sorted(set(SELECTIVE_COPY[profile]) - set(names))}"
    assert len(names) == {"cpu": 4, "gpu": 23}[profile]
