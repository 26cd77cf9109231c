"""Each notebook's typed settings (lib.studies.StudySettings): named in its metadata, holding every
parameter of its `parameters` cell, refusing a bad config in one line before any kernel starts,
giving TrainConfig objects, and cutting a profile to a dry run."""
import dataclasses
import math

import pytest
import torch

from lib import run
from lib.config import ConfigError, read_config
from lib.notebooks import cell_parameters, load_settings, notebook_path, profile_settings, settings_class
from lib.paths import CONFIGS, NOTEBOOKS
from lib.studies import StudySettings, grid, lm, looped, selective_copy, thinker
from lib.train import TrainConfig

NBS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def runs_of(s: StudySettings) -> list:
    """The `run` arguments train_config takes for these settings."""
    if isinstance(s, thinker.Settings):
        return list(thinker.EXPERIMENTS)
    if isinstance(s, lm.Settings):
        return [c.name for c in s.model_configs(s.vocab)]
    if isinstance(s, looped.Settings):
        return [c.name for c in s.model_configs()]
    if isinstance(s, grid.GridSettings):
        return grid.expand(s)
    return [None]


@pytest.mark.parametrize("nb", NBS)
def test_every_notebook_names_a_settings_class_holding_each_of_its_parameters(nb):
    cls = settings_class(notebook_path(nb))
    assert cls is not None and issubclass(cls, StudySettings), f"{nb}: no metadata seqlab.settings naming a StudySettings"
    assert not set(cell_parameters(notebook_path(nb))) - cls.names()
    assert {"backend", "ray_address", "gpus_per_run", "workers", "device"} <= cls.names()
    s = load_settings({}, notebook_path(nb), where="the notebook's defaults")
    assert type(s) is cls and all(isinstance(s.train_config(r), TrainConfig) for r in runs_of(s))


def test_train_config_is_an_object_per_run():
    sc = profile_settings("selective_copy", "cpu")
    assert sc.train_config() == TrainConfig(steps=math.ceil(sc.samples / sc.batch_size), batch_size=sc.batch_size, lr=sc.lr,
                                            weight_decay=sc.weight_decay, warmup_steps=sc.warmup_steps, grad_clip=sc.grad_clip,
                                            eval_every=math.ceil(sc.samples / sc.batch_size) // sc.evals, device=sc.device,
                                            compile=sc.compile)
    th = profile_settings("latent_thinker", "cpu")
    add, rand, copy = th.train_config("addition"), th.train_config("compute"), th.train_config("copy")
    assert (add.steps, add.lr, add.batch_size, add.min_lr_ratio) == (th.add_steps, th.add_lr, th.add_batch, th.add_min_lr_ratio)
    assert (rand.steps, rand.lr) == (th.rand_steps, th.copy_lr) and th.train_config("length") == copy and copy.steps == th.copy_steps
    with pytest.raises(ValueError, match=r"the thinker's experiments are \['copy', 'addition', 'compute', 'length'\]"):
        th.train_config("cumsum")
    small = dataclasses.replace(profile_settings("small_lms", "smoke"), models=[{"arch": "gpt", "d_model": 32, "n_layer": 1, "n_head": 2},
                                                                                {"arch": "gpt", "d_model": 32, "n_layer": 2, "n_head": 2, "steps": 7}])
    assert [small.train_config(r).steps for r in runs_of(small)] == [small.steps, 7]
    assert dataclasses.replace(small.train_config("gpt-d32-L2-h2"), seed=4) == TrainConfig.load(
        {**dataclasses.asdict(small.train_config("gpt-d32-L2-h2")), "seed": 4})


# (notebook, config, what the one-line error must name: the key, the bad value and the allowed values)
BAD = [
    ("looped_vs_standard", "steps_for: {tf-L99: 10}\n", ["steps_for", "'tf-L99'", "'tf-L2'", "'looped-L1-b5-T10'"]),
    ("looped_vs_standard", "sweep: [{body: transformerx, n_layer: 1}]\n", ["body", "'transformerx'", "'attention'", "'mamba'"]),
    ("block_task_grid", "bodies: [transformerx]\n", ["bodies", "'transformerx'", "'attention'", "'mamba'"]),
    ("small_lms", "models: [{arch: transformerx, d_model: 64, n_layer: 2}]\n", ["arch", "'transformerx'", "'attention'"]),
    ("small_lms", "models: [{arch: gpt, d_model: 64, n_layer: 2}, {arch: gpt, d_model: 64, n_layer: 2}]\n",
     ["models", "'gpt-d64-L2-h4'", "twice"]),
    ("latent_thinker", "curricula: [none, bogus]\n", ["curricula", "'bogus'", "'adaptive'"]),
    ("latent_thinker", "rand_task: bogus\n", ["task", "'bogus'", "'copy'", "'addition'"]),
    ("latent_thinker", "train_max_keep: 99\n", ["train_max_keep = 99", "copy_length"]),
    ("loss_surface", "large_run: tf-L99\nlarge_resolution: 5\n", ["large_run", "'tf-L99'", "'tf-L2'"]),
    ("loss_surface", "directions: [hessian, sideways]\n", ["directions", "'sideways'", "'pca'"]),
    ("n_token_masking", "wheres: [middle]\n", ["wheres", "'middle'", "'first'"]),
    ("mamba_vs_looped_tf", "kinds: [quadratic]\n", ["kinds", "'quadratic'", "'noisy_linear'"]),
    ("learnable_loop_lr", "sweep: [{b: 3, T: 3}]\n", ["sweep", "inject: scalar"]),
    ("looped_vs_standard", "family_profile: nope\n", ["family_profile", "'nope'", "'cpu'"]),
    ("selective_copy", "backend: kubernetes\n", ["backend", "'kubernetes'", "'processes'", "'ray'"]),
    ("selective_copy", "ray_address: auto\n", ["ray_address", "backend"]),
    ("selective_copy", "backend: ray\ngpus_per_run: -1\n", ["gpus_per_run = -1"]),
    ("selective_copy", "seeds: [1, 1]\n", ["seeds", "repeats [1]"]),
    ("selective_copy", "lr: -0.1\n", ["lr", "-0.1"]),
    ("selective_copy", "samples: many\n", ["samples = 'many' (str); expected int"]),
    ("latent_thinker", "add_seeds: []\n", ["add_seeds is empty"]),
]


@pytest.mark.parametrize("nb, text, names", BAD, ids=[f"{b[0]}: {b[1].strip()}" for b in BAD])
def test_a_bad_config_is_one_line_naming_the_key_before_any_kernel(nb, text, names, tmp_path, monkeypatch, capsys):
    def execute(*a, **k):
        raise AssertionError("a kernel would start")

    monkeypatch.setattr(run, "execute", execute)
    (tmp_path / "c.yml").write_text(text)
    assert run.main([nb, "--config", str(tmp_path / "c.yml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    assert all(n in err for n in names), err
    assert not (tmp_path / "out").exists()


PROFILES = sorted(p for p in CONFIGS.glob("*/*.yml") if p.parent.name != "looped")


@pytest.mark.parametrize("config", PROFILES, ids=[f"{p.parent.name}/{p.stem}" for p in PROFILES])
def test_a_dry_run_trains_a_few_steps_of_one_seed_on_the_cpu(config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a gpu profile's settings load on any machine
    nb = notebook_path(config.parent.name)
    s = load_settings(read_config(config)[0], nb, where=str(config))
    dry = s.dry_run()
    assert type(dry) is type(s) and (dry.device, dry.workers, dry.backend) == ("cpu", 1, "processes")
    assert all(dry.train_config(r).steps <= 2 for r in runs_of(dry))
    seeds = {f.name: getattr(dry, f.name) for f in dataclasses.fields(dry) if f.name.endswith("seeds") and isinstance(getattr(dry, f.name), (list, tuple)) and getattr(dry, f.name)}
    assert seeds and all(len(v) == 1 for v in seeds.values()), seeds
    if isinstance(dry, looped.Settings):
        assert 1 <= len(dry.model_configs()) <= 3 and (dry.n_dims, dry.points, dry.n_embd) == (s.n_dims, s.points, s.n_embd)
    params = run.dry_run(read_config(config)[0], nb, where=str(config))  # what the runner hands papermill
    assert load_settings(params, nb, where="dry run") == dry


def test_a_dry_run_keeps_the_runs_a_study_needs():
    s = looped.LearnableLoopLr(sweep=[{"inject": "scalar", "b": 3, "T": 3}, {"b": 2, "T": 2}, {"b": 4, "T": 4}])
    assert [c.inject for c in s.dry_run().model_configs()] == ["scalar", "none"]
    s = looped.LearnableLoopLr(sweep=[{"b": 2, "T": 2}, {"inject": "scalar", "b": 3, "T": 3}, {"b": 4, "T": 4}])
    assert [c.name for c in s.dry_run().model_configs()] == ["looped-L1-b2-T2", "looped-L1-b4-T4", "looped-L1-b3-T3-lr"]
    s = looped.NTokenMasking(sweep=[{"n_layer": 2}, {"b": 3, "T": 3}, {"n_layer": 4}])
    assert [c.name for c in s.dry_run().model_configs()] == ["tf-L2", "tf-L4", "looped-L1-b3-T3"]
    s = looped.LossSurface(sweep=[{"n_layer": 2}, {"b": 3, "T": 3}, {"n_layer": 4}], large_run="looped-L1-b3-T3", large_resolution=50)
    dry = s.dry_run()
    assert (dry.large_run, dry.large_resolution) == ("tf-L2", 3)


def test_the_sweep_backend_is_checked_and_handed_to_the_sweep():
    s = selective_copy.Settings(backend="ray", ray_address="ray://head:10001", gpus_per_run=0.5, workers=3)
    assert s.sweep_options() == {"workers": 3, "backend": "ray", "ray_address": "ray://head:10001", "gpus_per_run": 0.5}
    assert s.dry_run().sweep_options() == {"workers": 1, "backend": "processes", "ray_address": None, "gpus_per_run": 0.0}
    for bad, message in (({"backend": "dask"}, "backend = 'dask'; allowed"), ({"gpus_per_run": 1.0}, "apply to backend 'ray'"),
                         ({"backend": "ray", "gpus_per_run": float("nan")}, "gpus_per_run = nan"), ({"workers": 0}, "workers = 0")):
        with pytest.raises(ConfigError, match=message):
            selective_copy.Settings.load(bad)


def test_settings_read_from_a_notebook_namespace_ignore_its_other_names():
    ns = {"steps": 7, "kinds": ["linear"], "iters_factor": 3, "np": object(), "sweep": [{"n_layer": 2}]}
    s = looped.settings(ns)
    assert type(s) is looped.Settings and s.steps == 7 and [c.name for c in s.model_configs()] == ["tf-L2"]
    with pytest.raises(ConfigError, match=r"^notebook parameters: steps = '7' \(str\); expected int$"):
        looped.settings({"steps": "7"})


def test_every_study_hands_its_sweep_backend_to_lib_sweep(tmp_path, monkeypatch):
    """`backend: ray` reaches lib.sweep's Ray path from each study's settings, with its address and
    GPU share; here the Ray tasks run in this process (a local Ray's start-up is the runner test's)."""
    from lib import sweep, train

    monkeypatch.setattr(train, "CHECKPOINTS", tmp_path)
    calls = []

    def in_process(model_cls, todo, study, workers, threads, address, gpus_per_run):
        calls.append((study, len(todo), workers, address, gpus_per_run))
        return [sweep._train_in_worker(model_cls, *run, study, 1) for run in todo]

    monkeypatch.setattr(sweep, "_train_with_ray", in_process)
    ray = {"backend": "ray", "ray_address": "ray://head:10001", "gpus_per_run": 0.5, "workers": 2, "device": "cpu"}
    sc = selective_copy.train(selective_copy.Settings(**ray, n_items=2, area=6, val_size=8, channels=8, samples=8, batch_size=4,
                                                      sweep=[{"layers": 1, "kernel_size": 3}], evals=1))
    th = thinker.copy_curricula(thinker.Settings(**ray, copy_length=4, copy_V=4, curricula=["none"], copy_d=8, copy_heads=2,
                                                 copy_latents=2, copy_n_step=1, copy_steps=2, copy_batch=4, uniform_max_keep=4,
                                                 train_max_keep=2, rand_length=4, rand_latents=[2], rand_n_steps=[1], val_size=8, evals=1))
    small = lm.Settings(**ray, tokenizer="bytes", n_docs=20, ctx=16, val_windows=1, steps=2, batch_size=2, warmup_steps=0, evals=1,
                        models=[{"arch": "gpt", "d_model": 16, "n_layer": 1, "n_head": 2}])
    lms = lm.train(small, lm.make_task(small))
    lp = looped.train(looped.Settings(**ray, steps=2, batch_size=4, val_size=8, evals=1), [{"n_layer": 1, "b": 2, "T": 2}], [0])
    assert [c[:2] for c in calls] == [("selective_copy", 1), ("latent_thinker", 1), ("latent_thinker", 1), ("small_lms", 1), ("looped", 1)]
    assert all(c[2:] == (2, "ray://head:10001", 0.5) for c in calls)
    for study in (sc, th, lms, lp):  # the sequential pass loaded what the Ray tasks trained
        assert study.models and study.history["step"].max() == 2
