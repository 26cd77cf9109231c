"""Bad checkpoints, bad generate options and faults while writing checkpoints: each is answered by
one line (the generate CLI: 'error: ...' on stderr, exit code 2; the library: one exception whose
one-line message names the file), and nothing is written or lost.

The checkpoints here are written in a temporary checkpoint folder (lib.train.CHECKPOINTS and
lib.paths.CHECKPOINTS patched): a small language model for generate, a small copy-task model for
the training side."""
import dataclasses
import errno
import os
import resource
import signal
import subprocess
import sys

import pytest
import torch

import lib.paths
import lib.train
from lib import generate, provenance, run
from lib.models.lm import LanguageModel, LMConfig
from lib.models.thinker import Thinker, ThinkerConfig
from lib.sweep import checkpoint_for, run_identity, train_sweep
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig
from lib.tasks.lm import LMTask, TextConfig
from lib.train import CheckpointError, TrainConfig, load_checkpoint, save_atomic

STUDY = "small_lms"
LM_TRAIN = {"steps": 4, "batch_size": 4, "lr": 3e-3, "eval_every": 4, "device": "cpu"}
COPY = AlgorithmicConfig(task="copy", V=6, length=5, val_size=32)
THINKER = ThinkerConfig(vocab=COPY.vocab, out_len=COPY.out_len, d=8, n_head=2, n_latent=2, n_step=2, max_len=20)
COPY_TRAIN = {"steps": 6, "batch_size": 16, "lr": 3e-3, "eval_every": 3, "device": "cpu"}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    return err


def listing(folder) -> dict:
    """Every file under `folder` with its size and mtime: 'nothing written or lost' compares two of these."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(argv) -> int:
    try:
        return generate.main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        return e.code


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A checkpoint folder holding one tiny GPT language model, seeds 0 and 1, trained by train_sweep."""
    root = tmp_path_factory.mktemp("checkpoints")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lib.train, "CHECKPOINTS", root)
        task = LMTask(TextConfig(n_docs=300, tokenizer="bytes", ctx=32, val_windows=4))
        cfg = LMConfig(arch="gpt", vocab=task.vocab_size, ctx=32, d_model=16, n_layer=1, n_head=2)
        train_sweep(LanguageModel, [cfg], task, LM_TRAIN, seeds=[0, 1], study=STUDY)
        paths = {seed: checkpoint_for(STUDY, cfg, task, TrainConfig.load({**LM_TRAIN, "seed": seed})) for seed in (0, 1)}
    return root, cfg, paths


@pytest.fixture
def lm(store, monkeypatch, tmp_path):
    """The store's checkpoint folder as SEQLAB_CHECKPOINTS, and a crafted copy of seed 0's checkpoint
    (`craft(change)` -> the path of a copy with `change(saved)` applied)."""
    root, cfg, paths = store
    monkeypatch.setattr(lib.paths, "CHECKPOINTS", root)
    monkeypatch.setattr(lib.train, "CHECKPOINTS", root)

    def craft(change, name="crafted.pt"):
        saved = torch.load(paths[0], weights_only=True)
        change(saved)
        torch.save(saved, tmp_path / name)
        return tmp_path / name

    return root, cfg, paths, craft


# ---------------------------------------------------------------------------------------------
# generate: options out of range, each one line and exit 2, nothing written
# ---------------------------------------------------------------------------------------------
BAD_OPTIONS = [
    ["--temperature", "1e-40"], ["--temperature", "1e-320"], ["--temperature", "inf"], ["--temperature", "1e9"],
    ["--top-p", "1e-320"], ["--top-p", "1e-40"], ["--seed", str(10**30)], ["--seed", "-1"],
    ["--max-new-tokens", str(10**30)], ["--max-new-tokens", str(generate.MAX_NEW_TOKENS + 1)], ["--top-k", str(10**30)],
    ["--prompt", "abc\udcff"],  # undecodable bytes in argv (surrogateescape)
    ["--prompt", ""],
]


@pytest.mark.parametrize("args", BAD_OPTIONS, ids=[" ".join(a)[:30] for a in BAD_OPTIONS])
def test_generate_refuses_options_out_of_range(args, lm, capsys):
    root, _, paths, _ = lm
    before = listing(root)
    assert cli(["--checkpoint", paths[0], "--max-new-tokens", "3", *args]) == 2
    err = one_line_error(capsys)
    assert args[0] in err
    assert listing(root) == before and capsys.readouterr().out == ""


BAD_SELECTIONS = [  # --study/--run/--seed that name no checkpoint, or are incomplete
    ["--study", STUDY], ["--run", "gpt"], ["--study", STUDY, "--run", "gpt", "--checkpoint", "{ckpt}"],
    ["--study", "nope", "--run", "gpt"], ["--study", STUDY, "--run", "mixer"], ["--study", STUDY, "--run", "gpt", "--seed", "7"],
    ["--study", "..", "--run", "gpt"], ["--study", STUDY, "--run", "gp"],
]


@pytest.mark.parametrize("args", BAD_SELECTIONS, ids=[" ".join(a) for a in BAD_SELECTIONS])
def test_generate_refuses_a_selection_that_names_no_checkpoint(args, lm, capsys):
    root, _, paths, _ = lm
    before = listing(root)
    assert cli([a.replace("{ckpt}", str(paths[0])) for a in args]) == 2
    err = one_line_error(capsys)
    assert any(opt in err for opt in ("--study", "--run", "--seed", "--checkpoint")), err
    assert listing(root) == before


# ---------------------------------------------------------------------------------------------
# generate: crafted checkpoints, each one line naming the file and the allowed values
# ---------------------------------------------------------------------------------------------
def _set(**kv):
    def change(saved):
        for key, value in kv.items():
            target = saved
            *parents, last = key.split(".")
            for p in parents:
                target = target[p]
            target[last] = value
    return change


BAD_FILES = {
    "torch module as class": (_set(model_class="lib.models.gpt:torch", model_config_class="lib.models.gpt:torch"), "allowed"),
    "os.system as class": (_set(model_class="os:system"), "allowed"),
    "unregistered class": (_set(model_class="lib.models.lm:Nope"), "allowed"),
    "class not a string": (_set(model_class=["lib.models.lm", "LanguageModel"]), "allowed"),
    "config class swapped": (_set(model_config_class="lib.models.gpt:GPTConfig"), "allowed"),
    "garbage tokenizer": (_set(**{"task_meta.tokenizer": "not json {"}), "task_meta.tokenizer"),
    "bad bpe tokenizer": (_set(**{"task_meta.tokenizer": '{"kind": "bpe", "tokenizer": "garbage"}'}), "task_meta.tokenizer"),
    "unknown tokenizer kind": (_set(**{"task_meta.tokenizer": '{"kind": "sentencepiece"}'}), "'bytes' or 'bpe'"),
    "config not the weights": (_set(**{"config.model.d_model": 24}), "weights do not match"),
    "config unknown key": (_set(**{"config.model.width": 3}), "allowed"),
    "config unknown arch": (_set(**{"config.model.arch": "rnn"}), "arch must be one of"),
    "config vocab not the tokenizer": (_set(**{"config.model.vocab": 300}), "config.model.vocab"),
    "no config": (_set(config=None), "config.model"),
    "weights not a dict": (_set(model=torch.zeros(3)), "not a state dict"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_generate_refuses_a_bad_checkpoint_naming_the_file(case, lm, capsys):
    root, _, _, craft = lm
    change, expected = BAD_FILES[case]
    path = craft(change)
    before = listing(path.parent)
    assert cli(["--checkpoint", path, "--max-new-tokens", "3"]) == 2
    err = one_line_error(capsys)
    assert str(path) in err and expected in err, err
    assert listing(path.parent) == before


def test_generate_never_loads_a_file_or_class_named_by_the_checkpoint(lm, monkeypatch, tmp_path, capsys):
    """A class path that resolves to the torch module would call torch.load on a path from the file."""
    _, _, paths, craft = lm
    payload = tmp_path / "payload.pt"
    torch.save({"x": 1}, payload)
    path = craft(_set(model_class="lib.models.gpt:torch", model_config_class="lib.models.gpt:torch",
                      **{"config.model": str(payload)}))
    loaded, real = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: (loaded.append(str(f)), real(f, *a, **k))[1])
    assert cli(["--checkpoint", path]) == 2
    assert "allowed: ['lib.models.lm:LanguageModel']" in one_line_error(capsys)
    assert loaded == [str(path)]


def test_generate_refuses_a_pipe_without_opening_it(tmp_path, capsys):
    path = tmp_path / "ckpt.pt"
    os.mkfifo(path)  # opening it for reading would wait for a writer forever
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("generate hung on a FIFO")))
    signal.alarm(20)
    try:
        assert cli(["--checkpoint", path]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert str(path) in (err := one_line_error(capsys)) and "not a regular file" in err


def test_generate_refuses_a_device_without_reading_it():
    """In a process of its own with its memory capped: reading /dev/zero as a checkpoint fills the memory."""
    cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    done = subprocess.run([sys.executable, "-m", "lib.generate", "--checkpoint", "/dev/zero"], preexec_fn=cap, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(lib.paths.ROOT)}, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: /dev/zero is not a regular file") and done.stderr.count("\n") == 1, done.stderr


# ---------------------------------------------------------------------------------------------
# generate: the right checkpoint by --study/--run/--seed, and a swapped one refused
# ---------------------------------------------------------------------------------------------
def test_generate_picks_the_runs_checkpoint_and_streams(lm, capsys):
    root, cfg, paths, _ = lm
    assert cli(["--study", STUDY, "--run", "gpt", "--seed", "1", "--method", "greedy", "--max-new-tokens", "5", "--prompt", "Once"]) == 0
    out = capsys.readouterr().out
    model, tok = generate.load(paths[1])
    assert out == "Once" + tok.decode(generate.generate(model, tok.encode("Once"), 5, seed=1)) + "\n"
    assert generate.find_checkpoint(STUDY, "gpt") == (paths[0], {"study": STUDY, "run": cfg.name, "seed": 0})  # lowest seed
    assert generate.find_checkpoint(STUDY, cfg.name, 1, root=root)[0] == paths[1]


def test_stream_yields_each_token_before_the_next_is_computed(lm):
    _, _, paths, _ = lm
    model, tok = generate.load(paths[0])
    calls = []
    step = model.step
    model.step = lambda *a: (calls.append(1), step(*a))[1]
    tokens = generate.stream(model, tok.encode("Once"), 50)
    next(tokens)
    assert len(calls) == 1  # one token out after one step, not after all 50


def test_of_several_matching_runs_the_newest_is_used_and_named(lm, tmp_path, capsys):
    _, cfg, paths, _ = lm
    (tmp_path / STUDY).mkdir()
    older = tmp_path / STUDY / "gpt-d99-L9-h2-s0-0123456789.pt"
    older.write_bytes(paths[0].read_bytes())
    os.utime(older, (1, 1))
    newest = tmp_path / STUDY / paths[0].name
    newest.write_bytes(paths[0].read_bytes())
    assert generate.find_checkpoint(STUDY, "gpt", root=tmp_path)[0] == newest
    assert f"matches ['{cfg.name}', 'gpt-d99-L9-h2']" in capsys.readouterr().err


@pytest.mark.parametrize("stored", [True, False], ids=["identity stored", "older file: its config"])
def test_generate_refuses_a_swapped_checkpoint_for_a_run(stored, lm, tmp_path, capsys, monkeypatch):
    root, cfg, paths, _ = lm
    fake_root = tmp_path / "store"
    (fake_root / STUDY).mkdir(parents=True)
    saved = torch.load(paths[1], weights_only=True)
    if not stored:
        saved.pop("identity", None)
    torch.save(saved, fake_root / STUDY / paths[0].name)  # seed 1's run under seed 0's name
    monkeypatch.setattr(lib.paths, "CHECKPOINTS", fake_root)
    assert cli(["--study", STUDY, "--run", "gpt", "--seed", "0"]) == 2
    err = one_line_error(capsys)
    assert paths[0].name in err and "seed 1" in err and "seed 0" in err, err


def test_generate_refuses_another_studys_checkpoint(lm, tmp_path, capsys, monkeypatch):
    _, _, paths, _ = lm
    fake_root = tmp_path / "store"
    (fake_root / "thinker").mkdir(parents=True)
    (fake_root / "thinker" / paths[0].name).write_bytes(paths[0].read_bytes())
    monkeypatch.setattr(lib.paths, "CHECKPOINTS", fake_root)
    assert cli(["--study", "thinker", "--run", "gpt"]) == 2
    err = one_line_error(capsys)
    assert "small_lms/" in err and "thinker/" in err, err


def test_generate_command_from_the_readme_runs(lm):
    """`python -m lib.generate --study small_lms --run gpt` in a fresh process, honouring SEQLAB_CHECKPOINTS."""
    root, _, _, _ = lm
    env = {**os.environ, "SEQLAB_CHECKPOINTS": str(root), "PYTHONPATH": str(lib.paths.ROOT)}
    done = subprocess.run([sys.executable, "-m", "lib.generate", "--study", STUDY, "--run", "gpt", "--max-new-tokens", "4",
                           "--prompt", "Once upon a time"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Once upon a time")


# ---------------------------------------------------------------------------------------------
# training side: run identity, duplicate seeds, faults while saving, --retrain-stale, read-only store
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def copy_runs(tmp_path, monkeypatch):
    """Two finished runs of one small model (seeds 0 and 1) in a temporary checkpoint folder."""
    monkeypatch.setattr(lib.train, "CHECKPOINTS", tmp_path)
    task = Algorithmic(COPY)
    train_sweep(Thinker, [THINKER], task, COPY_TRAIN, seeds=[0, 1], study="copy")
    paths = [checkpoint_for("copy", THINKER, task, TrainConfig.load({**COPY_TRAIN, "seed": s})) for s in (0, 1)]
    return task, paths


def sweep(task, seeds=(0, 1)):
    return train_sweep(Thinker, [THINKER], task, COPY_TRAIN, seeds=list(seeds), study="copy")


def test_a_checkpoint_stores_the_identity_of_its_run(copy_runs):
    task, paths = copy_runs
    saved = load_checkpoint(paths[1])
    assert saved["identity"] == {"study": "copy", "run": THINKER.name, "seed": 1, "hash": paths[1].stem.rsplit("-", 1)[1]}
    ident = run_identity("copy", THINKER, task, TrainConfig.load({**COPY_TRAIN, "seed": 1}))
    assert provenance.identity_mismatch(saved, ident) is None


@pytest.mark.parametrize("stored", [True, False], ids=["identity stored", "older file: its config"])
def test_swapped_checkpoints_are_refused_naming_both_runs(stored, copy_runs):
    task, paths = copy_runs
    blobs = [torch.load(p, weights_only=True) for p in paths]
    for saved, p in zip(reversed(blobs), paths):  # same shape, each under the other's name
        if not stored:
            saved.pop("identity", None)
        torch.save(saved, p)
    before = listing(paths[0].parent)
    with pytest.raises(CheckpointError) as e:
        sweep(task)
    msg = str(e.value)
    assert "\n" not in msg and paths[0].name in msg and "renamed or swapped" in msg
    assert ("seed 1" in msg and "seed 0" in msg) if stored else "train.seed = 1 (asked 0)" in msg
    assert listing(paths[0].parent) == before


def test_a_checkpoint_written_before_identities_still_loads(copy_runs):
    task, paths = copy_runs
    for p in paths:
        saved = torch.load(p, weights_only=True)
        saved.pop("identity", None)
        torch.save(saved, p)
    before = listing(paths[0].parent)
    hist, _ = sweep(task)
    assert set(hist["seed"]) == {0, 1} and listing(paths[0].parent) == before  # loaded, not retrained


def test_a_checkpoint_of_another_run_renamed_to_this_one_is_refused(copy_runs, tmp_path):
    task, paths = copy_runs
    other = dataclasses.replace(THINKER, n_step=3)  # another run of the same shape (n_step has no weights)
    target = checkpoint_for("copy", other, task, TrainConfig.load({**COPY_TRAIN, "seed": 0}))
    target.write_bytes(paths[0].read_bytes())
    with pytest.raises(CheckpointError, match=f"{target.name}.*{THINKER.name} seed 0.*{other.name} seed 0"):
        train_sweep(Thinker, [other], task, COPY_TRAIN, seeds=[0], study="copy")


def test_a_checkpoint_without_its_optimizer_is_named(copy_runs):
    task, paths = copy_runs
    saved = torch.load(paths[0], weights_only=True)
    del saved["optimizer"]
    saved["stop_reason"], saved["step"] = None, 3  # unfinished: to resume
    torch.save(saved, paths[0])
    with pytest.raises(CheckpointError, match=f"{paths[0]} has no 'optimizer' entry"):
        sweep(task)


@pytest.mark.parametrize("seeds", [[0, 0], [1, 0, 1]])
def test_repeated_seeds_are_refused(seeds, tmp_path, monkeypatch):
    monkeypatch.setattr(lib.train, "CHECKPOINTS", tmp_path)
    with pytest.raises(ValueError, match=r"seeds = \[.*\] repeats .*give each seed once"):
        train_sweep(Thinker, [THINKER], Algorithmic(COPY), COPY_TRAIN, seeds=seeds, study="copy")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("notebook,text", [("small_lms", "seeds: [0, 0]\n"), ("selective_copy", "seeds: [3, 1, 3]\n"),
                                           ("mamba_vs_looped_tf", "plain_seeds: [1, 1]\n")])
def test_runner_refuses_repeated_seeds_before_any_kernel(notebook, text, tmp_path, capsys):
    cfg = tmp_path / "self.yml"
    cfg.write_text(text)
    assert run.main([notebook, "--config", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = one_line_error(capsys)
    assert text.split(":")[0] in err and "repeats" in err
    assert not (tmp_path / "out").exists()


def _fill_then(exc):
    """A torch.save that writes part of the file, then fails as torch does on a full disk."""
    def save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04partial")
        raise exc
    return save


@pytest.mark.parametrize("exc", [RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 1664 vs 1582"),
                                 OSError(errno.ENOSPC, "No space left on device")], ids=["torch", "OSError"])
def test_a_full_disk_is_one_line_and_leaves_no_tmp(exc, copy_runs, monkeypatch):
    _, paths = copy_runs
    before = paths[0].read_bytes()
    monkeypatch.setattr(torch, "save", _fill_then(exc))
    with pytest.raises(CheckpointError) as e:
        save_atomic({"model": {}, "step": 1}, paths[0])
    assert str(e.value).startswith(f"no space left on device writing {paths[0]}") and "\n" not in str(e.value)
    assert paths[0].read_bytes() == before
    assert not list(paths[0].parent.glob("*.tmp"))


def test_an_interrupted_write_leaves_no_tmp(copy_runs, monkeypatch):
    _, paths = copy_runs
    before = paths[0].read_bytes()
    monkeypatch.setattr(torch, "save", _fill_then(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"model": {}, "step": 1}, paths[0])
    assert paths[0].read_bytes() == before and not list(paths[0].parent.glob("*.tmp"))


def test_tmp_files_of_dead_writers_are_removed_at_the_next_save(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    path = tmp_path / "run.pt"
    (tmp_path / f"run.pt.{dead}.tmp").write_bytes(b"half")
    (tmp_path / f"run.pt.{os.getppid()}.tmp").write_bytes(b"a live writer's")  # its writer is alive: kept
    (tmp_path / "other.pt.123.tmp").write_bytes(b"another run's")
    save_atomic({"model": {}, "step": 1}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run.pt", f"run.pt.{os.getppid()}.tmp", "other.pt.123.tmp"])


def test_retrain_stale_keeps_the_finished_checkpoint_until_a_new_one_is_saved(copy_runs, monkeypatch):
    task, paths = copy_runs
    before = paths[0].read_bytes()
    monkeypatch.setenv(provenance.RETRAIN_STALE_ENV, "1")
    monkeypatch.setattr(provenance, "stale_for", lambda *a, **k: ["lib/models/thinker.py"])
    monkeypatch.setattr(lib.train, "save_atomic", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C at the retrain's first checkpoint
        train_sweep(Thinker, [THINKER], task, COPY_TRAIN, seeds=[0], study="copy")
    assert paths[0].read_bytes() == before


def test_a_read_only_store_loads_finished_runs(copy_runs, monkeypatch):
    """No lock file is needed to read a finished run (the lock is for training)."""
    task, paths = copy_runs

    def read_only(path, *a, **k):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path) + ".lock")

    monkeypatch.setattr("lib.sweep.run_lock", read_only)
    before = listing(paths[0].parent)
    hist, models = sweep(task)
    assert set(hist["seed"]) == {0, 1} and set(models) == {(THINKER.name, 0), (THINKER.name, 1)}
    assert listing(paths[0].parent) == before


def test_there_are_at_least_thirty_cases():
    assert len(BAD_OPTIONS) + len(BAD_SELECTIONS) + len(BAD_FILES) + 2 >= 30  # + the pipe and the device
