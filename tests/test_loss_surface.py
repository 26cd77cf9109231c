import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from lib.analysis import loss_surface as ls


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
    from lib.models.looped import Looped, LoopedConfig
    from lib.tasks.regression import InContextRegression

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
