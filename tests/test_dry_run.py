"""Every gpu (and paper) profile runs end to end on the CPU in dry-run form: its shapes and code
paths, with a few steps, one seed and two runs per sweep (lib.run.dry_run). A gpu-only setting
that breaks a notebook (a shape, a key, a code path) fails here, in CI, without a GPU."""
import pytest

from lib import run
from lib.paths import CONFIGS

PROFILES = sorted(p for p in [*CONFIGS.glob("*/gpu.yml"), *CONFIGS.glob("*/paper.yml")] if p.parent.name != "looped")


@pytest.mark.parametrize("config", PROFILES,
                         ids=[f"{p.parent.name}/{p.stem}" for p in PROFILES])
def test_gpu_profile_dry_run(config, tmp_path, capsys):
    assert run.main([config.parent.name, "--config", str(config), "--dry-run", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "reports" / f"{config.parent.name}.md").read_text()
    assert f"| profile | `{config.stem}-dry-run`" in md and "Traceback" not in md
    import os

    from lib.report import OUT_ENV

    assert OUT_ENV not in os.environ  # the runner's settings are for its child process only


def test_dry_run_cuts_work_but_keeps_shapes():
    from lib.config import read_config
    from lib.notebooks import notebook_path

    params, _ = read_config(CONFIGS / "looped_vs_standard" / "gpu.yml")
    dry = run.dry_run(params, notebook_path("looped_vs_standard"))
    assert dry["steps"] == 2 and dry["seeds"] == [0] and dry["device"] == "cpu" and len(dry["sweep"]) == 2
    assert dry["sweep"] == [{"n_layer": 1, "b": 5, "T": 10}, {"n_layer": 12}]  # the first and the last run of the sweep
    for shape in ("n_dims", "points", "n_embd", "n_head"):
        assert dry.get(shape, params.get(shape)) == params.get(shape)
