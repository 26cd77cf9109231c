"""The study layer: config bases, the looped family's shared identity, the family's run list."""
import dataclasses

import pytest

from lib.config import ConfigError, read_config
from lib.notebooks import profile_parameters
from lib.paths import CONFIGS
from lib.studies import family, looped

# Where a study's profile deliberately trains on other settings (its own checkpoints, stated in its YAML).
OWN_SETTINGS = {("learnable_loop_lr", "gpu"): {"n_embd", "steps"}, ("n_token_masking", "cpu"): {"steps", "min_steps"}}


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_the_looped_familys_identity_fields_agree(profile):
    """If they drifted, the 'shared' checkpoints would silently stop being shared."""
    identity = [f.name for f in dataclasses.fields(looped.Settings) if f.name not in looped.NOT_IDENTITY]
    base, _ = read_config(CONFIGS / "looped" / f"{profile}.yml")
    for nb in looped.FAMILY:
        path = CONFIGS / nb / f"{profile}.yml"
        if not path.exists():
            continue
        params, _ = read_config(path)
        allowed = OWN_SETTINGS.get((nb, profile), set())
        differ = {k for k in identity if k in base and params.get(k) != base[k]} - allowed
        assert not differ, f"{path} overrides the family's identity keys {sorted(differ)}"
        assert "base:" in path.read_text(), f"{path} does not start from configs/looped/{profile}.yml"


def test_a_base_is_merged_flat_and_overrides_are_named(tmp_path):
    (tmp_path / "base.yml").write_text("a: 1\nb: 2\n")
    (tmp_path / "study.yml").write_text("base: base.yml\nb: 3\nc: 4\n")
    params, overrides = read_config(tmp_path / "study.yml")
    assert params == {"a": 1, "b": 3, "c": 4} and overrides == {"b": (2, 3)}
    (tmp_path / "loop.yml").write_text("base: loop.yml\na: 1\n")
    with pytest.raises(ConfigError, match="loops back"):
        read_config(tmp_path / "loop.yml")
    (tmp_path / "dup.yml").write_text("a: 1\na: 2\n")
    with pytest.raises(ConfigError, match="key 'a' is given twice"):
        read_config(tmp_path / "dup.yml")
    (tmp_path / "e.yml").write_text("lr: 3e-3\n")
    assert read_config(tmp_path / "e.yml")[0] == {"lr": 0.003}  # e-notation without a dot is a float
    (tmp_path / "empty.yml").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="empty config"):
        read_config(tmp_path / "empty.yml")


def test_profile_parameters_resolve_the_base_and_the_notebook_defaults():
    p = profile_parameters("looped_vs_standard", "cpu")
    assert p["n_embd"] == 64 and p["iters_factor"] == 10 and p["converge_metric"] == "val_error"


def test_the_family_run_list_has_each_run_once():
    runs = family.runs("cpu")
    from lib.sweep import checkpoint_for

    keys = [checkpoint_for(looped.STUDY, *r) for r in runs]
    assert len(keys) == len(set(keys)) and len(runs) >= 30
    assert {r[0].body for r in runs} == {"gpt", "mamba", "ssd"}
    assert {r[1].k for r in runs} == {12, 31}  # the masking study's models see 31 pairs


def test_a_runs_own_step_cap_sets_its_schedule_and_evals_and_only_its_own():
    s = looped.Settings(steps=100, evals=4, steps_for={"looped-L1-b10-T10": 400})
    own, shared = s.train_config("looped-L1-b10-T10"), s.train_config("tf-L4")
    assert (own.steps, own.eval_every) == (400, 100) and (shared.steps, shared.eval_every) == (100, 25)
    assert shared == s.train_config() and dataclasses.replace(shared, seed=3).seed == 3
    with pytest.raises(ValueError, match="steps_for"):
        looped.Settings(steps_for={"tf-L4": 0})


def test_step_caps_key_the_checkpoint_and_name_only_runs_of_the_family(monkeypatch):
    from lib.sweep import checkpoint_for

    s = looped.Settings(steps=100, steps_for={"tf-L4": 300})
    task = looped.make_task(s)
    c = looped.model_configs(s, [{"n_layer": 4}])[0]
    key = lambda cfg: checkpoint_for(looped.STUDY, c, task, cfg)
    assert c.name == "tf-L4" and key(s.train_config(c.name)) != key(s.train_config())
    with pytest.raises(ValueError, match=r"steps_for names no run of the looped family: \['tf-L99'\]; its runs: \[.*'tf-L2'"):
        looped.Settings(steps_for={"tf-L99": 5})  # no notebook of the family has a 99-layer TF
    import lib.notebooks as nbs

    # tf-L12 is a run of the family's gpu profile, not of its cpu one: the cpu run list refuses a cap for it
    original = nbs.profile_settings
    monkeypatch.setattr(nbs, "profile_settings", lambda nb, profile: dataclasses.replace(original(nb, profile), steps_for={"tf-L12": 5}))
    with pytest.raises(ValueError, match="steps_for at profile 'cpu' names no run of the family: \\['tf-L12'\\]"):
        family.runs("cpu")
