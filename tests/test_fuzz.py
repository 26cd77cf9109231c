"""Bad input to the two command lines (the runner, the generate CLI): each case is one line on
stderr beginning with 'error:', exit code 2, and nothing written (no report, no images, no
checkpoint). The runner's cases never reach a kernel: everything is checked before papermill."""
import os
from pathlib import Path

import pytest
import torch

from lib import generate, run
from lib.paths import CHECKPOINTS

SC = "selective_copy"
CASES = [  # (notebook, config text or None for "no file written", extra argv)
    ("no_such_notebook", "samples: 100\n", []),
    (SC, None, []),  # the config file does not exist
    (SC, "samples: 100\nlayerz: 3\n", []),
    (SC, "samples: many\n", []),
    (SC, "samples: -5\n", []),
    (SC, "batch_size: 0\n", []),
    (SC, "lr: 0\n", []),
    (SC, "lr: -1e-3\n", []),
    (SC, "seeds: []\n", []),
    (SC, "sweep: []\n", []),
    (SC, "# only a comment\n", []),
    (SC, "", []),
    (SC, "- 1\n- 2\n", []),
    (SC, "samples: : :\n", []),
    (SC, "samples: 10\nsamples: 20\n", []),
    (SC, b"samples: 10 \xff\xfe\n", []),
    (SC, "base: nowhere.yml\nsamples: 10\n", []),
    (SC, "base: self.yml\n", []),
    (SC, "base: 3\nsamples: 10\n", []),
    (SC, "warmup_steps: -1\n", []),
    (SC, "val_size: 0\n", []),
    (SC, "evals: 0\n", []),
    (SC, "device: tpu\n", []),
    (SC, "sweep: [3]\n", []),
    (SC, "sweep: [{grid: {layers: []}}]\n", []),
    ("learnable_loop_lr", "sweep: [{grid: {inject: [none, folded], b: [3], T: [3]}}]\n", []),
    ("n_token_masking", "sweep: [{n_layer: 2}]\n", []),
    ("looped_vs_standard", "kind: quadratic\n", []),
    ("looped_vs_standard", "n_dims: 0\n", []),
    ("looped_vs_standard", "schedule: linear\n", []),
    ("looped_vs_standard", "converge_mode: sideways\n", []),
    ("looped_vs_standard", "evals: 0\n", []),
    ("looped_vs_standard", "workers: 0\n", []),
    ("looped_vs_standard", "max_minutes: -1\n", []),
    ("small_lms", "models: []\n", []),
    (SC, "samples: 100\n", ["--out", "{file}"]),
    (SC, "samples: 100\n", ["--out", "{file}/sub"]),
    (SC, "samples: 100\n", ["--bogus"]),
]
if not torch.cuda.is_available():
    CASES.append(("looped_vs_standard", "device: cuda\n", []))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    return err


def snapshot() -> set:
    return {str(p) for p in CHECKPOINTS.rglob("*")} if CHECKPOINTS.exists() else set()


@pytest.mark.parametrize("i", range(len(CASES)))
def test_runner_rejects_bad_input_in_one_line(i, tmp_path, capsys):
    notebook, text, extra = CASES[i]
    cfg = tmp_path / "self.yml"
    if text is not None:
        cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "out"
    extra = [a.replace("{file}", str(tmp_path / "afile")) for a in extra]
    argv = [notebook, "--config", str(cfg), *(extra if "--out" in extra else ["--out", str(out), *extra])]
    before = snapshot()
    try:
        code = run.main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    assert code == 2
    one_line_error(capsys)
    assert not out.exists() and snapshot() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"afile", *(["self.yml"] if text is not None else [])})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    torch.save({"model": {}, "step": 0, "config": {}}, d / "not_lm.pt")  # a valid checkpoint, but no language model in it
    torch.save({"model": {"w": torch.zeros(1000)}, "step": 1}, d / "whole.pt")
    raw = (d / "whole.pt").read_bytes()
    (d / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (d / "garbage.pt").write_bytes(os.urandom(300))
    (d / "empty.pt").write_bytes(b"")
    (d / "folder.pt").mkdir()
    return d


GEN_CASES = [
    ["--top-p", "0"], ["--top-p", "-0.5"], ["--top-p", "1.5"], ["--top-p", "nan"], ["--top-k", "0"], ["--top-k", "-3"],
    ["--top-k", "x"], ["--temperature", "0"], ["--temperature", "-1"], ["--max-new-tokens", "-5"], ["--max-new-tokens", "0"],
    ["--prompt", ""], ["--method", "beam"], ["--checkpoint-typo", "x"],
]
GEN_FILES = ["folder.pt", "garbage.pt", "empty.pt", "truncated.pt", "not_lm.pt", "missing.pt"]


@pytest.mark.parametrize("args", GEN_CASES, ids=[" ".join(a) for a in GEN_CASES])
def test_generate_rejects_bad_options_in_one_line(args, checkpoints, capsys):
    try:
        code = generate.main(["--checkpoint", str(checkpoints / "not_lm.pt"), *args])
    except SystemExit as e:
        code = e.code
    assert code == 2
    one_line_error(capsys)


@pytest.mark.parametrize("name", GEN_FILES)
def test_generate_rejects_bad_checkpoints_in_one_line_naming_the_file(name, checkpoints, capsys):
    before = sorted(Path(checkpoints).iterdir())
    assert generate.main(["--checkpoint", str(checkpoints / name)]) == 2
    assert name in one_line_error(capsys)
    assert sorted(Path(checkpoints).iterdir()) == before


def test_there_are_at_least_forty_cases():
    assert len(CASES) + len(GEN_CASES) + len(GEN_FILES) >= 40
