import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from lib.analysis import labels
from lib.analysis import loss_surface as ls
from lib.config import ConfigError
from lib.models.looped import Looped, LoopedConfig
from lib.studies.looped import surface_batch, surface_loss
from lib.tasks.regression import InContextRegression
from lib.train import TrainConfig, train
from lib.viz import loss_surface as draw


def tiny_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


BATCH = (torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)),
         torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))


def dense_hessian(model, params):
    flat = ls.flatten(params)
    f = lambda v: ls.loss_at(model, mse, BATCH, ls.unflatten(v, params))
    return torch.autograd.functional.hessian(f, flat)


def test_hvp_equals_dense_hessian_times_v():
    model = tiny_mlp()
    p = ls.trainable(model)
    H = dense_hessian(model, p)
    v = ls.unflatten(torch.randn(H.shape[0], dtype=torch.float64), p)
    torch.testing.assert_close(ls.flatten(ls.hvp(model, mse, BATCH, p, v)), H @ ls.flatten(v))


def test_top_k_eigenpairs_match_eigh():
    model = tiny_mlp()
    p = ls.trainable(model)
    H = dense_hessian(model, p)
    evals, evecs = torch.linalg.eigh(H)
    order = evals.abs().argsort(descending=True)
    values, vectors = ls.hessian_top_k(model, mse, BATCH, p, k=2, iters=500, tol=1e-12)
    for i in range(2):
        assert values[i] == pytest.approx(float(evals[order[i]]), rel=1e-5)
        cos = float(ls.flatten(vectors[i]) @ evecs[:, order[i]])
        assert abs(cos) == pytest.approx(1.0, abs=1e-4)
        assert float(ls.norm(vectors[i])) == pytest.approx(1.0)


def test_filter_normalised_directions():
    model = nn.Sequential(nn.Conv1d(2, 5, 3), nn.Flatten(), nn.Linear(5 * 4, 3), nn.LayerNorm(3))
    p = ls.trainable(model)
    (d,) = ls.random_directions(p, k=1)
    for n, w in p.items():
        if w.dim() <= 1:
            assert (d[n] == 0).all(), n
        else:
            torch.testing.assert_close(d[n].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1))


@pytest.mark.parametrize("path", ["loop", "inplace", "vmap"])
def test_surface_matches_explicit_perturbations_and_leaves_the_model_alone(path):
    model = tiny_mlp()
    model.train()
    before = {n: t.clone() for n, t in model.state_dict().items()}
    centre = ls.trainable(model)
    d1, d2 = ls.random_directions(centre, k=2)
    alphas, betas = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3)
    df = ls.surface(model, mse, BATCH, centre, d1, d2, alphas, betas, path=path, chunk=4)
    assert len(df) == 15 and df["loss"].notna().all()
    assert df[(df.alpha == 0) & (df.beta == 0)]["loss"].item() == pytest.approx(float(mse(model, BATCH).detach()))
    for a, b in ((1.0, 0.5), (-0.5, -0.5)):
        twin = tiny_mlp()
        with torch.no_grad():
            for n, t in twin.named_parameters():
                t.copy_(centre[n] + a * d1[n] + b * d2[n])
        assert df[(df.alpha == a) & (df.beta == b)]["loss"].item() == pytest.approx(float(mse(twin, BATCH).detach()))
    assert model.training and all(torch.equal(before[n], t) for n, t in model.state_dict().items())


def test_surface_resumes_only_missing_points():
    model = tiny_mlp()
    centre = ls.trainable(model)
    d1, d2 = ls.random_directions(centre, k=2)
    full = ls.surface(model, mse, BATCH, centre, d1, d2, np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    partial = full.copy()
    partial.loc[[1, 2], "loss"] = np.nan
    partial.loc[0, "loss"] = -7.0  # a kept value is not recomputed
    again = ls.surface(model, mse, BATCH, centre, d1, d2, np.array([0.0, 1.0]), np.array([0.0, 1.0]), done=partial)
    assert again.loc[0, "loss"] == -7.0
    np.testing.assert_allclose(again.loc[1:, "loss"], full.loc[1:, "loss"])


def test_trajectory_pca_recovers_a_plane():
    p = ls.trainable(tiny_mlp())
    u, v = ls.random_directions(p, k=2, seed=3)
    snaps = [ls.combine(p, (float(np.cos(t)), u), (float(np.sin(2 * t)), v)) for t in np.linspace(0, 3, 12)]
    centre = ls.mean_params(snaps)
    dirs, explained = ls.trajectory_pca(snaps, centre)
    assert explained.sum() == pytest.approx(1.0)
    coords = ls.project(snaps, centre, *dirs)
    rebuilt = [ls.combine(centre, (c[0], dirs[0]), (c[1], dirs[1])) for c in coords]
    for s, r in zip(snaps, rebuilt):
        torch.testing.assert_close(ls.flatten(s), ls.flatten(r))


def test_summary_on_a_bowl():
    a, b = np.meshgrid(np.linspace(-1, 1, 21), np.linspace(-1, 1, 21))
    df = pd.DataFrame({"alpha": a.ravel(), "beta": b.ravel(), "loss": (1 + a**2 + b**2).ravel()})
    s = ls.summary(df, radius=0.5, eigenvalues=[2.0, 2.0])
    assert s["centre_loss"] == 1 and s["min_loss"] == 1
    assert s["basin_fraction"] == pytest.approx(((a**2 + b**2) < 1).mean())
    assert s["eps_sharpness"] == pytest.approx(0.25, abs=0.01) and s["lambda_1"] == 2.0
    # scale-free: the same bowl with 10x the loss has the same relative numbers
    s10 = ls.summary(df.assign(loss=10 * df["loss"]), radius=0.5, eigenvalues=[20.0, 20.0])
    for k in ("rel_sharpness", "basin_fraction", "rel_lambda_1"):
        assert s10[k] == pytest.approx(s[k])


def test_trajectory_grid_spans_the_trajectory_and_holds_the_centre():
    coords = np.array([[-3.0, 5.0], [-1.0, 2.0], [0.2, 0.1]])
    a, b = ls.trajectory_grid(coords, resolution=11, margin=0.25)
    assert 0.0 in a and 0.0 in b
    assert a.min() < -3.0 and a.max() > 0.2 and b.min() < 0.0 and b.max() > 5.0
    assert a.max() - a.min() == pytest.approx(1.5 * 3.2) and b.max() - b.min() == pytest.approx(1.5 * 5.0)


def test_surface_paths_agree_on_a_looped_transformer():
    """The fast paths (in-place scratch model, inference mode; vmap over points) give the loop's numbers
    on the model the study uses: a looped transformer with SDPA and its loss window."""
    torch.manual_seed(0)
    model = Looped(LoopedConfig(d_in=3, n_embd=16, n_head=2, n_positions=12, b=3, T=2))
    task = InContextRegression.of("linear", 3, 6, 8)
    batch = task.train_batch(8, torch.Generator().manual_seed(0), 0)
    centre = ls.trainable(model)
    d1, d2 = ls.random_directions(centre, k=2)
    grid = np.linspace(-0.5, 0.5, 3)
    ref = ls.surface(model, task.loss, batch, centre, d1, d2, grid, grid, path="loop")
    for path in ("inplace", "vmap"):
        df = ls.surface(model, task.loss, batch, centre, d1, d2, grid, grid, path=path, chunk=4)
        np.testing.assert_allclose(df["loss"], ref["loss"], rtol=1e-5)
    low = ls.surface(model, task.loss, batch, centre, d1, d2, grid, grid, path="inplace", bf16=True)
    np.testing.assert_allclose(low["loss"], ref["loss"], rtol=0.05)  # bfloat16: ~3 significant digits
    with pytest.raises(ValueError, match="path"):
        ls.surface(model, task.loss, batch, centre, d1, d2, grid, grid, path="magic")


# --- filter normalisation of every kind of direction ---

def conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 5, 3), nn.Flatten(), nn.Linear(5 * 4, 3), nn.LayerNorm(3))


def conv_loss(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


CONV_BATCH = (torch.randn(8, 2, 6, generator=torch.Generator().manual_seed(3)),
              torch.randn(8, 3, generator=torch.Generator().manual_seed(4)))


def assert_filter_normalised(d: dict, params: dict):
    for n, w in params.items():
        if w.dim() <= 1:
            assert (d[n] == 0).all(), n
        else:  # each filter (a conv filter, a linear row) has the norm of the same filter of the weights
            torch.testing.assert_close(d[n].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1))


def centre_of(model, loss_fn, batch, snapshots=(), resolution=5):
    params = ls.trainable(model)
    return ls.Centre(model, loss_fn, batch, params, list(snapshots), 0, np.linspace(-1, 1, resolution))


def trajectory(params, n=6):
    """Snapshots wandering off `params` along two random directions (a plane plus a little noise)."""
    u, v = ls.random_directions(params, k=2, seed=7)
    g = torch.Generator().manual_seed(8)
    return [{k: t + 0.3 * i * u[k] + 0.1 * i**0.5 * v[k] + 1e-3 * torch.randn(t.shape, generator=g) for k, t in params.items()}
            for i in range(n)]


@pytest.mark.parametrize("kind", ["hessian", "random", "pca"])
def test_every_kind_of_direction_can_be_filter_normalised(kind):
    model = conv_net()
    params = ls.trainable(model)
    c = centre_of(model, conv_loss, CONV_BATCH, trajectory(params))
    plane = ls.DIRECTIONS[kind](c, ls.SurfaceSettings(normalise="filter", hessian_iters=5))
    for d in (plane.d1, plane.d2):
        assert_filter_normalised(d, params)
    if kind == "pca":  # the grid still spans the trajectory, projected on the normalised plane
        assert plane.alphas.min() <= plane.trajectory[:, 0].min() and plane.alphas.max() >= plane.trajectory[:, 0].max()


def test_without_normalisation_hessian_and_pca_directions_stay_unit_norm():
    model = conv_net()
    params = ls.trainable(model)
    c = centre_of(model, conv_loss, CONV_BATCH, trajectory(params))
    s = ls.SurfaceSettings(hessian_iters=5)
    for kind in ("hessian", "pca"):
        plane = ls.DIRECTIONS[kind](c, s)
        assert float(ls.norm(plane.d1)) == pytest.approx(1.0, rel=1e-5) and float(ls.norm(plane.d2)) == pytest.approx(1.0, rel=1e-5)
    assert ls.DIRECTIONS["hessian"](c, s).eigenvalues == c.hessian(5)[0]
    assert ls.pca_plane(centre_of(model, conv_loss, CONV_BATCH, trajectory(params, n=2)), s) is None  # < 3 snapshots: no plane


def test_filter_normalise_scales_any_direction_filter_by_filter():
    params = ls.trainable(conv_net())
    direction = {n: torch.randn(t.shape, generator=torch.Generator().manual_seed(9)) for n, t in params.items()}
    assert_filter_normalised(ls.filter_normalise(direction, params), params)
    # a direction already normalised is kept (random directions are drawn normalised)
    (d,) = ls.random_directions(params, k=1)
    for n in params:
        torch.testing.assert_close(ls.filter_normalise(d, params)[n], d[n])


# --- the basin's radius, off the grid ---

def test_crossing_on_a_quadratic_is_exact_whatever_the_grid():
    """loss(r) = c (1 + (r/s)^2) first reaches 2c at r = s sqrt(2 - 1) = s."""
    c, s = 0.7, 0.37
    f = lambda r: c * (1 + (r / s) ** 2)
    for radii in (np.linspace(0.25, 1.0, 4), np.linspace(0.1, 1.0, 10), np.array([0.9])):
        assert ls.crossing(f, 2 * c, radii, f(radii), tol=1e-6) == pytest.approx(s, rel=1e-5)
    far = np.linspace(0.05, 0.2, 4)  # no sample reaches the level: the search goes past the grid
    assert ls.crossing(f, 2 * c, far, f(far), tol=1e-6) == pytest.approx(s, rel=1e-5)
    flat = lambda r: c
    assert ls.crossing(flat, 2 * c, far, np.full(4, c), max_radius=10.0) == math.inf


def test_crossing_takes_the_first_crossing():
    f = lambda r: 3.0 if 0.4 <= r <= 0.6 else 1.0  # a wall, then a dip back below the level
    radii = np.array([0.2, 0.5, 0.8])
    assert ls.crossing(f, 2.0, radii, np.array([f(r) for r in radii]), tol=1e-6) == pytest.approx(0.4, abs=1e-5)


class Bowl(nn.Module):
    """A quadratic bowl around W0: loss = c (1 + ((w - W0) . e1 / s1)^2 + ((w - W0) . e2 / s2)^2)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[0.3, -0.2]], dtype=torch.float64))

    def forward(self, scales):
        return self.w


W0 = torch.tensor([[0.3, -0.2]], dtype=torch.float64)


def bowl_loss(model, scales):
    dw = (model(scales) - W0)[0]
    return 0.5 * (1 + (dw[0] / scales[0]) ** 2 + (dw[1] / scales[1]) ** 2)


@pytest.mark.parametrize("path", ["loop", "inplace"])
def test_basin_radii_on_a_quadratic_bowl(path):
    """The radius where the loss doubles is s_i along e_i, to the bisection's tolerance, with a grid
    step of 0.5 (s1 = 0.37 between grid points, s2 = 1.3 beyond the grid)."""
    model, scales = Bowl(), torch.tensor([0.37, 1.3], dtype=torch.float64)
    centre = ls.trainable(model)
    e1, e2 = {"w": torch.tensor([[1.0, 0.0]], dtype=torch.float64)}, {"w": torch.tensor([[0.0, 1.0]], dtype=torch.float64)}
    grid = np.linspace(-1, 1, 5)
    df = ls.surface(model, bowl_loss, scales, centre, e1, e2, grid, grid, path=path)
    r = ls.basin_radii(model, bowl_loss, scales, centre, e1, e2, df, path=path, tol=1e-6)
    assert r["basin_radius_1"] == pytest.approx(0.37, rel=1e-5)
    assert r["basin_radius_2"] == pytest.approx(1.3, rel=1e-5)
    assert r["basin_radius"] == pytest.approx((0.37 + 1.3) / 2, rel=1e-5)


# --- the study: centre loss against the run's own validation loss ---

def small_study(steps=60):
    """A small looped model trained by the project's loop, as a Study-like object."""
    task = InContextRegression.of("linear", 3, 6, 48)
    cfg = LoopedConfig(d_in=3, n_embd=16, n_head=2, n_positions=12, b=2, T=2)
    torch.manual_seed(0)
    model = Looped(cfg)
    history = train(model, task, TrainConfig(steps=steps, batch_size=16, lr=3e-3, eval_every=steps // 2, device="cpu", compile=False,
                                             snapshot_every=0))
    history = history.assign(run=cfg.name, seed=0)
    return SimpleNamespace(task=task, configs=[cfg], models={(cfg.name, 0): model}, history=history, seeds=[0])


@pytest.fixture(scope="module")
def study():
    torch.set_num_threads(1)
    return small_study()


def run_surfaces(study, **settings):
    s = ls.SurfaceSettings(directions=["random"], resolution=3, **settings)
    return ls.study_surfaces(study, s, "cpu", loss=surface_loss, fresh=surface_batch, snapshots=lambda *a: [])


def test_centre_loss_is_the_validation_loss_on_the_validation_prompts(study):
    res = run_surfaces(study, surface_prompts="validation")
    assert res.n_prompts == 48
    checks = ls.centre_checks(res.summary)
    assert checks.within.all() and checks.gap.abs().max() < 1e-5
    assert study.history.val_loss.iloc[-1] == pytest.approx(res.summary.centre_loss.iloc[0], rel=1e-5)
    assert res.summary.basin_radius.notna().all() and (res.summary.basin_radius > 0).all()
    assert {"contours_random", "slices_random", "surface_3d"} <= set(draw.figures(res))
    # fresh prompts are another sample: a different centre loss, and the check reports its gap
    fresh = run_surfaces(study, surface_batch=4)
    gap = ls.centre_checks(fresh.summary).gap.iloc[0]
    assert fresh.n_prompts == 4 and gap != pytest.approx(0.0, abs=1e-4)
    assert ls.centre_checks(fresh.summary).within.iloc[0] == (abs(gap) <= 0.02)
    assert ("does not reproduce" in ls.centre_text(fresh)) == (abs(gap) > 0.02)


# --- verdicts on hand-made tables ---

def hand_summary(looped_vals, plain_vals, kind="random", val=(0.1, 0.1), runs=("looped-L1-b5-T10", "tf-L2")):
    rows = [{"run": runs[0], "seed": i, "directions": kind, "looped": True, "rel_sharpness": v, "basin_fraction": 0.5,
             "centre_loss": val[0], "history_val_loss": val[0]} for i, v in enumerate(looped_vals)]
    rows += [{"run": runs[1], "seed": i, "directions": kind, "looped": False, "rel_sharpness": v, "basin_fraction": 0.5,
              "centre_loss": val[1], "history_val_loss": val[1]} for i, v in enumerate(plain_vals)]
    return pd.DataFrame(rows)


def hand_history(summary, stop="converged"):
    return summary.drop_duplicates(["run", "seed"])[["run", "seed"]].assign(step=100, stop_reason=stop)


def steeper(verdicts, kind="random"):
    return next(v for v in verdicts if "steeper" in v.claim and kind in v.claim)


def test_steeper_verdict_follows_the_evidence():
    up = hand_summary([2.0, 2.1, 2.2, 2.3, 2.4], [1.0, 1.1, 1.2, 1.3, 1.4])
    assert steeper(ls.verdicts(up, hand_history(up))).label == labels.REPRODUCED
    down = hand_summary([1.0, 1.1, 1.2, 1.3, 1.4], [2.0, 2.1, 2.2, 2.3, 2.4])
    assert steeper(ls.verdicts(down, hand_history(down))).label == labels.CONTRADICTED
    assert steeper(ls.verdicts(down, hand_history(down, "max_steps"))).label == labels.NOT_AT_BUDGET  # unfinished runs
    few = hand_summary([2.0, 2.1, 2.2], [1.0, 1.1, 1.2])
    v = steeper(ls.verdicts(few, hand_history(few)))
    assert v.label == labels.NOT_AT_BUDGET and v.n_seeds == 3 and v.ours == pytest.approx(2.1)
    assert v.interval[0] < 2.1 < v.interval[1]


def test_matched_comparisons_only_pair_models_of_close_validation_loss():
    close = hand_summary([2.0, 2.1, 2.2, 2.3, 2.4], [1.0, 1.1, 1.2, 1.3, 1.4], val=(0.105, 0.1))
    assert ls.matched_pairs(close, 0.1) == [("looped-L1-b5-T10", "tf-L2")]
    assert steeper(ls.verdicts(close, hand_history(close), match=0.1)).label == labels.REPRODUCED
    apart = hand_summary([2.0, 2.1, 2.2, 2.3, 2.4], [1.0, 1.1, 1.2, 1.3, 1.4], val=(0.2, 0.1))
    assert ls.matched_pairs(apart, 0.1) == []
    v = steeper(ls.verdicts(apart, hand_history(apart), match=0.1))
    assert v.label == labels.UNTESTED and v.n_seeds == 0
    assert steeper(ls.verdicts(apart, hand_history(apart))).label == labels.REPRODUCED  # pooled: compared anyway


def test_centre_checks_classify_the_gap():
    s = pd.DataFrame({"run": ["a", "a", "b"], "seed": [0, 0, 0], "directions": ["random", "pca", "random"],
                      "centre_loss": [1.01, 1.01, 1.05], "history_val_loss": [1.0, 1.0, 1.0]})
    checks = ls.centre_checks(s)
    assert list(checks.run) == ["a", "b"] and list(checks.within) == [True, False]
    assert checks.gap.tolist() == pytest.approx([0.01, 0.05])


def test_reference_beside_keeps_every_reference_model():
    table = ls.reference_beside(hand_summary([1.0], [1.0], val=(0.3, 0.2)))
    assert len(table) == 5 and table.set_index("run").loc["tf-L2", "our validation loss"] == pytest.approx(0.2)
    assert math.isnan(table.set_index("run").loc["looped-L1-b15-T10", "our centre loss"])


def test_surface_settings_are_checked():
    assert set(ls.DIRECTIONS) == {"hessian", "random", "pca"}
    s = ls.SurfaceSettings.of({"normalise": "none", "surface_prompts": "fresh", "span": 1, "unrelated": 3})
    assert s.normalise == "none" and s.span == 1
    for bad in ({"directions": ["hessian", "sharpest"]}, {"normalise": "layer"}, {"surface_prompts": "train"},
                {"span": math.inf}, {"match_val_loss": 0.0}, {"large_run": "tf-L2", "large_resolution": 0}):
        with pytest.raises(ConfigError):
            ls.SurfaceSettings.load(bad)


def test_take_slices_every_tensor_of_a_batch():
    task = InContextRegression.of("linear", 3, 6, 10)
    b = ls.take(task.val, 4, "cpu")
    assert type(b) is type(task.val) and b.z.shape[0] == 4 and b.y.shape[0] == 4 and b.d == task.val.d
    assert ls.take(task.val, None, "cpu").y.shape[0] == 10
