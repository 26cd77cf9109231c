"""Training throughput of looped vs standard transformers: samples/s per training step.

    python benchmarks/looped_training.py [--width 64] [--steps 20]

Equal compute: a looped L=1 model run b times costs about b block evaluations per step, like a
standard transformer of L = b layers; the table shows samples/s for both, eager and torch.compile,
fp32 and (on a GPU) bf16 autocast, with the ratio to the eager fp32 standard TF of the same depth
measured in the same run.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

import lib.models.mamba as M
from lib.device import describe, pick
from lib.models import bodies
from lib.models.looped import Looped, LoopedConfig
from lib.tasks.regression import InContextRegression


def samples_per_s(cfg: LoopedConfig, task, device, steps: int, batch: int, compile_: bool, bf16: bool) -> float:
    torch.manual_seed(0)
    model = Looped(cfg).to(device)
    net = model.compile_parts() if compile_ else model  # the body compiled; the loop stays eager
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)

    def step():
        b = task.train_batch(batch, gen)
        b = b._replace(z=b.z.to(device), y=b.y.to(device))
        with amp:
            loss = task.loss(net, b)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3 if not compile_ else 5):  # burn-in (and compilation)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def mamba_scans(args, device) -> None:
    """Looped Mamba (L = 1, b = 5, T = 10) at the cpu profile's shape: each selective-scan form, eager
    and with the loop body compiled, against the chunked two-level scan the earlier reports used;
    then where the time goes (top operators of one training step) for the chunked and fused forms."""
    task = InContextRegression.of("linear", args.dims, args.points, 64)
    base = dict(d_in=args.dims, n_embd=args.width, n_head=4, n_positions=2 * args.points, b=5, T=10, body="mamba", d_state=16)
    original = bodies.BODIES["mamba"]
    with_scan = lambda form: dataclasses.replace(original, config=lambda c, **x: M.MambaConfig(
        d_model=c.d_model, n_layer=c.n_layer, d_state=c.d_state, scan=form))
    print(f"\nLooped Mamba, width {args.width}, d {args.dims}, k {args.points}, batch {args.batch}, b = 5, T = 10, d_state 16")
    print("| scan | mode | samples/s | ratio to chunked eager |\n|---|---|---|---|")
    ref = None
    forms = [("chunked", False), ("sequential", False), ("fused", False), ("fused", True), ("compiled", False)]
    for form, comp in forms:
        bodies.BODIES["mamba"] = with_scan(form)
        sps = samples_per_s(LoopedConfig(**base), task, device, args.steps, args.batch, comp, False)
        ref = ref or sps
        print(f"| {form} | {'body compiled' if comp else 'eager'} | {sps:,.0f} | {sps / ref:.2f} |", flush=True)
    for form in ("chunked", "fused"):
        bodies.BODIES["mamba"] = with_scan(form)
        model = Looped(LoopedConfig(**base)).to(device)
        gen = torch.Generator().manual_seed(0)
        batch = task.train_batch(args.batch, gen)
        task.loss(model, batch).backward()
        with torch.profiler.profile() as prof:
            task.loss(model, batch).backward()
        top = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=6).splitlines()
        print(f"\nwhere the time goes, {form} scan (one forward + backward):\n```\n" + "\n".join(top) + "\n```")
    bodies.BODIES["mamba"] = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--dims", type=int, default=10)
    ap.add_argument("--points", type=int, default=31)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--b", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--mamba", action="store_true", help="only the looped-Mamba scan comparison (cpu profile shape: --dims 4 --points 12)")
    args = ap.parse_args()
    device = pick()
    if args.mamba:
        print(f"device: {describe(device)}, torch {torch.__version__}")
        return mamba_scans(args, device)
    task = InContextRegression.of("linear", args.dims, args.points, 64)
    base = dict(d_in=args.dims, n_embd=args.width, n_head=4, n_positions=2 * args.points)
    modes = [("eager", False, False)] + ([] if args.no_compile else [("compile", True, False)])
    if device.type == "cuda":
        modes += [("eager+bf16", False, True)] + ([] if args.no_compile else [("compile+bf16", True, True)])
    print(f"device: {describe(device)}, torch {torch.__version__}; width {args.width}, d {args.dims}, k {args.points}, batch {args.batch}")
    print(f"| model | params | mode | samples/s | ratio to eager fp32 TF of depth b |\n|---|---|---|---|---|")
    for b in args.b:
        ref = None
        for cfg in (LoopedConfig(**base, n_layer=b), LoopedConfig(**base, n_layer=1, b=b, T=b)):
            for mode, comp, bf16 in modes:
                sps = samples_per_s(cfg, task, device, args.steps, args.batch, comp, bf16)
                ref = ref or sps
                print(f"| {cfg.name} | {Looped(cfg).n_params():,} | {mode} | {sps:,.0f} | {sps / ref:.2f} |", flush=True)


if __name__ == "__main__":
    main()
