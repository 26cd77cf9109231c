"""Seeds (and lrs) trained as one batched model (lib.batched) equal separate lib.train.train runs."""
import dataclasses
import shutil
import uuid

import pandas as pd
import pytest
import torch

from lib import batched
from lib.batched import train_batched
from lib.models.bodies import BodyConfig
from lib.models.seq import SeqConfig, SeqModel
from lib.paths import CHECKPOINTS
from lib.sweep import checkpoint_for, train_sweep
from lib.tasks.recall import Recall, RecallConfig
from lib.train import TrainConfig, build, load_checkpoint, train

TASK = RecallConfig(kind="mqar", vocab=32, seq_len=16, pairs=2, val_size=32)
BASE = TrainConfig(steps=20, batch_size=8, lr=3e-3, warmup_steps=3, eval_every=5, device="cpu")
TIMING = ["samples_per_s", "train_minutes"]  # wall-clock columns: not comparable between the two paths


def model_config(kind: str, b: int = 1) -> SeqConfig:
    body = BodyConfig(kind=kind, d_model=16, n_layer=1 if b > 1 or kind != "hybrid" else 2, n_head=2, d_state=4, d_head=8, ctx=16)
    return SeqConfig(body=body, vocab=TASK.vocab, n_out=TASK.vocab, b=b, T=b)


def separate(mcfg, cfgs, tmp_path, tag="sep"):
    """Each member trained alone by lib.train.train: (histories, checkpoint paths)."""
    paths = [tmp_path / f"{tag}-{i}.pt" for i in range(len(cfgs))]
    hists = [train(build(SeqModel, mcfg, c.seed), Recall(TASK), c, checkpoint=p) for c, p in zip(cfgs, paths)]
    return hists, paths


def together(mcfg, cfgs, tmp_path, tag="bat"):
    paths = [tmp_path / f"{tag}-{i}.pt" for i in range(len(cfgs))]
    hists = train_batched([build(SeqModel, mcfg, c.seed) for c in cfgs], [Recall(TASK) for _ in cfgs], cfgs, checkpoints=paths)
    return hists, paths


def outputs(path):
    """The checkpoint's model on the validation inputs: (val_size, N, V) logits."""
    saved = load_checkpoint(path)
    model = SeqModel(SeqConfig(**saved["config"]["model"]))
    model.load_state_dict(saved["model"])
    with torch.no_grad():
        return model.eval()(Recall(TASK).val.x)


def assert_same_runs(hists_a, paths_a, hists_b, paths_b):
    """Same history rows (timing aside), outputs, weights, optimizer state and generator, up to float
    rounding. The weights' tolerance is looser: in a direction with no gradient (attention's key bias)
    AdamW turns rounding noise into steps of up to lr, which change no output."""
    for ha, hb, pa, pb in zip(hists_a, hists_b, paths_a, paths_b):
        assert list(ha.columns) == list(hb.columns)
        assert ha["step"].tolist() == hb["step"].tolist() and ha["stop_reason"].tolist() == hb["stop_reason"].tolist()
        numeric = [c for c in ha.columns if c not in TIMING and pd.api.types.is_numeric_dtype(ha[c]) and ha[c].dtype != bool]
        torch.testing.assert_close(torch.tensor(hb[numeric].values), torch.tensor(ha[numeric].values), rtol=1e-4, atol=1e-5,
                                   equal_nan=True)
        a, b = load_checkpoint(pa), load_checkpoint(pb)
        assert sorted(a) == sorted(b)  # the same checkpoint layout
        assert a["step"] == b["step"] and a["stop_reason"] == b["stop_reason"] and a["config"] == b["config"]
        torch.testing.assert_close(outputs(pb), outputs(pa), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b["model"], a["model"], rtol=1e-3, atol=1e-4)
        assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
        torch.testing.assert_close(b["optimizer"]["state"], a["optimizer"]["state"], rtol=1e-4, atol=1e-6)
        assert torch.equal(a["generator"], b["generator"])  # the member drew exactly its separate run's batches


@pytest.mark.parametrize("kind, b", [("attention", 1), ("conv", 1), ("ssd", 1), ("mamba", 1), ("attention", 2)])
def test_three_seeds_batched_equal_three_separate_runs(kind, b, tmp_path):
    """S = 3 seeds with gradient clipping: vmapped bodies (attention, conv, ssd, a looped attention with
    truncated backprop) and one that vmap cannot batch (mamba's fused scan: the loop over members)."""
    cfgs = [dataclasses.replace(BASE, seed=s, grad_clip=0.5) for s in range(3)]
    assert_same_runs(*separate(model_config(kind, b), cfgs, tmp_path), *together(model_config(kind, b), cfgs, tmp_path))


def test_members_with_their_own_lr_and_clipping(tmp_path):
    """An lr sweep as one batched model: each member its own lr schedule and clipping norm (or none)."""
    cfgs = [dataclasses.replace(BASE, seed=0, lr=lr, grad_clip=clip) for lr, clip in ((1e-3, None), (3e-3, 0.5), (1e-2, 0.1))]
    hists, paths = together(model_config("attention"), cfgs, tmp_path)
    assert hists[0]["lr"].iloc[1] < hists[1]["lr"].iloc[1] < hists[2]["lr"].iloc[1]
    assert_same_runs(*separate(model_config("attention"), cfgs, tmp_path), hists, paths)


def test_a_member_that_converges_stops_while_the_others_go_on(tmp_path):
    """Member 1's plateau rule fires at step 10 (a tolerance it always meets): under 'cosine' it stops
    there; under 'wsd' (member 2) a decay of 2 steps follows. Their checkpoints are final there and
    member 0 trains to the cap."""
    always = dict(converge_metric="val_acc", converge_mode="max", converge_window=1, converge_tol=1e9, min_steps=10)
    cfgs = [dataclasses.replace(BASE, seed=0), dataclasses.replace(BASE, seed=1, **always),
            dataclasses.replace(BASE, seed=2, schedule="wsd", **always)]
    hists, paths = together(model_config("conv"), cfgs, tmp_path)
    assert [h["step"].iloc[-1] for h in hists] == [20, 10, 12]
    assert [h["stop_reason"].iloc[-1] for h in hists] == ["max_steps", "converged", "converged"]
    assert [load_checkpoint(p)["step"] for p in paths] == [20, 10, 12]
    assert_same_runs(*separate(model_config("conv"), cfgs, tmp_path), hists, paths)


def test_an_interrupted_batched_run_resumes_in_train_and_batched(tmp_path, monkeypatch):
    """Checkpoints written by the batched path are train()'s: after an interruption at step 12 (the
    last checkpoint at step 10), seed 0 resumes alone in train() and seeds 1 and 2 batched; all end
    as the uninterrupted separate runs."""
    cfgs = [dataclasses.replace(BASE, seed=s, grad_clip=0.5) for s in range(3)]
    mcfg = model_config("attention")
    draw = Recall.train_batch

    def interrupted(self, batch_size, gen, step=0):
        if step == 12:
            raise KeyboardInterrupt
        return draw(self, batch_size, gen, step)

    monkeypatch.setattr(Recall, "train_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        together(mcfg, cfgs, tmp_path)
    monkeypatch.setattr(Recall, "train_batch", draw)
    paths = [tmp_path / f"bat-{i}.pt" for i in range(3)]
    assert [load_checkpoint(p)["step"] for p in paths] == [10, 10, 10]
    first = train(build(SeqModel, mcfg, 0), Recall(TASK), cfgs[0], checkpoint=paths[0])
    rest = train_batched([build(SeqModel, mcfg, c.seed) for c in cfgs[1:]], [Recall(TASK), Recall(TASK)], cfgs[1:],
                         checkpoints=paths[1:])
    hists, sep_paths = separate(mcfg, cfgs, tmp_path)
    # the resumed histories hold every row (those before the interruption come from the checkpoint)
    assert_same_runs(hists, sep_paths, [first, *rest], paths)


def test_a_finished_member_returns_its_history_and_the_others_train(tmp_path):
    """A member whose separate run already finished is loaded, not retrained; the rest train batched."""
    cfgs = [dataclasses.replace(BASE, seed=s) for s in range(2)]
    mcfg = model_config("conv")
    hists, paths = separate(mcfg, cfgs, tmp_path)
    done = tmp_path / "bat-0.pt"
    shutil.copy(paths[0], done)
    before = load_checkpoint(done)["model"]
    again, _ = together(mcfg, cfgs, tmp_path)
    assert all(torch.equal(v, load_checkpoint(done)["model"][k]) for k, v in before.items())
    pd.testing.assert_frame_equal(again[0], hists[0])
    assert_same_runs(hists, paths, again, [done, tmp_path / "bat-1.pt"])


def test_members_must_share_the_batch_and_the_model(tmp_path):
    mcfg = model_config("conv")
    models = [build(SeqModel, mcfg, s) for s in range(2)]
    with pytest.raises(ValueError, match="batch_size"):
        train_batched(models, [Recall(TASK)] * 2, [BASE, dataclasses.replace(BASE, seed=1, batch_size=4)])
    other = build(SeqModel, dataclasses.replace(mcfg, body=dataclasses.replace(mcfg.body, d_model=32)), 1)
    with pytest.raises(ValueError, match="parameter names and shapes"):
        train_batched([models[0], other], [Recall(TASK)] * 2, [BASE, dataclasses.replace(BASE, seed=1)])
    with pytest.raises(ValueError, match="distinct checkpoints"):
        train_batched(models, [Recall(TASK)] * 2, [BASE, dataclasses.replace(BASE, seed=1)], checkpoints=[tmp_path / "x.pt"] * 2)


def test_batch_seeds_is_recorded_not_hashed():
    """The setting never changes a run's id, so a batched run and a separate one share checkpoints."""
    mcfg, task = model_config("conv"), Recall(TASK)
    paths = {checkpoint_for("s", mcfg, task, dataclasses.replace(BASE, batch_seeds=v)) for v in ("auto", True, False)}
    assert len(paths) == 1
    with pytest.raises(ValueError, match="batch_seeds must be one of"):
        dataclasses.replace(BASE, batch_seeds="yes")
    assert not batched.enabled(BASE) and batched.enabled(dataclasses.replace(BASE, batch_seeds=True))
    # runs that differ only by seed and lr share a group; another cap is another group
    key = lambda **kw: batched.group_key(mcfg, task, dataclasses.replace(BASE, **kw))
    assert key(seed=1, lr=1e-2) == key(seed=0) != key(steps=30)


@pytest.fixture
def study():
    name = f"test-batched-{uuid.uuid4().hex[:8]}"
    yield name
    shutil.rmtree(CHECKPOINTS / name, ignore_errors=True)
    shutil.rmtree(CHECKPOINTS / (name + "-sep"), ignore_errors=True)


def test_train_sweep_with_batch_seeds_trains_the_separate_runs(study, capsys):
    """batch_seeds: true makes train_sweep train its seeds as one batched model (checkpoints where
    the separate runs keep theirs); the histories equal a sweep of separate runs."""
    mcfg, tcfg = model_config("conv"), {**dataclasses.asdict(BASE), "steps": 10}
    on, models = train_sweep(SeqModel, [mcfg], Recall(TASK), {**tcfg, "batch_seeds": True}, seeds=[0, 1, 2], study=study)
    assert "trained 3 runs as 1 batched group(s)" in capsys.readouterr().out
    off, _ = train_sweep(SeqModel, [mcfg], Recall(TASK), {**tcfg, "batch_seeds": False}, seeds=[0, 1, 2], study=study + "-sep")
    assert sorted(p.name for p in (CHECKPOINTS / study).glob("*.pt")) == sorted(p.name for p in (CHECKPOINTS / (study + "-sep")).glob("*.pt"))
    cols = ["seed", "step", "train_loss", "val_acc"]
    torch.testing.assert_close(torch.tensor(on[cols].values), torch.tensor(off[cols].values), rtol=1e-4, atol=1e-5, equal_nan=True)
    saved = load_checkpoint(checkpoint_for(study, mcfg, Recall(TASK), TrainConfig.load({**tcfg, "seed": 2})))["model"]
    assert all(torch.equal(v, saved[k]) for k, v in models[mcfg.name, 2].state_dict().items())
