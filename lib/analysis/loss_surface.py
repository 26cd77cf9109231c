"""Loss surfaces around trained weights, for any nn.Module and any loss on a fixed batch.

Ref: Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets" (arXiv 1712.09913) for
filter-normalised directions; the looped-transformer student report
(references/looped_transformers.md, section 5f) used the top-2 Hessian eigenvectors instead.

Steps, each its own function (compute and drawing are separate):
  directions: hessian_top_k (power iteration with deflation on Hessian-vector products),
              random_directions (filter-normalised), trajectory_pca (PCA of training snapshots),
              filter_normalise (any of them, Li et al.'s per-filter scaling); DIRECTIONS maps a
              kind's name to its builder (Centre, SurfaceSettings) -> Plane
  surface:    f(alpha, beta) = loss(centre + alpha d1 + beta d2) on a grid -> DataFrame
              (alpha, beta, loss); NaN marks a point not computed yet, so a cut run is resumed
  summary:    loss at the centre, basin fraction (grid below 2x the centre loss), eps-sharpness;
              basin_radii: where the loss first doubles along each direction, by bisection on the
              line (not at the grid's resolution)
The study (every model x seed x kind, SurfaceSettings: the notebook's parameters) is
study_surfaces -> Surfaces; its tables (per_model, reference_beside), its checks (centre_checks:
the centre against the run's own validation loss) and its verdicts (verdicts: values and labels,
lib.analysis.labels) come before any prose (findings_text).
The plots (contour + trajectory, 3-D surface, 1-D slices, the study's figures) are in lib/viz/loss_surface.py.

Parameters are handled as dicts name -> tensor ("Params"); a model is evaluated at other
weights with torch.func.functional_call, so its own weights and mode are never changed.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from lib.analysis import labels, reference
from lib.analysis import looped as looped_verdicts
from lib.analysis.labels import Verdict
from lib.analysis.stats import compare, fmt, seed_interval
from lib.config import Config
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
    draw = lambda: {n: torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device) for n, w in params.items()}
    return [filter_normalise(draw(), params) for _ in range(k)]


def filter_normalise(direction: Params, params: Params) -> Params:
    """Li et al. 2018's filter normalisation of any direction (random, Hessian, PCA): each filter
    (slice along dim 0: a conv filter, a linear layer's output row) rescaled to the norm of the same
    filter of the weights, so a step of alpha = 1 moves every filter by its own size. 1-D parameters
    (biases, norm gains and shifts) and scalars get a zero direction, as Li et al. do for biases and
    batch norm."""
    out = {}
    for n, w in params.items():
        d = direction[n]
        if w.dim() <= 1:
            out[n] = torch.zeros_like(w)
            continue
        dn = d.flatten(1).norm(dim=1).clamp(min=1e-12)
        wn = w.flatten(1).norm(dim=1)
        out[n] = d * (wn / dn).view(-1, *[1] * (w.dim() - 1))
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


def resolve_path(path: str, centre: Params) -> str:
    """'auto' -> vmap on CUDA, inplace elsewhere; any other name checked against PATHS."""
    if path == "auto":
        path = "vmap" if next(iter(centre.values())).is_cuda else "inplace"
    if path not in PATHS:
        raise ValueError(f"path must be one of {list(PATHS)} or 'auto', got {path!r}")
    return path


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
    path = resolve_path(path, centre)
    grid = pd.DataFrame([(a, b) for a in alphas for b in betas], columns=["alpha", "beta"])
    grid["loss"] = np.nan
    if done is not None:
        grid = grid.drop(columns="loss").merge(done, on=["alpha", "beta"], how="left")
    todo = grid.index[grid["loss"].isna()]
    with eval_mode(model):
        evaluate = _evaluator(model, loss_fn, batch, centre, d1, d2, path, chunk, compile, bf16)
        with bar(len(todo), desc=desc) as pbar, torch.no_grad():
            for start in range(0, len(todo), chunk):
                idx = todo[start : start + chunk]
                a = torch.tensor(grid.loc[idx, "alpha"].values, dtype=torch.float64)
                b = torch.tensor(grid.loc[idx, "beta"].values, dtype=torch.float64)
                grid.loc[idx, "loss"] = evaluate(a, b)
                pbar.update(len(idx))
    return grid


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """The model in eval mode inside the block, its own mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


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


# --- the basin's radius: where the loss first doubles along a line, off the grid's resolution ---

BASIN_FACTOR = 2.0  # a basin's wall: this multiple of the centre loss (basin_fraction and basin_radius alike)


def crossing(f: Callable[[float], float], level: float, radii: np.ndarray, losses: np.ndarray, tol: float = 1e-3,
             max_radius: float = math.inf) -> float:
    """The radius r > 0 where the loss f(r) along a half-line from the centre first reaches `level`.

    `radii` (increasing, > 0) with their `losses` (a sampled slice, e.g. the surface's grid) bracket
    the first crossing; f then bisects the bracket to a width of `tol` x its end, so the answer does
    not depend on the grid's spacing. When no sample reaches `level`, the radius doubles past the
    last sample (f evaluated) until one does: inf if none does by `max_radius`. A crossing between
    two samples that both lie below `level` (a bump narrower than the grid) is not seen.
    """
    lo, hi = 0.0, None
    for r, loss in zip(radii, losses):
        if loss >= level:
            hi = r
            break
        lo = r
    r = 2 * lo if lo > 0 else 1.0
    while hi is None:
        if r > max_radius:
            return math.inf
        if f(r) >= level:
            hi = r
        else:
            lo, r = r, 2 * r
    for _ in range(64):  # each step halves the bracket; 64 reach any float tolerance
        if hi - lo <= tol * hi:
            break
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if f(mid) >= level else (mid, hi)
    return (lo + hi) / 2


def basin_radii(model: nn.Module, loss_fn: LossFn, batch, centre: Params, d1: Params, d2: Params, df: pd.DataFrame,
                path: str = "auto", bf16: bool = False, tol: float = 1e-3, reach: float = 64.0) -> dict[str, float]:
    """Per direction, the radius where the loss first reaches BASIN_FACTOR x the centre loss
    (`crossing` on each half-line, bracketed by the surface `df`, refined on the line itself), on
    the nearer side: basin_radius_1 (along d1), basin_radius_2 (along d2), and basin_radius, their
    mean. In the directions' units (alpha, beta); searched up to `reach` x the grid's extent."""
    near = df.loc[(df.alpha.abs() + df.beta.abs()).idxmin()]
    level = BASIN_FACTOR * float(near["loss"])
    max_radius = reach * float(max(df.alpha.abs().max(), df.beta.abs().max()))
    out = {}
    with eval_mode(model), torch.no_grad():
        evaluate = _evaluator(model, loss_fn, batch, centre, d1, d2, resolve_path(path, centre), 1, False, bf16)
        for i, (axis, other) in enumerate((("alpha", "beta"), ("beta", "alpha")), start=1):
            line = df[df[other] == near[other]]
            sides = []
            for sign in (1.0, -1.0):
                half = line[line[axis] * sign > 0].assign(r=lambda t: t[axis] * sign).sort_values("r")
                point = (lambda r: (sign * r, 0.0)) if axis == "alpha" else (lambda r: (0.0, sign * r))
                f = lambda r: evaluate(*(torch.tensor([v], dtype=torch.float64) for v in point(r)))[0]
                sides.append(crossing(f, level, half["r"].values, half["loss"].values, tol, max_radius))
            out[f"basin_radius_{i}"] = min(sides)
    out["basin_radius"] = (out["basin_radius_1"] + out["basin_radius_2"]) / 2
    return out


# --- the study's settings and its directions: a registry, name -> builder ---

NORMALISE = ("none", "filter")
PROMPTS = ("fresh", "validation")


@dataclass(frozen=True)
class SurfaceSettings(Config):
    """The loss-surface study's own parameters (beside the looped family's Settings); the defaults
    are the notebook's. normalise: 'none' keeps each kind's own scale (Hessian and PCA directions
    unit-norm, random ones filter-normalised when drawn), 'filter' filter-normalises every kind.
    surface_prompts: 'fresh' draws `surface_batch` new prompts, 'validation' uses the task's whole
    validation set (the prompts behind each run's val_loss; `surface_batch` is then not used).
    match_val_loss: None pools every looped and every standard model; a tolerance (0.1 = 10 %)
    compares only pairs whose validation losses are that close."""
    directions: list = field(default_factory=lambda: ["hessian", "random", "pca"])
    span: float = 1.0
    pca_margin: float = 0.25
    resolution: int = 7
    surface_batch: int = 64
    surface_prompts: str = "fresh"
    normalise: str = "none"
    hessian_iters: int = 20
    radius: float = 0.5
    match_val_loss: float | None = None
    large_run: str | None = None
    large_resolution: int = 0
    surface_path: str = "auto"
    surface_compile: bool = False
    surface_bf16: bool = False
    copy_resolution: int = 5
    copy_batch: int = 64

    def __post_init__(self):
        if bad := [d for d in self.directions if d not in DIRECTIONS]:
            raise ValueError(f"directions {bad} unknown; the registry has {sorted(DIRECTIONS)}")
        for key, allowed in (("normalise", NORMALISE), ("surface_prompts", PROMPTS), ("surface_path", PATHS + ("auto",))):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {list(allowed)}, got {getattr(self, key)!r}")
        if not (math.isfinite(self.span) and self.span > 0 and math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"span and radius must be finite and > 0, got {self.span}, {self.radius}")
        if min(self.resolution, self.copy_resolution) < 2 or min(self.surface_batch, self.copy_batch, self.hessian_iters) < 1:
            raise ValueError("resolution, copy_resolution >= 2 and surface_batch, copy_batch, hessian_iters >= 1")
        if self.match_val_loss is not None and not self.match_val_loss > 0:
            raise ValueError(f"match_val_loss must be > 0 or None, got {self.match_val_loss}")
        if self.large_run and self.large_resolution < 2:
            raise ValueError(f"large_run {self.large_run!r} needs large_resolution >= 2, got {self.large_resolution}")

    @classmethod
    def of(cls, ns: dict) -> "SurfaceSettings":
        """From a notebook's namespace: each field the notebook (or papermill) set, else the default."""
        return cls.load({f.name: ns[f.name] for f in fields(cls) if f.name in ns}, where="notebook parameters")

    def grid(self, resolution: int | None = None) -> np.ndarray:
        return np.linspace(-self.span, self.span, self.resolution if resolution is None else resolution)

    def scaled(self, d: Params, params: Params) -> Params:
        """A direction as the settings want it: filter-normalised, or as built."""
        return filter_normalise(d, params) if self.normalise == "filter" else d


@dataclass
class Centre:
    """One trained model, the weights a surface is centred on, and what a direction builder may need."""
    model: nn.Module
    loss_fn: LossFn
    batch: object
    params: Params
    snapshots: list  # training snapshots (Params), oldest first; may be empty
    seed: int
    grid: np.ndarray  # the axis of the Hessian and random grids
    _hessian: tuple | None = None

    def hessian(self, iters: int) -> tuple[list[float], list[Params]]:
        """The top-2 Hessian eigenpairs, computed once."""
        if self._hessian is None:
            self._hessian = hessian_top_k(self.model, self.loss_fn, self.batch, self.params, k=2, iters=iters)
        return self._hessian


@dataclass(frozen=True)
class Plane:
    """Two directions and the grid drawn on them."""
    d1: Params
    d2: Params
    alphas: np.ndarray
    betas: np.ndarray
    trajectory: np.ndarray | None = None  # (n, 2) the training snapshots in the plane
    eigenvalues: list | None = None


def hessian_plane(c: Centre, s: SurfaceSettings) -> Plane:
    """The top-2 Hessian eigenvectors (the reference's directions)."""
    eig, (d1, d2) = c.hessian(s.hessian_iters)
    return Plane(s.scaled(d1, c.params), s.scaled(d2, c.params), c.grid, c.grid, eigenvalues=eig)


def random_plane(c: Centre, s: SurfaceSettings) -> Plane:
    """Two Gaussian directions, filter-normalised when drawn (Li et al. 2018), seeded by the run's seed."""
    d1, d2 = random_directions(c.params, k=2, seed=c.seed)
    return Plane(d1, d2, c.grid, c.grid)


def pca_plane(c: Centre, s: SurfaceSettings) -> Plane | None:
    """The top-2 principal components of the training trajectory, on a grid spanning it (None: fewer than 3 snapshots)."""
    if len(c.snapshots) < 3:
        return None
    (d1, d2), _ = trajectory_pca(c.snapshots, c.params)
    d1, d2 = s.scaled(d1, c.params), s.scaled(d2, c.params)
    coords = project(c.snapshots, c.params, d1, d2)
    return Plane(d1, d2, *trajectory_grid(coords, len(c.grid), s.pca_margin), trajectory=coords)


DIRECTIONS: dict[str, Callable[[Centre, SurfaceSettings], Plane | None]] = {
    "hessian": hessian_plane, "random": random_plane, "pca": pca_plane,
}


# --- the study: every model's surfaces and their numbers ---

def take(batch, n: int | None, device):
    """The first `n` rows (all: None) of every tensor of a batch (a NamedTuple), on `device`."""
    return type(batch)(*(t[:n].to(device) if torch.is_tensor(t) else t for t in batch))


def prompts(task, s: SurfaceSettings, device, fresh: Callable):
    """The surface's batch: `fresh(task, surface_batch, device)`, or the task's validation prompts."""
    return take(task.val, None, device) if s.surface_prompts == "validation" else fresh(task, s.surface_batch, device)


def seeds_of(models: dict, run: str) -> list[int]:
    return sorted(seed for (name, seed) in models if name == run)


def plane_surface(c: Centre, plane: Plane, s: SurfaceSettings, desc: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """The surface on a plane and its numbers (summary and basin radii)."""
    df = surface(c.model, c.loss_fn, c.batch, c.params, plane.d1, plane.d2, plane.alphas, plane.betas, desc=desc,
                 path=s.surface_path, compile=s.surface_compile, bf16=s.surface_bf16)
    radii = basin_radii(c.model, c.loss_fn, c.batch, c.params, plane.d1, plane.d2, df, s.surface_path, s.surface_bf16)
    return df, {**summary(df, s.radius, plane.eigenvalues), **radii}


@dataclass
class Surfaces:
    """Everything the study computed: `summary` (one row per run x seed x direction kind),
    the surfaces and trajectories keyed (run, seed, kind), the runs' history, the optional large
    surface and the selective-copy surfaces."""
    summary: pd.DataFrame
    surfaces: dict
    trajectories: dict
    history: pd.DataFrame
    seeds: list
    settings: SurfaceSettings
    n_prompts: int
    predict_zero: float
    large: tuple[str, pd.DataFrame] | None = None
    copy_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    copy_surfaces: dict = field(default_factory=dict)

    def results(self) -> pd.DataFrame:
        """The tidy CSV: summary, surface and history rows (and copy_summary rows when any)."""
        parts = [self.summary.assign(table="summary"),
                 pd.concat([d.assign(run=k[0], seed=k[1], directions=k[2]) for k, d in self.surfaces.items()]).assign(table="surface"),
                 self.history.assign(table="history")]
        if len(self.copy_summary):
            parts.append(self.copy_summary.assign(table="copy_summary"))
        return pd.concat(parts, ignore_index=True)


def study_surfaces(study, s: SurfaceSettings, device, *, loss: LossFn, fresh: Callable, snapshots: Callable,
                   copy_study=None) -> Surfaces:
    """Surfaces of every model and seed of `study` (a lib.studies.Study of regression models) along
    each of `s.directions`, centred on the trained weights, on one batch (`prompts`); `loss(model,
    batch)` is the validation loss's definition, `snapshots(study, config, seed)` a run's kept
    weights. Raises when a surface's centre is not the model's own loss on that batch (within 1 %).
    `copy_study` (a selective-copy Study, or None): its models (first seed) along random directions."""
    batch = prompts(study.task, s, device, fresh)
    predict_zero = float((batch.y ** 2).mean())
    final_val = study.history.sort_values("step").groupby(["run", "seed"])["val_loss"].last()
    surfaces, trajectories, rows = {}, {}, []
    for cfg in study.configs:
        for seed in seeds_of(study.models, cfg.name):
            model = study.models[cfg.name, seed].to(device)
            params = trainable(model)
            own = float(loss(model, batch).detach())
            snaps = [{k: v.to(device) for k, v in snap.items() if k in params} for snap in snapshots(study, cfg, seed)]
            mean_loss = float(loss_at(model, loss, batch, mean_params(snaps))) if snaps else float("nan")
            c = Centre(model, loss, batch, params, snaps, seed, s.grid())
            for kind in s.directions:
                if (plane := DIRECTIONS[kind](c, s)) is None:
                    continue
                df, numbers = plane_surface(c, plane, s, f"{cfg.name} s{seed} {kind}")
                if abs(numbers["centre_loss"] - own) > 0.01 * own:
                    raise RuntimeError(f"{cfg.name} s{seed} {kind}: centre loss {numbers['centre_loss']:.6g} "
                                       f"is not the model's own {own:.6g}")
                surfaces[cfg.name, seed, kind], trajectories[cfg.name, seed, kind] = df, plane.trajectory
                hist = float(final_val.loc[(cfg.name, seed)])
                rows.append({"run": cfg.name, "seed": seed, "directions": kind, "looped": cfg.looped, **cfg.columns(), **numbers,
                             "val_loss": own, "predict_zero_loss": predict_zero, "snapshot_mean_loss": mean_loss,
                             "history_val_loss": hist, "centre_gap": numbers["centre_loss"] / hist - 1})
    out = Surfaces(pd.DataFrame(rows), surfaces, trajectories, study.history, list(study.seeds), s, len(batch.y), predict_zero)
    if s.large_run:
        out.large = (s.large_run, large_surface(study, s, device, loss, batch))
    if copy_study is not None:
        out.copy_summary, out.copy_surfaces = copy_surfaces(copy_study, s, device)
    return out


def large_surface(study, s: SurfaceSettings, device, loss: LossFn, batch) -> pd.DataFrame:
    """The Hessian surface of `s.large_run` (its first seed) on a large_resolution^2 grid (the reference's 250^2)."""
    model = study.models[s.large_run, study.seeds[0]].to(device)
    c = Centre(model, loss, batch, trainable(model), [], study.seeds[0], s.grid(s.large_resolution))
    plane = hessian_plane(c, s)
    return surface(model, loss, batch, c.params, plane.d1, plane.d2, plane.alphas, plane.betas,
                   desc=f"{s.large_run} {s.large_resolution}^2", path=s.surface_path, compile=s.surface_compile, bf16=s.surface_bf16)


def copy_surfaces(study, s: SurfaceSettings, device) -> tuple[pd.DataFrame, dict]:
    """The selective-copy models (first seed) along random directions, on `copy_batch` validation samples."""
    batch, seed = take(study.task.val, s.copy_batch, device), study.seeds[0]
    rows, surfaces = [], {}
    for cfg in study.configs:
        model = study.models[cfg.name, seed].to(device)
        c = Centre(model, study.task.loss, batch, trainable(model), [], seed, s.grid(s.copy_resolution))
        surfaces[cfg.name], numbers = plane_surface(c, random_plane(c, s), s, cfg.name)
        rows.append({"run": cfg.name, "seed": seed, "directions": "random", **cfg.columns(), **numbers})
    return pd.DataFrame(rows), surfaces


# --- tables, checks and verdicts (values first; the prose is `findings_text`) ---

METRICS = ("rel_sharpness", "basin_fraction", "basin_radius", "rel_lambda_1", "centre_loss", "snapshot_mean_loss", "history_val_loss")


def per_model(res: Surfaces) -> pd.DataFrame:
    """Per model and direction kind, each number's mean over seeds with its 95 % t-interval, so a
    comparison can be read model by model at each model's own validation loss."""
    parts = [("looped family", res.summary), ("selective copy", res.copy_summary)]
    rows = []
    for models, table in parts:
        for (kind, run), g in (table.groupby(["directions", "run"], sort=False) if len(table) else []):
            rows.append({"models": models, "directions": kind, "run": run, "seeds": g["seed"].nunique(),
                         **{m: fmt(seed_interval(g[m])) for m in METRICS if m in g and g[m].notna().any()}})
    return pd.DataFrame(rows)


def reference_beside(summary: pd.DataFrame) -> pd.DataFrame:
    """The reference's lowest contour per model beside our centre and validation losses (its loss
    scale differs: d = 10, k = 31, width 256, the loss not divided by d)."""
    first = summary[summary.directions == summary.directions.iloc[0]].groupby("run")
    centres, vals = first["centre_loss"].mean(), first["history_val_loss"].mean()
    return pd.DataFrame([{"run": r, "our centre loss": centres.get(r, math.nan), "our validation loss": vals.get(r, math.nan),
                          "reference lowest contour": v} for r, v in reference.LOSS_SURFACE_LOWEST_CONTOUR.items()])


def centre_checks(summary: pd.DataFrame, tol: float = reference.CENTRE_MATCH.value) -> pd.DataFrame:
    """Per run and seed: the surface's centre loss, the run's own validation loss (its history's
    last evaluation), their relative gap, and `within` (|gap| <= tol)."""
    first = summary.drop_duplicates(["run", "seed"])[["run", "seed", "centre_loss", "history_val_loss"]]
    gap = first["centre_loss"] / first["history_val_loss"] - 1
    return first.assign(gap=gap, within=gap.abs() <= tol).reset_index(drop=True)


def matched_pairs(summary: pd.DataFrame, tol: float) -> list[tuple[str, str]]:
    """(looped run, standard run) pairs whose validation losses (mean over seeds) differ by at most
    `tol` relative to the standard run's."""
    val = summary.drop_duplicates(["run", "seed"]).groupby("run").agg(looped=("looped", "first"), val=("history_val_loss", "mean"))
    loops, plains = val[val.looped], val[~val.looped]
    return [(a, b) for a in loops.index for b in plains.index if abs(loops.val[a] / plains.val[b] - 1) <= tol]


CLAIMS = {  # the reference's finding, split into what each number can test: (metric, its name, looped side expected)
    "steeper": ("rel_sharpness", "relative sharpness", "higher"),
    "more uniform": ("basin_fraction", "basin fraction", "higher"),
}
REF = dict(ref_metric="contour plots judged by eye", ref_horizon="one seed, centred on the mean of 30 snapshots",
           ref_value=f'"{reference.LOSS_SURFACE_FINDING}"')


def verdicts(summary: pd.DataFrame, history: pd.DataFrame, match: float | None = None) -> list[Verdict]:
    """The reference's finding judged per direction kind and claim ("steeper", "more uniform"):
    looped vs standard models, each value one model and seed. match=None pools every looped and
    every standard model; a tolerance compares only the pairs of `matched_pairs` (none: untested)."""
    out = []
    for kind in [k for k in DIRECTIONS if k in set(summary.directions)]:
        rows = summary[summary.directions == kind]
        for word, (metric, words, expected) in CLAIMS.items():
            pairs = [(rows.looped, ~rows.looped, "looped", "standard")] if match is None else [
                (rows.run == a, rows.run == b, f"looped `{a}`", f"standard `{b}`") for a, b in matched_pairs(summary, match)]
            for a, b, name_a, name_b in pairs:
                claim = f"{name_a} is {word} than {name_b} along {kind} directions ({words})"
                done = labels.finished(history, set(rows[a | b].run))
                out.append(labels.comparison_verdict(claim, compare(rows[a][metric], rows[b][metric]), expected, finished=done, **REF))
            if not pairs:
                label, reason = labels.derive(None, 0, False, True, f"no looped and standard models within {match:.0%} validation loss")
                out.append(Verdict(f"looped is {word} than standard along {kind} directions, at matched validation loss", **REF,
                                   ours=math.nan, interval=(math.nan, math.nan), n_seeds=0, finished=False, comparable=True,
                                   label=label, reason=reason))
    return out


# --- prose ---

def centre_text(res: Surfaces) -> str:
    """The surfaces' centres against the runs' own validation losses, and against the reference's centre."""
    checks, s = centre_checks(res.summary), res.summary
    source = "validation" if res.settings.surface_prompts == "validation" else "fresh"
    gaps = f"{checks.gap.min():+.1%} to {checks.gap.max():+.1%}"
    tol = f"{reference.CENTRE_MATCH.value:.0%} ({reference.CENTRE_MATCH.source})"
    if checks.within.all():
        head = (f"The centre of every surface is the model's own loss on the surface batch ({res.n_prompts} {source} prompts), "
                f"within {tol} of its run's validation loss on every run (gap {gaps}). ")
    else:
        head = (f"**The surface batch ({res.n_prompts} {source} prompts) does not reproduce the runs' validation loss:** the "
                f"centre loss is off it by more than {tol} on {(~checks.within).sum()} of {len(checks)} runs (gap {gaps}), so the "
                "numbers describe the models on this batch; `surface_prompts: validation` draws the surfaces on the validation "
                "prompts themselves. ")
    return head + (f"Centring on the snapshot mean (the reference's centre) would have described points of loss "
                   f"{s['snapshot_mean_loss'].min():.3g}–{s['snapshot_mean_loss'].max():.3g} against the trained models' "
                   f"{s['val_loss'].min():.3g}–{s['val_loss'].max():.3g} (predict-zero {res.predict_zero:.3g}).")


def findings_text(res: Surfaces, errors: pd.DataFrame, looped_settings) -> str:
    """'What we found': the verdicts (labels.sentence), which models learned and which the cap cut,
    the centre checks, and the selective-copy numbers. `errors`: lib.studies.looped.error_table(study, 1);
    `looped_settings`: the family's Settings (points, steps)."""
    s, match = res.summary, res.settings.match_val_loss
    stab = looped_verdicts.stability_table(errors, k=looped_settings.points - 1)
    state = [looped_verdicts.learned_line(stab, looped_settings.steps), looped_verdicts.unfinished_line(res.history)]
    how = ("pooling" if match is None else f"pairing at matched validation loss (within {match:.0%})") + (
        f" the {s[s.looped].run.nunique()} looped and {s[~s.looped].run.nunique()} standard models over their seeds")
    out = [f"**Steeper or more uniform?** The reference's verdict ({REF['ref_value']}; {REF['ref_metric']}, "
           f"{REF['ref_horizon']}), claim by claim, {how} (each value one model and seed; 95 % Student-t intervals of the mean; "
           f"direction normalisation: {res.settings.normalise}):", "", *[line for line in state if line],
           *[f"- **{v.label}** — {v.claim}; {v.n_seeds} seeds on the smaller side, "
             f"{'finished runs' if v.finished else 'runs the cap stopped'}: {v.reason}." for v in verdicts(s, res.history, match)],
           "", centre_text(res)]
    if len(res.copy_summary):
        out += ["", "Selective copy (random directions): " + "; ".join(
            f"`{r.run}` centre loss {r.centre_loss:.3g}, relative sharpness {r.rel_sharpness:.3g}, basin radius {r.basin_radius:.3g}"
            for r in res.copy_summary.itertuples()) + "."]
    return "\n".join(out)
