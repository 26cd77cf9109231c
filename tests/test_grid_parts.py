"""The block x task grid's parts: every body in one sequence model, recall tasks against
plain-Python oracles, state sizes against the states the bodies really keep."""
import dataclasses

import pytest
import torch

from lib.models.bodies import BODIES, BodyConfig, state_size
from lib.models.looped import Looped, LoopedConfig
from lib.models.seq import SeqConfig, SeqModel
from lib.tasks.recall import IGNORE, Recall, RecallConfig, sample_induction, sample_mqar, sample_selective
from lib.tasks.regression import train_predictions

KINDS = sorted(BODIES)


def body(kind, **kw):
    return BodyConfig(**{"kind": kind, "d_model": 32, "n_layer": 2, "n_head": 4, "d_state": 8, "d_head": 16, "ctx": 64, **kw})


def test_mqar_matches_a_plain_python_oracle():
    cfg = RecallConfig(kind="mqar", vocab=64, seq_len=48, pairs=6)
    b = sample_mqar(cfg, 200, torch.Generator().manual_seed(0))
    for x, y in zip(b.x.tolist(), b.y.tolist()):
        context = {x[i]: x[i + 1] for i in range(0, 2 * cfg.pairs, 2)}  # key -> value
        assert len(context) == cfg.pairs and all(0 < k < 32 <= v < 64 for k, v in context.items())
        asked = [j for j, t in enumerate(y) if t != IGNORE]
        assert len(asked) == cfg.pairs and all(j >= 2 * cfg.pairs for j in asked)
        assert sorted(x[j] for j in asked) == sorted(context)  # every key asked once
        assert all(y[j] == context[x[j]] for j in asked)


def test_induction_matches_a_plain_python_oracle():
    cfg = RecallConfig(kind="induction", vocab=20, seq_len=30)
    b = sample_induction(cfg, 200, torch.Generator().manual_seed(1))
    for x, y in zip(b.x.tolist(), b.y.tolist()):
        first = x.index(19)
        assert first < 28 and x[-1] == 19 and 19 not in x[first + 1 : -1]
        assert y[:-1] == [IGNORE] * 29 and y[-1] == x[first + 1]


def test_recall_training_batches_hold_out_the_validation_set():
    task = Recall(RecallConfig(kind="induction", vocab=4, seq_len=5, val_size=40))  # a tiny space: collisions are common
    g = torch.Generator().manual_seed(0)
    held = {tuple(r) for r in task.val.x.tolist()}
    for _ in range(5):
        assert not held & {tuple(r) for r in task.train_batch(64, g).x.tolist()}
    assert task.heldout.skipped > 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_body_is_causal_on_tokens(kind):
    torch.manual_seed(0)
    model = SeqModel(SeqConfig(body=body(kind), vocab=16, n_out=16)).eval()
    x = torch.randint(0, 16, (2, 24))
    j = 13
    x2 = x.clone()
    x2[:, j] = (x2[:, j] + 1) % 16
    with torch.no_grad():
        a, b = model(x), model(x2)
    assert torch.allclose(a[:, :j], b[:, :j], atol=1e-6)  # a later token never changes an earlier output
    assert not torch.allclose(a[:, j:], b[:, j:])


@pytest.mark.parametrize("kind", KINDS)
def test_looped_once_is_the_plain_body(kind):
    torch.manual_seed(0)
    model = SeqModel(SeqConfig(body=body(kind), vocab=16, n_out=16, b=1)).eval()
    x = torch.randint(0, 16, (2, 12))
    with torch.no_grad():
        assert torch.equal(model(x), model.read_out(model.backbone(model.read_in(x))))


def test_seq_model_loops_exactly_like_the_regression_wrapper():
    torch.manual_seed(0)
    ref = Looped(LoopedConfig(d_in=5, n_embd=32, n_head=4, n_layer=1, n_positions=64, b=3, T=2)).eval()
    seq = SeqModel(SeqConfig(body=body("attention", n_layer=1), d_in=5, b=3, T=2)).eval()
    seq.load_state_dict(ref.state_dict(), strict=False)
    assert set(seq.state_dict()) == set(ref.state_dict())
    z = torch.randn(2, 10, 5)
    with torch.no_grad():
        assert torch.allclose(seq(z, keep=2), ref(z, keep=2), atol=1e-6)
        assert torch.allclose(seq(z, iters=7), ref(z, iters=7)[0], atol=1e-6)
    mask = torch.ones(10)
    mask[2:6] = 0
    with torch.no_grad():
        assert torch.allclose(seq(z, iters=5, keep=1, state_mask=mask), ref(z, iters=5, state_mask=mask), atol=1e-6)
    # the regression task's training predictions: the same for both models
    assert torch.allclose(train_predictions(seq, z), train_predictions(ref, z), atol=1e-6)


@pytest.mark.parametrize("kind", ["attention", "mamba", "ssd"])
def test_state_size_is_what_step_keeps(kind):
    cfg = body(kind)
    m = BODIES[kind].build(cfg).eval()
    n = 9
    with torch.no_grad():
        _, state = m.step(torch.randn(1, n, 32))
    tensors = [t for t in torch.utils._pytree.tree_leaves(state) if isinstance(t, torch.Tensor)]
    assert sum(t.numel() for t in tensors) == state_size(cfg, n)


def test_state_size_formulas_on_small_cases():
    conv = body("conv", d_model=4, n_layer=3, kernel_size=3)  # dilations 1, 2, 4: window 1 + 2 (1 + 2 + 4) = 15
    assert state_size(conv, 100) == 4 * 14
    assert state_size(body("mixer", d_model=8, ctx=64), 10) == 80 and state_size(body("mixer", d_model=8, ctx=64), 100) == 512
    hybrid, ssd1 = body("hybrid", n_layer=3), body("ssd", n_layer=2)
    assert state_size(hybrid, 10) == state_size(ssd1, 10) + 2 * 32 * 10  # two SSD layers + one attention layer


def test_selective_copying_in_the_mamba_papers_form():
    cfg = RecallConfig(kind="selective", vocab=10, seq_len=40, pairs=5)
    b = sample_selective(cfg, 100, torch.Generator().manual_seed(3))
    for x, y in zip(b.x.tolist(), b.y.tolist()):
        data = [t for t in x[:35] if t != 0]  # the data tokens of the noise area, in order
        assert len(data) == 5 and x[35:] == [9] * 5 and y[35:] == data and y[:35] == [IGNORE] * 35


@pytest.mark.parametrize("task", ["copy", "flip", "cumsum", "addition"])
def test_algorithmic_tasks_as_causal_sequences(task):
    from lib.tasks.algo_sequence import AlgoSequence
    from lib.tasks.algorithmic import AlgorithmicConfig, decode_number

    cfg = AlgorithmicConfig(task=task, V=8, length=6, limit=50, base=10, val_size=100)
    t = AlgoSequence(cfg)
    b = t.train_batch(16, torch.Generator().manual_seed(0))
    assert b.x.shape == b.y.shape == (16, t.seq_len) and int(b.x.max()) < t.vocab
    for x, y in zip(b.x.tolist(), b.y.tolist()):
        inp, out = x[: cfg.in_len], y[cfg.in_len :]
        assert y[: cfg.in_len] == [IGNORE] * cfg.in_len and x[cfg.in_len :] == [t.query] * cfg.out_len
        if task == "copy":
            assert out == inp
        elif task == "flip":
            assert out == inp[::-1]
        elif task == "cumsum":
            assert out == [sum(inp[: i + 1]) % cfg.V for i in range(len(inp))]
        else:  # the operands' digits are read back from the tokens: a + b
            digits = [d for d in inp if d < cfg.base or d == cfg.PLUS]
            cut = digits.index(cfg.PLUS)
            a, c = decode_number(digits[:cut] + [cfg.PAD], cfg), decode_number(digits[cut + 1 :] + [cfg.PAD], cfg)
            assert decode_number(out, cfg) == a + c
    model = SeqModel(SeqConfig(body=body("attention", ctx=t.seq_len), vocab=t.vocab, n_out=t.vocab))
    assert 0 <= t.evaluate(model)["val_acc"] <= 1 and t.loss(model, b).isfinite()


PROFILES = ("cpu", "gpu")


def profile(name):
    from lib.config import read_config
    from lib.paths import CONFIGS
    from lib.studies.grid import GridSettings

    raw, _ = read_config(CONFIGS / "block_task_grid" / f"{name}.yml")
    return GridSettings.load({k: v for k, v in raw.items() if k != "device"})


@pytest.mark.parametrize("name", PROFILES)
def test_every_model_of_a_profile_is_within_5_percent_of_the_target_with_wide_heads_and_no_spare_positions(name):
    from lib.studies import grid

    s = profile(name)
    for (t, lv), (_, task) in grid.tasks_of(s).items():
        for body in s.bodies:
            for looped in s.looped:
                cfg = grid.model_config(s, body, looped, task)
                n = grid.n_params(cfg)
                assert abs(n / s.params - 1) <= grid.PARAMS_TOL, (t, lv, body, looped, n)
                assert n == SeqModel(cfg).n_params()
                assert cfg.body.ctx == task.seq_len  # every body: a context of the task's length, no more
                if body in ("attention", "hybrid"):
                    assert cfg.body.d_model // cfg.body.n_head >= grid.MIN_HEAD_DIM and cfg.body.d_model % cfg.body.n_head == 0
    table = grid.model_table(s)
    assert table.params_gap_pct.abs().max() <= 100 * grid.PARAMS_TOL


def test_solve_width_takes_the_closest_fitting_width():
    from lib.studies.grid import solve_width

    quadratic = lambda w: 10 * w * w
    assert solve_width(quadratic, 10 * 37 * 37 + 1) == 37
    odd_only = lambda w: quadratic(w) if w % 2 else None  # a body that takes odd widths only
    assert solve_width(odd_only, 10 * 38 * 38) in (37, 39)
    assert solve_width(quadratic, 10) == 8  # below the narrowest width: the narrowest


def test_heads_are_at_least_16_wide_and_ssd_heads_divide_the_inner_width():
    from lib.studies.grid import heads, ssd_head

    assert [heads(w) for w in (15, 16, 31, 32, 48, 50, 64, 100)] == [1, 1, 1, 2, 3, 2, 4, 5]
    assert ssd_head(32) == 16 and ssd_head(36) == 18 and ssd_head(37) is None  # 74 has no divisor in 8..32
    assert all((2 * w) % ssd_head(w) == 0 for w in range(8, 200) if ssd_head(w))


def test_grid_counts_trains_scores_and_resumes(monkeypatch, tmp_path):
    import lib.studies.grid as grid
    from lib.paths import CHECKPOINTS

    monkeypatch.setattr(grid, "STUDY", f"test_grid_{tmp_path.name}")
    s = grid.GridSettings(bodies=("attention", "conv"), tasks=("induction", "linear"), params=4000, layers=1, b=2, lrs=(1e-3, 3e-3),
                          seeds=(0, 1), steps=6, steps_for={"linear": 4}, batch_size=8, warmup_steps=0, evals=2, device="cpu")
    assert len(grid.expand(s)) == 2 * 2 * 2 * 2 and grid.n_runs(s) == 2 * 2 * 2 * (2 + 1)
    try:
        cut = dataclasses.replace(s, tasks=("induction",))
        grid.run(cut)  # a cut grid
        folder = CHECKPOINTS / grid.STUDY
        before = {p: p.stat().st_mtime_ns for p in folder.glob("*.pt")}
        assert len(before) == grid.n_runs(cut)
        result = grid.run(s)  # resumes: the finished runs are loaded, not retrained
        assert all(p.stat().st_mtime_ns == t for p, t in before.items())
        assert len(list(folder.glob("*.pt"))) == grid.n_runs(s)
        table = result.table
        assert len(table) == 2 * 2 * 2 * 2 and table.score.between(-10, 1).all()
        assert (table.groupby(["task", "body", "looped"]).lr.nunique() == 1).all()  # one lr per cell, every seed
        assert set(table[table.task == "linear"].steps) <= {4, 5}  # the task's own cap (and its decay)
        assert (table.solved == table.samples_to_solve.notna()).all() and (table.solved != table.censored_at.notna()).all()
        assert table[~table.solved].censored_at.eq(table[~table.solved].samples).all()  # censored at the run's last evaluation
        assert (table.threshold > table.ceiling).all()
        looped = table[table.looped]
        assert looped.score_past_b.notna().all() and table[~table.looped].stability.isna().all()
        assert len(result.sweep) == 2 * 2 * 2 * 2 and set(result.sweep.lr) == {1e-3, 3e-3}
        assert {"score", "ceiling", "samples"} <= set(result.history.columns)
        long = grid.tidy(table)
        assert (long.length_factor == 1).sum() == len(table)
        extrapolated = long[long.length_factor > 1]
        assert set(extrapolated.body) == {"conv"} and set(extrapolated.task) == {"induction"}  # attention has n positions only
    finally:
        import shutil

        shutil.rmtree(CHECKPOINTS / grid.STUDY, ignore_errors=True)


@pytest.mark.parametrize("name", ["mqar", "induction", "selective_mamba", "selective_copy", "flip", "addition", "linear", "sparse_linear"])
def test_every_grid_task_trains_under_the_plateau_rule_on_a_metric_it_reports(name):
    from lib.studies.grid import TASKS, Cell, GridSettings, model_config

    gt = TASKS[name]["easy"]
    task = gt.build()
    s = GridSettings(params=4000, layers=1, steps=500, steps_for={name: 300}, min_steps_for={name: 120}, converge_window=2, device="cpu")
    model = SeqModel(model_config(s, "conv", False, task))
    metrics = task.evaluate(model)
    assert gt.metric in metrics and gt.mode in ("min", "max")
    direction = 1 if gt.mode == "max" else -1  # the score rises when the watched metric improves
    better = {**metrics, gt.metric: metrics[gt.metric] + direction * 0.01 * (100 if gt.metric == "val_error_pct" else 1)}
    assert gt.score(better) > gt.score(metrics)
    cfg = s.train_config(Cell("conv", False, name, "easy", 1e-3, 2))
    assert (cfg.converge_metric, cfg.converge_mode, cfg.converge_window) == (gt.metric, gt.mode, 2)
    assert (cfg.schedule, cfg.steps, cfg.min_steps, cfg.seed, cfg.lr) == ("wsd", 300, 120, 2, 1e-3)
    other = s.train_config(Cell("conv", False, "copy" if name != "copy" else "flip", "easy", 1e-3, 0))
    assert (other.steps, other.min_steps) == (500, 0)  # a task without its own: the defaults


def test_settings_refuse_unknown_names_in_one_line():
    from lib.config import ConfigError
    from lib.studies.grid import GridSettings

    with pytest.raises(ConfigError) as e:
        GridSettings.load({"bodies": ["transformerx"]})
    assert "\n" not in str(e.value) and "attention" in str(e.value) and "'transformerx'" in str(e.value)
    for bad, words in [({"tasks": ["parity"]}, "tasks must be among"), ({"steps_for": {"parity": 10}}, "keys must be task names"),
                       ({"lrs": [float("nan")]}, "lrs must be a finite number"), ({"lrs": [1e-3, float("inf")]}, "lrs must be"),
                       ({"backend": "slurm"}, "backend = .slurm.; allowed"), ({"levels": ["medium"]}, "levels must be among"),
                       ({"seeds": [0, 0]}, "must not repeat"), ({"min_steps_for": {"mqar": -1}}, "step counts >= 0"),
                       ({"converge_tol": float("nan")}, "must be finite"), ({"grad_clip": float("inf")}, "must be finite")]:
        with pytest.raises(ConfigError, match=words):
            GridSettings.load(bad)


def test_dry_run_keeps_the_shapes_and_cuts_the_work():
    s = profile("gpu")
    d = s.dry_run()
    assert (d.params, d.bodies, d.looped, d.layers, d.b, d.levels) == (s.params, s.bodies, s.looped, s.layers, s.b, s.levels[:1])
    assert d.tasks == s.tasks[:2] and d.seeds == s.seeds[:1] and d.lrs == s.lrs[:1] and d.device == "cpu" and d.workers == 1
    assert all(d.cap(t) == 2 for t in d.tasks) and d.steps_for == {}
