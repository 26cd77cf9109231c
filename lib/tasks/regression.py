"""In-context regression: a fresh random function per prompt, learned from the prompt alone.

Ref: Garg et al. 2022; Yang et al. 2023 (arXiv 2311.12424); references/looped_transformers.md
section 1. A prompt of k pairs is laid out as 2k tokens of width D (the model's input width):

    Z = [x_1, y~_1, x_2, y~_2, ..., x_k, y~_k],   y~_i = (y_i, 0, ..., 0)

x_i ~ N(0, I_d) with coordinates >= d zeroed (d <= D; a curriculum grows d). The prediction of
y_i is read at x_i's position (even index), so with a causal model it sees the pairs j < i and
x_i: every prefix trains at once. Error is squared error divided by the task's normaliser
E[y^2] (d for linear, noisy linear and the ReLU net; the sparsity for sparse linear; 1 for
trees), so predicting 0 scores about 1. The reference's student report divides by d twice:
its numbers are (our error) / d.

Kinds: linear (y = w.x), noisy_linear (+ N(0, noise^2)), sparse_linear (w with `sparsity`
non-zero coordinates among the first d), decision_tree (depth `depth`, a random coordinate per
node, right iff x_c > 0, leaves N(0, 1)), relu_2nn (sqrt(2/hidden) * W2 . relu(W1 x), weights N(0, 1)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd
import torch

from lib.config import Config
from lib.curriculum import Ramp

KINDS = ("linear", "noisy_linear", "sparse_linear", "decision_tree", "relu_2nn")


@dataclass(frozen=True)
class RegressionConfig(Config):
    kind: str = "linear"
    n_dims: int = 20  # token width D (d <= D is active)
    noise: float = 0.1  # noisy_linear
    sparsity: int = 3  # sparse_linear
    depth: int = 4  # decision_tree
    hidden: int = 100  # relu_2nn
    val_size: int = 1280  # evaluation prompts (fixed set)
    val_seed: int = 10_000

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.n_dims < 1 or self.val_size < 1 or self.sparsity < 1 or self.depth < 1 or self.hidden < 1:
            raise ValueError("n_dims, val_size, sparsity, depth, hidden must be >= 1")

    def normaliser(self, d: int) -> float:
        return {"sparse_linear": min(self.sparsity, d), "decision_tree": 1}.get(self.kind, d)


class RegressionBatch(NamedTuple):
    z: torch.Tensor  # (B, 2k, D) tokens
    y: torch.Tensor  # (B, k) targets
    d: int  # active dims
    loops: int | None  # training loops b for this step (None: the model's own b)


def sample_xy(cfg: RegressionConfig, n: int, k: int, d: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """xs (n, k, D), ys (n, k) for n fresh functions of the task's kind with d active dims."""
    D, dev = cfg.n_dims, gen.device  # drawn where the generator lives (the training device)
    active = (torch.arange(D, device=dev) < d).float()  # (D,)
    xs = torch.randn(n, k, D, generator=gen, device=dev) * active
    if cfg.kind in ("linear", "noisy_linear", "sparse_linear"):
        w = torch.randn(n, D, generator=gen, device=dev) * active
        if cfg.kind == "sparse_linear":  # keep `sparsity` random coordinates among the active ones
            keep = torch.rand(n, d, generator=gen, device=dev).argsort(dim=1)[:, : cfg.sparsity]
            w = w * torch.zeros(n, D, device=dev).scatter_(1, keep, 1.0)
        ys = torch.einsum("nkd,nd->nk", xs, w)
        if cfg.kind == "noisy_linear":
            ys = ys + cfg.noise * torch.randn(n, k, generator=gen, device=dev)
    elif cfg.kind == "relu_2nn":
        w1 = torch.randn(n, D, cfg.hidden, generator=gen, device=dev) * active[:, None]
        w2 = torch.randn(n, cfg.hidden, generator=gen, device=dev)
        ys = (2 / cfg.hidden) ** 0.5 * torch.einsum("nkh,nh->nk", torch.relu(xs @ w1), w2)
    else:  # decision_tree: node i has children 2i+1 (x_c <= 0) and 2i+2 (x_c > 0)
        n_inner = 2**cfg.depth - 1
        coords = torch.randint(0, d, (n, n_inner), generator=gen, device=dev)
        leaves = torch.randn(n, 2**cfg.depth, generator=gen, device=dev)
        node = torch.zeros(n, k, dtype=torch.long, device=dev)
        for _ in range(cfg.depth):
            c = coords.gather(1, node)  # (n, k) coordinate tested at each sample's node
            right = xs.gather(2, c[..., None]).squeeze(-1) > 0
            node = 2 * node + 1 + right.long()
        ys = leaves.gather(1, node - n_inner)
    return xs, ys


def tokens(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(n, k, D), (n, k) -> (n, 2k, D): x_1, y~_1, x_2, y~_2, ..."""
    n, k, D = xs.shape
    z = torch.zeros(n, 2 * k, D, dtype=xs.dtype, device=xs.device)
    z[:, 0::2] = xs
    z[:, 1::2, 0] = ys
    return z


def train_predictions(model, z: torch.Tensor, b: int | None = None) -> torch.Tensor:
    """(T', B, N): the predictions in the training loss of a looped model (lib.models.looped.Looped or
    lib.models.seq.SeqModel), T' = min(T, b); b from a curriculum or cfg.b.

    Uses only model.cfg and model(...), so it works on a compiled model and on a stand-in that
    evaluates the model at other weights (the loss-surface study).
    """
    b = model.cfg.b if b is None else b
    window = min(model.cfg.T, b)
    return model(z, iters=b, keep=window, grad_last=window)


class InContextRegression:
    """The task object for the training loop, with curricula over dims, points and loops."""

    def __init__(self, cfg: RegressionConfig, dims: Ramp, points: Ramp, loops: Ramp | None = None):
        if dims.end > cfg.n_dims:
            raise ValueError(f"dims end {dims.end} exceeds n_dims {cfg.n_dims}")
        self.cfg, self.dims, self.points, self.loops = cfg, dims, points, loops
        self.spec = (cfg, dims, points, loops)  # what identifies this task in a checkpoint key
        self.d, self.k = dims.end, points.end
        xs, ys = sample_xy(cfg, cfg.val_size, self.k, self.d, torch.Generator().manual_seed(cfg.val_seed))
        self.val = RegressionBatch(tokens(xs, ys), ys, self.d, None)
        self.val_xs = xs

    @classmethod
    def of(cls, kind: str, n_dims: int, points: int, val_size: int, **extra) -> "InContextRegression":
        """A task without curricula: d = n_dims active dims, k = points pairs."""
        cfg = RegressionConfig.load({"kind": kind, "n_dims": n_dims, "val_size": val_size, **extra})
        return cls(cfg, dims=Ramp(n_dims), points=Ramp(points))

    def with_loops(self, loops: Ramp | None) -> "InContextRegression":
        """The same task (same validation prompts) with another loop curriculum."""
        return InContextRegression(self.cfg, self.dims, self.points, loops)

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> RegressionBatch:
        d, k = self.dims.at(step), self.points.at(step)
        xs, ys = sample_xy(self.cfg, batch_size, k, d, gen)
        return RegressionBatch(tokens(xs, ys), ys, d, None if self.loops is None else self.loops.at(step))

    @staticmethod
    def loss(model, batch: RegressionBatch) -> torch.Tensor:
        """MSE of the predictions at x positions, averaged over the loss window's iterations
        (b from the loop curriculum, or the model's own)."""
        preds = train_predictions(model, batch.z, batch.loops)[:, :, 0::2]  # (T, B, k)
        return ((preds.float() - batch.y) ** 2).mean()

    def show(self, n_tokens: int = 3) -> pd.DataFrame:
        """The first validation prompt's first `n_tokens` pairs as a table (rows x_i, ỹ_i)."""
        z = self.val.z[0, : 2 * n_tokens]
        return pd.DataFrame(z.numpy(), index=[f"{'x' if i % 2 == 0 else 'ỹ'}_{i // 2 + 1}" for i in range(len(z))],
                            columns=[f"dim {j}" for j in range(z.shape[1])]).round(3)

    @torch.no_grad()
    def predictions(self, model, iters: int | None = None, keep: int = 1, state_mask=None, batch_size: int = 640) -> torch.Tensor:
        """(keep, val_size, k) predictions of y on the validation prompts, last `keep` of `iters` iterations."""
        device = next(model.parameters()).device
        out = [
            model(self.val.z[i : i + batch_size].to(device), iters=iters, keep=keep, state_mask=state_mask)[:, :, 0::2].float().cpu()
            for i in range(0, self.cfg.val_size, batch_size)
        ]
        return torch.cat(out, dim=1)

    def errors(self, preds: torch.Tensor) -> torch.Tensor:
        """Normalised squared error (..., val_size, k) from predictions of the same shape."""
        return (preds - self.val.y) ** 2 / self.cfg.normaliser(self.d)

    @property
    def seq_len(self) -> int:
        return 2 * self.k  # x, y pairs

    vocab = 0  # vector tokens of width cfg.n_dims, not ids

    @torch.no_grad()
    def evaluate(self, model, *, iters: int | None = None) -> dict[str, float]:
        """At `iters` loop iterations (None: the model's training b): val_loss (MSE), error at the
        last position and mean over positions."""
        err = self.errors(self.predictions(model, iters=iters)[0])  # (val, k)
        return {
            "val_loss": float(err.mean() * self.cfg.normaliser(self.d)),
            "val_error": float(err[:, -1].mean()),
            "val_error_mean": float(err.mean()),
        }

    def iteration_errors(self, model, iters: int, state_mask=None) -> torch.Tensor:
        """(iters, val_size, k) normalised errors after every iteration 1..iters."""
        return self.errors(self.predictions(model, iters=iters, keep=iters, state_mask=state_mask))

    def baseline_errors(self) -> dict[str, torch.Tensor]:
        """{baseline: (val_size, k) normalised errors} of least squares, averaging and 3-NN on the
        validation prompts (linear-type tasks)."""
        xs, ys = self.val_xs, self.val.y
        return {name: self.errors(preds)
                for name, preds in (("least squares", least_squares(xs, ys)), ("averaging", averaging(xs, ys)),
                                    ("3-NN", nearest_neighbours(xs, ys, 3)))}


def least_squares(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Min-norm least squares on the pairs before each x_i (0 with no pairs). (n, k, D), (n, k) -> (n, k)."""
    xs, ys = xs.double(), ys.double()
    preds = torch.zeros_like(ys)
    for i in range(1, xs.shape[1]):
        w = torch.linalg.pinv(xs[:, :i]) @ ys[:, :i, None]  # (n, D, 1)
        preds[:, i] = (xs[:, i : i + 1] @ w)[:, 0, 0]
    return preds.float()


def averaging(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """w_hat = mean_{j<i} y_j x_j; prediction w_hat . x_i."""
    s = torch.cumsum(ys[..., None] * xs, dim=1)  # (n, k, D) running sums including j
    count = torch.arange(1, xs.shape[1] + 1).view(1, -1, 1)
    w_before = torch.cat([torch.zeros_like(s[:, :1]), (s / count)[:, :-1]], dim=1)
    return (w_before * xs).sum(-1)


def nearest_neighbours(xs: torch.Tensor, ys: torch.Tensor, n_neighbours: int = 3) -> torch.Tensor:
    """Unweighted mean y of the (up to) n nearest earlier points; 0 with no earlier point."""
    n, k, _ = xs.shape
    dist = torch.cdist(xs, xs)  # (n, k, k)
    earlier = torch.tril(torch.ones(k, k, dtype=torch.bool), diagonal=-1)
    dist = dist.masked_fill(~earlier, float("inf"))
    m = min(n_neighbours, k)
    d, idx = dist.topk(m, dim=2, largest=False)
    valid = torch.isfinite(d)
    vals = ys.gather(1, idx.reshape(n, -1)).reshape(n, k, m) * valid
    return vals.sum(-1) / valid.sum(-1).clamp(min=1)
