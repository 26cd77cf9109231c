import pytest
import torch

from lib.curriculum import Ramp
from lib.models.looped import Looped, LoopedConfig
from lib.studies import looped
from lib.tasks.regression import (
    InContextRegression, RegressionConfig, averaging, least_squares, nearest_neighbours, sample_xy, tokens,
)
from lib.train import TrainConfig, build, train


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_layout_puts_x_at_even_and_y_in_the_first_coordinate_of_odd_tokens():
    xs, ys = sample_xy(RegressionConfig(n_dims=6), 4, 5, 3, gen())
    z = tokens(xs, ys)
    assert z.shape == (4, 10, 6)
    assert torch.equal(z[:, 0::2], xs) and torch.equal(z[:, 1::2, 0], ys) and (z[:, 1::2, 1:] == 0).all()
    assert (xs[..., 3:] == 0).all() and (xs[..., :3] != 0).all()  # only d = 3 dims active


def test_linear_targets_are_an_exact_linear_function_of_x():
    xs, ys = sample_xy(RegressionConfig(kind="linear", n_dims=8), 16, 12, 5, gen())
    w = torch.linalg.lstsq(xs[..., :5].double(), ys[..., None].double()).solution
    torch.testing.assert_close((xs[..., :5].double() @ w)[..., 0], ys.double(), atol=1e-5, rtol=1e-5)


def test_sparse_weights_have_the_stated_support_within_active_dims():
    cfg = RegressionConfig(kind="sparse_linear", n_dims=10, sparsity=3)
    xs, ys = sample_xy(cfg, 64, 20, 6, gen())
    w = torch.linalg.lstsq(xs[..., :10].double()[..., :6], ys[..., None].double()).solution[..., 0]
    assert ((w.abs() > 1e-6).sum(-1) == 3).all()


def test_decision_tree_matches_a_python_walk():
    cfg = RegressionConfig(kind="decision_tree", n_dims=4, depth=3)
    g = gen(3)
    xs, ys = sample_xy(cfg, 5, 7, 4, g)
    # regenerate the same trees with the same generator draws
    g = gen(3)
    xs2 = torch.randn(5, 7, 4, generator=g)
    coords = torch.randint(0, 4, (5, 7), generator=g)
    leaves = torch.randn(5, 8, generator=g)
    assert torch.equal(xs, xs2)
    for n in range(5):
        for i in range(7):
            node = 0
            while node < 7:
                node = 2 * node + (2 if xs[n, i, coords[n, node]] > 0 else 1)
            assert ys[n, i] == leaves[n, node - 7]


def test_relu_net_matches_its_formula():
    cfg = RegressionConfig(kind="relu_2nn", n_dims=4, hidden=10)
    g = gen(1)
    xs, ys = sample_xy(cfg, 3, 6, 4, g)
    g = gen(1)
    torch.randn(3, 6, 4, generator=g)
    w1, w2 = torch.randn(3, 4, 10, generator=g), torch.randn(3, 10, generator=g)
    for n in range(3):
        ref = (2 / 10) ** 0.5 * torch.relu(xs[n] @ w1[n]) @ w2[n]
        torch.testing.assert_close(ys[n], ref)


@pytest.mark.parametrize("kind", ["linear", "noisy_linear", "sparse_linear", "decision_tree", "relu_2nn"])
def test_normaliser_is_the_mean_square_of_y(kind):
    cfg = RegressionConfig(kind=kind, n_dims=10)
    _, ys = sample_xy(cfg, 4000, 10, 10, gen())
    assert ys.pow(2).mean().item() == pytest.approx(cfg.normaliser(10), rel=0.08)


def naive_baselines(xs, ys):
    n, k, _ = xs.shape
    ls, avg, nn3 = torch.zeros(n, k), torch.zeros(n, k), torch.zeros(n, k)
    for b in range(n):
        for i in range(1, k):
            X, Y = xs[b, :i].double(), ys[b, :i].double()
            ls[b, i] = float(xs[b, i].double() @ (torch.linalg.pinv(X) @ Y))
            avg[b, i] = float(xs[b, i] @ (Y[:, None].float() * xs[b, :i]).mean(0))
            d = ((xs[b, :i] - xs[b, i]) ** 2).sum(-1)
            nn3[b, i] = ys[b, :i][d.argsort()[:3]].mean()
    return ls, avg, nn3


def test_baselines_match_naive_loops():
    xs, ys = sample_xy(RegressionConfig(n_dims=4), 3, 9, 4, gen(5))
    ls, avg, nn3 = naive_baselines(xs, ys)
    torch.testing.assert_close(least_squares(xs, ys), ls, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(averaging(xs, ys), avg, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(nearest_neighbours(xs, ys, 3), nn3, atol=1e-6, rtol=1e-6)


def test_least_squares_is_exact_once_k_exceeds_d():
    task = InContextRegression(RegressionConfig(n_dims=5, val_size=200), Ramp(5), Ramp(12))
    base = looped.baselines(task)
    ls = base[base.model == "least squares"].set_index("k")["error"]
    assert ls.loc[6:].max() < 1e-8 and ls.loc[0] == pytest.approx(1, rel=0.2)


def test_curriculum_ramps():
    r = Ramp(end=20, start=5, inc=1, every=5000)
    assert [r.at(s) for s in (0, 4999, 5000, 74_999, 75_000, 10**6)] == [5, 5, 6, 19, 20, 20]
    assert Ramp(end=41).at(0) == 41
    task = InContextRegression(RegressionConfig(n_dims=20, val_size=8), Ramp(20, 5, 1, 5000), Ramp(41, 11, 2, 5000), Ramp(20, 15, 2, 500))
    b = task.train_batch(4, gen(), step=10_000)
    assert b.z.shape == (4, 2 * 15, 20) and b.d == 7 and b.loops == 20
    assert (b.z[:, 0::2, 7:] == 0).all()
    assert task.train_batch(4, gen(), step=0).loops == 15


def test_a_tiny_looped_model_learns_in_context():
    # d = 1: y = w x; after a few pairs the model must beat predicting 0 (error ~1) at the last position
    task = InContextRegression(RegressionConfig(n_dims=1, val_size=256), Ramp(1), Ramp(6))
    cfg = LoopedConfig(d_in=1, n_embd=32, n_head=2, n_positions=12, b=3, T=2)
    tcfg = TrainConfig(steps=400, lr=3e-3, eval_every=200, weight_decay=0.0, schedule="constant")
    hist = train(build(Looped, cfg, 0), task, tcfg)
    assert hist["val_error"].iloc[-1] < 0.8 and hist["val_error"].iloc[-1] < 0.6 * hist["val_error"].iloc[0]
