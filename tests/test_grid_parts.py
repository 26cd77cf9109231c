"""The block x task grid's parts (#17): every body in one sequence model, recall tasks against
plain-Python oracles, state sizes against the states the bodies really keep."""
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


def test_width_is_solved_to_the_parameter_target():
    from lib.studies.grid import GridSettings, TASKS, model_config

    s = GridSettings(params=30_000)
    gt = TASKS["induction"]["easy"]
    task = gt.build()
    for kind in KINDS:
        for looped in (False, True):
            cfg = model_config(s, kind, looped, task)
            n = SeqModel(cfg).n_params()
            wider = SeqModel(SeqConfig(body=BodyConfig(**{**cfg.body.__dict__, "d_model": cfg.body.d_model + 16}),
                                       vocab=cfg.vocab, n_out=cfg.n_out, b=cfg.b, T=cfg.T)).n_params()
            assert abs(n - 30_000) <= abs(wider - 30_000), (kind, looped, n)  # no wider model is closer


def test_grid_counts_trains_scores_and_resumes(monkeypatch, tmp_path):
    import lib.studies.grid as grid
    from lib.paths import CHECKPOINTS

    monkeypatch.setattr(grid, "STUDY", f"test_grid_{tmp_path.name}")
    s = grid.GridSettings(bodies=("attention", "conv"), tasks=("induction", "linear"), params=4000, layers=1, b=2, lrs=(1e-3, 3e-3),
                          seeds=(0, 1), steps=6, batch_size=8, warmup_steps=0, evals=2, device="cpu")
    assert len(grid.expand(s)) == 2 * 2 * 2 * 2 and grid.n_runs(s) == 2 * 2 * 2 * (2 + 1)
    try:
        cut = grid.GridSettings(**{**s.__dict__, "tasks": ("induction",)})
        grid.run(cut)  # a cut grid
        folder = CHECKPOINTS / grid.STUDY
        before = {p: p.stat().st_mtime_ns for p in folder.glob("*.pt")}
        assert len(before) == grid.n_runs(cut)
        table, history = grid.run(s)  # resumes: the finished cells are loaded, not retrained
        assert all(p.stat().st_mtime_ns == t for p, t in before.items())
        assert len(list(folder.glob("*.pt"))) == grid.n_runs(s)
        assert len(table) == 2 * 2 * 2 * 2 and table.score.between(-10, 1).all()
        looped = table[table.looped]
        assert looped.score_past_b.notna().all() and table[~table.looped].stability.isna().all()
        assert (looped.stability.notna() == (looped.score >= grid.LEARNED)).all()  # stability only where the cell learned
        long = grid.tidy(table)
        assert set(long.length_factor) == {1, 2, 4} and (long.length_factor == 1).sum() == len(table)
        assert table[table.task == "induction"].score_len4x.notna().all()
        assert set(table.columns) >= {"body", "looped", "layers", "b", "params", "state_size", "task", "difficulty", "lr", "seed",
                                      "score", "score_past_b", "train_minutes", "samples_per_s"}
    finally:
        import shutil

        shutil.rmtree(CHECKPOINTS / grid.STUDY, ignore_errors=True)


def test_findings_call_equal_solved_cells_ties():
    import pandas as pd

    from lib.studies.grid import findings

    per_seed = {("a", False): [1.0] * 5, ("b", False): [1.0] * 5, ("b", True): [0.4, 0.45, 0.5, 0.55, 0.6]}
    table = pd.DataFrame([{"task": "t", "difficulty": "easy", "body": b, "looped": lp, "seed": i, "score": v}
                          for (b, lp), vs in per_seed.items() for i, v in enumerate(vs)])
    summ = pd.DataFrame([{"task": "t", "difficulty": "easy", "body": b, "looped": lp, "score": sum(vs) / 5, "lo": min(vs), "hi": max(vs),
                          "seeds": 5, "params": 100} for (b, lp), vs in per_seed.items()])
    text = findings(summ, table)
    assert "not apart from b" in text and "hurts b" in text  # 5 seeds a side: exact p = 2/252
    text = findings(summ, table[table.seed < 3])
    assert "hurts no body" in text and "descriptive only" in text  # 3 seeds a side: never apart


@pytest.mark.parametrize("name", ["mqar", "induction", "selective_mamba", "selective_copy", "flip", "addition", "linear", "sparse_linear"])
def test_every_grid_task_names_a_convergence_metric_it_reports(name):
    from lib.studies.grid import GridSettings, TASKS, model_config, train_config
    from lib.train import TrainConfig

    gt = TASKS[name]["easy"]
    task = gt.build()
    s = GridSettings(params=4000, layers=1, converge_tol=0.01, converge_window=2, min_steps=10, device="cpu")
    model = SeqModel(model_config(s, "conv", False, task))
    metrics = task.evaluate(model)
    assert gt.metric in metrics and gt.mode in ("min", "max")
    direction = 1 if gt.mode == "max" else -1  # the score rises when the watched metric improves
    better = {**metrics, gt.metric: metrics[gt.metric] + direction * 0.01 * (100 if gt.metric == "val_error_pct" else 1)}
    assert gt.score(better) > gt.score(metrics)
    cfg = TrainConfig.load(train_config(s, 1e-3, 0, gt))
    assert (cfg.converge_metric, cfg.converge_mode, cfg.converge_window, cfg.min_steps) == (gt.metric, gt.mode, 2, 10)
    assert TrainConfig.load(train_config(GridSettings(), 1e-3, 0, gt)).converge_metric is None  # no rule unless asked


def test_the_stopping_line_separates_solved_plateaued_and_capped_cells():
    import pandas as pd

    from lib.studies.grid import stopping_line

    summ = pd.DataFrame([
        {"task": "t", "body": "a", "looped": False, "score": 1.0, "steps": 300, "stop": "converged ×2"},
        {"task": "t", "body": "c", "looped": False, "score": 0.03, "steps": 400, "stop": "converged ×2"},
        {"task": "t", "body": "b", "looped": True, "score": 0.9, "steps": 700, "stop": "max_steps ×1, converged ×1"},
        {"task": "u", "body": "a", "looped": False, "score": 0.2, "steps": 700, "stop": "max_steps ×2"},
    ])
    line = stopping_line(summ)
    assert line.startswith("- Stopping: 1/4 cells converged on every seed at a score ≥ 0.5")
    assert "1 converged on a plateau below 0.5" in line and "— t: c;" in line
    assert "700-step cap stopped at least one seed of 2" in line and "— t: b (looped); u: a." in line
    assert stopping_line(summ.iloc[:1]) == "- Stopping: 1/1 cells converged on every seed at a score ≥ 0.5."
