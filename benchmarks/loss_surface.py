"""Loss-surface evaluation speed: the point-by-point loop against the faster paths, one run.

    python benchmarks/loss_surface.py [--points 32] [--width 128] [--b 10] [--grid 41] [--prompts 64]

Model: a looped transformer (1 layer, width --width, 4 heads, b = --b, loss window T = b) on
in-context linear regression with d = 10 and 31 pairs; one fixed batch of --prompts prompts (64:
the reference's surface setting; the cost per point grows with it). Rows (lib.analysis.loss_surface.surface, path=...):
  loop             functional_call at every grid point (the reference form)
  inplace          a scratch copy of the model, weights overwritten in place, inference mode
  inplace+compile  the same, the loop body compiled once with torch.compile (weights change in
                   place, so the graph is reused)
  ...+bf16         bfloat16 autocast (bf16 matrix units: AVX512-BF16/AMX on CPUs, tensor cores);
                   the last column shows what it costs in accuracy
  vmap-16          torch.func.vmap over chunks of 16 grid points
Each row evaluates the same --points grid points after a warm-up chunk (compilation happens in
the warm-up and is reported as its own column); ms per point, ratio to the loop, and the
projected time of a --grid x --grid surface including the warm-up. The losses of every row are
checked against the loop's.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lib import device as devices
from lib.models.looped import Looped, LoopedConfig
from lib.tasks.regression import InContextRegression
from lib.analysis import loss_surface as ls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--b", type=int, default=10)
    ap.add_argument("--grid", type=int, default=41)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--rows", nargs="+", default=["loop", "inplace", "inplace+compile", "inplace+bf16", "inplace+compile+bf16", "vmap-16"])
    args = ap.parse_args()
    dev = devices.pick()
    d, k = 10, 31
    torch.manual_seed(0)
    model = Looped(LoopedConfig(d_in=d, n_embd=args.width, n_head=4, n_layer=1, n_positions=2 * k, b=args.b, T=args.b)).to(dev)
    task = InContextRegression.of("linear", d, k, 64)
    batch = task.train_batch(args.prompts, torch.Generator().manual_seed(0), 0)
    batch = type(batch)(*[t.to(dev) if isinstance(t, torch.Tensor) else t for t in batch])
    centre = ls.trainable(model)
    d1, d2 = ls.random_directions(centre, k=2)
    side = int(np.ceil(np.sqrt(args.points)))
    warm = np.linspace(-1.0, -0.9, 4)
    grid = np.linspace(-0.5, 0.5, side)
    print(f"device: {devices.describe(dev)}, torch {torch.__version__}; looped TF width {args.width}, b = {args.b}, "
          f"batch {args.prompts} x {k} pairs (d = {d}), {side * side} points per row after a warm-up of 16\n")
    print(f"| path | warm-up s | ms / point | x loop | projected {args.grid}x{args.grid} min | max |Δloss| vs loop |\n|---|---|---|---|---|---|")
    ref, base = None, None
    for row in args.rows:
        path, *opts = row.split("+")
        chunk = int(path.split("-")[1]) if path.startswith("vmap") else 16
        kw = dict(path=path.split("-")[0], chunk=chunk, compile="compile" in opts, bf16="bf16" in opts, desc=row)
        t0 = time.perf_counter()
        ls.surface(model, task.loss, batch, centre, d1, d2, warm, warm, **kw)
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        df = ls.surface(model, task.loss, batch, centre, d1, d2, grid, grid, **kw)
        ms = 1000 * (time.perf_counter() - t0) / len(df)
        if ref is None:
            ref, base = df["loss"].values, ms
        gap = float(np.abs(df["loss"].values - ref).max())
        projected = (warm_s + ms / 1000 * args.grid**2) / 60
        print(f"| {row} | {warm_s:.1f} | {ms:.1f} | {base / ms:.2f} | {projected:.2f} | {gap:.1e} |", flush=True)


if __name__ == "__main__":
    main()
