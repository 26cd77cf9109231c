"""Loss surfaces around trained weights, for any nn.Module and any loss on a fixed batch.

Ref: Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets" (arXiv 1712.09913) for
filter-normalised directions; the looped-transformer student report
(references/looped_transformers.md, section 5f) used the top-2 Hessian eigenvectors instead.

Steps, each its own function (compute and drawing are separate):
  directions: hessian_top_k (power iteration with deflation on Hessian-vector products),
              random_directions (filter-normalised), trajectory_pca (PCA of training snapshots)
  surface:    f(alpha, beta) = loss(centre + alpha d1 + beta d2) on a grid -> DataFrame
              (alpha, beta, loss); NaN marks a point not computed yet, so a cut run is resumed
  summary:    loss at the centre, basin fraction (grid below 2x the centre loss), eps-sharpness
The plots (contour + trajectory, 3-D surface, 1-D slices) are in lib/viz/loss_surface.py.

Parameters are handled as dicts name -> tensor ("Params"); a model is evaluated at other
weights with torch.func.functional_call, so its own weights and mode are never changed.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from lib.progress import bar

Params = dict[str, torch.Tensor]
LossFn = Callable[[object, object], torch.Tensor]  # loss_fn(model_like, batch) -> scalar


def trainable(model: nn.Module) -> Params:
    """A detached copy of the model's trainable parameters."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def combine(centre: Params, *terms: tuple[float, Params]) -> Params:
    """centre + sum_i c_i d_i, per tensor."""
    out = {n: t.clone() for n, t in centre.items()}
    for c, d in terms:
        for n in out:
            out[n] += c * d[n]
    return out


def dot(a: Params, b: Params) -> torch.Tensor:
    return sum((a[n] * b[n]).sum() for n in a)


def norm(a: Params) -> torch.Tensor:
    return dot(a, a).sqrt()


class Bound:
    """`model` evaluated at `params` (a duck-typed stand-in that a task's loss can call)."""

    def __init__(self, model: nn.Module, params: Params):
        self._model, self._params = model, params

    def __call__(self, *args, **kwargs):
        return functional_call(self._model, self._params, args, kwargs)

    def parameters(self) -> Iterable[torch.Tensor]:
        return iter(self._params.values())

    def __getattr__(self, name):  # cfg and other attributes of the model
        return getattr(self._model, name)


def loss_at(model: nn.Module, loss_fn: LossFn, batch, params: Params) -> torch.Tensor:
    return loss_fn(Bound(model, params), batch)


def hvp(model: nn.Module, loss_fn: LossFn, batch, params: Params, v: Params) -> Params:
    """Hessian-vector product H v at `params` by double backward (exact, no finite differences).

    Attention runs on SDPA's math backend here: the fused CPU/GPU kernels have no double backward.
    """
    p = {n: t.detach().requires_grad_(True) for n, t in params.items()}
    with sdpa_kernel(SDPBackend.MATH):
        g = torch.autograd.grad(loss_at(model, loss_fn, batch, p), list(p.values()), create_graph=True)
        hv = torch.autograd.grad(sum((gi * v[n]).sum() for gi, n in zip(g, p)), list(p.values()), allow_unused=True)
    return {n: (h if h is not None else torch.zeros_like(p[n])).detach() for n, h in zip(p, hv)}


def hessian_top_k(model, loss_fn, batch, params: Params, k: int = 2, iters: int = 100, tol: float = 1e-6,
                  seed: int = 0) -> tuple[list[float], list[Params]]:
    """The k eigenpairs of largest |eigenvalue| by power iteration with deflation; unit-norm directions."""
    gen = torch.Generator().manual_seed(seed)
    values, vectors = [], []
    for _ in range(k):
        v = {n: torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device) for n, t in params.items()}
        v = {n: t / norm(v) for n, t in v.items()}
        lam = 0.0
        for _ in range(iters):
            hv = hvp(model, loss_fn, batch, params, v)
            for lam_j, u in zip(values, vectors):  # deflate: (H - sum lam_j u_j u_j^T) v
                c = lam_j * dot(u, v)
                hv = {n: hv[n] - c * u[n] for n in hv}
            new_lam = float(dot(v, hv))
            v = {n: t / norm(hv) for n, t in hv.items()}
            if abs(new_lam - lam) <= tol * max(1.0, abs(new_lam)):
                lam = new_lam
                break
            lam = new_lam
        values.append(lam)
        vectors.append(v)
    return values, vectors


def random_directions(params: Params, k: int = 2, seed: int = 0) -> list[Params]:
    """Filter-normalised Gaussian directions (Li et al. 2018).

    For a weight of >= 2 dims, each filter (slice along dim 0) of the direction is rescaled to the
    norm of the same filter of the weight. 1-D parameters (biases, norm gains and shifts) and
    scalars get a zero direction, as Li et al. do for biases and batch norm.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(k):
        d = {}
        for n, w in params.items():
            r = torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device)
            if w.dim() <= 1:
                d[n] = torch.zeros_like(w)
                continue
            rn = r.flatten(1).norm(dim=1).clamp(min=1e-12)
            wn = w.flatten(1).norm(dim=1)
            d[n] = r * (wn / rn).view(-1, *[1] * (w.dim() - 1))
        out.append(d)
    return out


def flatten(p: Params) -> torch.Tensor:
    return torch.cat([t.flatten() for t in p.values()])


def unflatten(vec: torch.Tensor, like: Params) -> Params:
    out, i = {}, 0
    for n, t in like.items():
        out[n] = vec[i : i + t.numel()].view_as(t).clone()
        i += t.numel()
    return out


def mean_params(snapshots: list[Params]) -> Params:
    """The mean of training snapshots (the reference's centre)."""
    return {n: torch.stack([s[n] for s in snapshots]).mean(0) for n in snapshots[0]}


def trajectory_pca(snapshots: list[Params], centre: Params, k: int = 2) -> tuple[list[Params], np.ndarray]:
    """Unit directions of the top-k principal components of the snapshots around `centre`, and
    the fraction of the trajectory's variance each explains."""
    m = torch.stack([flatten(s) - flatten(centre) for s in snapshots]).double()
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    explained = (s**2 / (s**2).sum()).numpy()[:k]
    return [unflatten(vh[i].to(flatten(centre).dtype), centre) for i in range(k)], explained


def project(snapshots: list[Params], centre: Params, d1: Params, d2: Params) -> np.ndarray:
    """(n, 2) coordinates of each snapshot in the plane (least squares: the directions need not be orthogonal)."""
    D = torch.stack([flatten(d1), flatten(d2)], dim=1).double()  # (P, 2)
    X = torch.stack([flatten(s) - flatten(centre) for s in snapshots]).double().T  # (P, n)
    return torch.linalg.lstsq(D, X).solution.T.numpy()


PATHS = ("loop", "inplace", "vmap")


def _grid_params(centre: Params, d1: Params, d2: Params, a: torch.Tensor, b: torch.Tensor) -> Params:
    """Stacked weights of len(a) grid points: centre + a_i d1 + b_i d2, each tensor (n, *shape)."""
    view = lambda t, ref: t.to(ref).view(-1, *([1] * ref.dim()))
    return {n: centre[n] + view(a, centre[n]) * d1[n] + view(b, centre[n]) * d2[n] for n in centre}


def _evaluator(model: nn.Module, loss_fn: LossFn, batch, centre: Params, d1: Params, d2: Params, path: str, chunk: int, compile: bool,
               bf16: bool = False):
    """A function (alphas, betas) -> losses for one chunk of grid points, by the chosen path."""
    if path == "loop":  # the reference form: functional_call at each point's weights
        return lambda a, b: [float(loss_at(model, loss_fn, batch, combine(centre, (ai, d1), (bi, d2)))) for ai, bi in zip(a.tolist(), b.tolist())]
    if path == "vmap":  # all points of a chunk in one batched call (a GPU is idle on one point)
        f = torch.func.vmap(lambda p: loss_at(model, loss_fn, batch, p), chunk_size=chunk)
        return lambda a, b: f(_grid_params(centre, d1, d2, a, b)).tolist()
    # inplace: a scratch copy of the model whose weights are overwritten at every point, run in
    # inference mode (no autograd bookkeeping, no functional_call indirection) and, if asked,
    # compiled once (weights change in place, so the compiled graph is reused): the CPU's path.
    device = next(iter(centre.values())).device.type
    amp = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    scratch = copy.deepcopy(model).eval()
    target = {n: p for n, p in scratch.named_parameters() if n in centre}
    net = scratch
    if compile:
        net = scratch.compile_parts() if hasattr(scratch, "compile_parts") else torch.compile(scratch)

    def run(a, b):
        out = []
        for ai, bi in zip(a.tolist(), b.tolist()):
            with torch.no_grad():
                for n, t in target.items():
                    torch.add(centre[n], d1[n], alpha=ai, out=t).add_(d2[n], alpha=bi)
            with torch.inference_mode(), amp():
                out.append(float(loss_fn(net, batch)))
        return out

    return run


def surface(model: nn.Module, loss_fn: LossFn, batch, centre: Params, d1: Params, d2: Params,
            alphas: np.ndarray, betas: np.ndarray, done: pd.DataFrame | None = None, desc: str = "surface",
            path: str = "auto", chunk: int = 16, compile: bool = False, bf16: bool = False) -> pd.DataFrame:
    """Loss on the grid alphas x betas; points already finite in `done` are kept (resume).

    path: 'loop' (functional_call per point: the reference form), 'inplace' (a scratch copy of
    the model, weights overwritten per point, inference mode, optionally torch.compile: fastest
    on CPU, where one point already keeps the cores busy), 'vmap' (torch.func.vmap over chunks
    of `chunk` points: for a GPU). 'auto' = vmap on CUDA, inplace elsewhere. Every path gives the
    same numbers (tested); the model's own weights and train/eval mode are never changed.
    bf16 (inplace path): bfloat16 autocast, faster where the CPU or GPU has bf16 matrix units, at
    a loss error the benchmark reports against the float32 loop.
    """
    if bf16 and path not in ("inplace", "auto"):
        raise ValueError("bf16 is implemented for the inplace path only")
    if path == "auto":
        path = "vmap" if next(iter(centre.values())).is_cuda else "inplace"
    if path not in PATHS:
        raise ValueError(f"path must be one of {list(PATHS)} or 'auto', got {path!r}")
    grid = pd.DataFrame([(a, b) for a in alphas for b in betas], columns=["alpha", "beta"])
    grid["loss"] = np.nan
    if done is not None:
        grid = grid.drop(columns="loss").merge(done, on=["alpha", "beta"], how="left")
    was_training = model.training
    model.eval()
    todo = grid.index[grid["loss"].isna()]
    try:
        evaluate = _evaluator(model, loss_fn, batch, centre, d1, d2, path, chunk, compile, bf16)
        with bar(len(todo), desc=desc) as pbar, torch.no_grad():
            for start in range(0, len(todo), chunk):
                idx = todo[start : start + chunk]
                a = torch.tensor(grid.loc[idx, "alpha"].values, dtype=torch.float64)
                b = torch.tensor(grid.loc[idx, "beta"].values, dtype=torch.float64)
                grid.loc[idx, "loss"] = evaluate(a, b)
                pbar.update(len(idx))
    finally:
        model.train(was_training)
    return grid


def summary(df: pd.DataFrame, radius: float = 0.5, eigenvalues: list[float] | None = None) -> dict[str, float]:
    """Numbers of one surface, the scale-free ones first (models whose losses differ compare fairly):

    rel_sharpness   (largest loss within `radius` of the centre - centre loss) / centre loss
    basin_fraction  fraction of the grid below 2x the centre loss
    rel_lambda_k    lambda_k / centre loss: the curvature of log loss at a minimum
    and the raw centre_loss, min_loss, eps_sharpness (absolute) and lambda_k.
    """
    centre = float(df.loc[(df.alpha.abs() + df.beta.abs()).idxmin(), "loss"])
    near = df[np.hypot(df.alpha, df.beta) <= radius]
    out = {"centre_loss": centre, "rel_sharpness": float(near["loss"].max() - centre) / centre,
           "basin_fraction": float((df["loss"] < 2 * centre).mean()), "eps_sharpness": float(near["loss"].max() - centre),
           "min_loss": float(df["loss"].min())}
    for i, lam in enumerate(eigenvalues or []):
        out[f"lambda_{i + 1}"] = float(lam)
        out[f"rel_lambda_{i + 1}"] = float(lam) / centre
    return out


def trajectory_grid(coords: np.ndarray, resolution: int, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Grid axes spanning the projected trajectory (n, 2) plus `margin` of its extent on every side,
    with 0 (the centre) on both axes."""
    lo, hi = np.minimum(coords.min(0), 0), np.maximum(coords.max(0), 0)
    pad = margin * np.maximum(hi - lo, 1e-3)
    axes = [np.union1d(np.linspace(lo[i] - pad[i], hi[i] + pad[i], resolution), [0.0]) for i in range(2)]
    return axes[0], axes[1]
