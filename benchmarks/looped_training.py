"""Training throughput of looped vs standard transformers: samples/s per training step.

    python benchmarks/looped_training.py [--width 64] [--steps 20]

Equal compute: a looped L=1 model run b times costs about b block evaluations per step, like a
standard transformer of L = b layers; the table shows samples/s for both, eager and torch.compile,
fp32 and (on a GPU) bf16 autocast, with the ratio to the eager fp32 standard TF of the same depth
measured in the same run.

    python benchmarks/looped_training.py --mamba --dims 4 --points 12 [--compile] [--out benchmarks/results/looped_mamba_cpu.md]

Looped Mamba against the looped transformer at the mamba_vs_looped_tf cpu shape, on a CPU (see mamba_scans).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


def mamba_scans(args, device) -> list[str]:
    """Looped Mamba against the looped transformer at the mamba_vs_looped_tf cpu shape (L = 1, b = 5,
    T = 10, width 64, 4 heads, d_state 16; configs/mamba_vs_looped_tf/cpu.yml on configs/looped/cpu.yml):
    each selective-scan form, eager, timed in lockstep with the transformer on 1 thread (every round one
    training step of each contender, in turn; medians of the process's CPU time per step), so the ratios
    come from one run under one load. `--compile` adds the forms run through torch.compile, with their
    compile time (the burn-in steps) counted separately. Then where the time goes (top operators of one
    forward + backward) for the fused scan."""
    task = InContextRegression.of("linear", args.dims, args.points, 64)
    base = dict(d_in=args.dims, n_embd=args.width, n_head=4, n_positions=2 * args.points, b=5, T=10, d_state=16)
    original = bodies.BODIES["mamba"]

    def body(form):
        return dataclasses.replace(original, config=lambda c, **x: M.MambaConfig(
            d_model=c.d_model, n_layer=c.n_layer, d_state=c.d_state, scan=form))

    rows = [("looped TF", "gpt", None, False), ("mamba", "mamba", "fused", False), ("mamba", "mamba", "chunked", False)]
    if args.compile:
        rows += [("mamba", "mamba", "fused", True), ("mamba", "mamba", "compiled", False)]
    steps, compile_s = [], []
    for _, kind, form, comp in rows:
        if form:
            bodies.BODIES["mamba"] = body(form)
        torch.manual_seed(0)
        model = Looped(LoopedConfig(**base, body=kind)).to(device)
        net = model.compile_parts() if comp else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)

        def step(net=net, model=model, opt=opt, gen=gen):
            loss = task.loss(net, task.train_batch(args.batch, gen))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        t0 = time.perf_counter()
        for _ in range(3):  # burn-in (and compilation)
            step()
        compile_s.append(time.perf_counter() - t0)
        steps.append(step)
    bodies.BODIES["mamba"] = original
    cpu = [[] for _ in rows]
    for _ in range(args.steps):
        for i, f in enumerate(steps):
            c0 = time.process_time()
            f()
            cpu[i].append(time.process_time() - c0)
    ms = [1000 * statistics.median(c) for c in cpu]
    out = [f"\nLooped models, width {args.width}, 4 heads, d {args.dims}, k {args.points}, batch {args.batch}, L = 1, b = 5, "
           f"T = 10, d_state 16; 1 thread; median of {args.steps} lockstep rounds (CPU time per training step)",
           "| model | scan | mode | ms/step | samples/s | x slower than looped TF | x faster than chunked eager | burn-in s (3 steps) |",
           "|---|---|---|---|---|---|---|---|"]
    chunked = ms[2]
    for (name, _, form, comp), t, c in zip(rows, ms, compile_s):
        mode = "body compiled" if comp else ("compiled scan" if form == "compiled" else "eager")
        out.append(f"| {name} | {form or '—'} | {mode} | {t:.1f} | {1000 * args.batch / t:,.0f} | {t / ms[0]:.2f} | "
                   f"{chunked / t:.2f} | {c:.1f} |")
    bodies.BODIES["mamba"] = body("fused")
    model = Looped(LoopedConfig(**base, body="mamba")).to(device)
    bodies.BODIES["mamba"] = original
    batch = task.train_batch(args.batch, torch.Generator().manual_seed(0))
    task.loss(model, batch).backward()
    with torch.profiler.profile() as prof:
        task.loss(model, batch).backward()
    top = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8).splitlines()
    out.append("\nwhere the time goes, looped Mamba with the fused scan (one forward + backward):\n```\n" + "\n".join(top) + "\n```")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--dims", type=int, default=10)
    ap.add_argument("--points", type=int, default=31)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--b", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--mamba", action="store_true",
                    help="only looped Mamba vs the looped TF (mamba_vs_looped_tf cpu shape: --dims 4 --points 12), on a CPU")
    ap.add_argument("--compile", action="store_true", help="--mamba: also the torch.compile forms (minutes to compile)")
    ap.add_argument("--out", type=Path, help="--mamba: also write the output to this markdown file")
    args = ap.parse_args()
    device = pick()
    if args.mamba:
        device = torch.device("cpu")
        torch.set_num_threads(1)
        load = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
        lines = [f"# Looped Mamba vs looped transformer, training steps on a CPU (`python benchmarks/looped_training.py "
                 f"{' '.join(sys.argv[1:])}`)\n",
                 f"device: {describe(device)}, torch {torch.__version__}, fp32; git {rev}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                 f"load before: `{load()}` (other processes share this machine: the lockstep rounds and CPU-time medians keep "
                 "the ratios comparable, the absolute times less so)"]
        print("\n".join(lines), flush=True)
        lines += mamba_scans(args, device)
        lines.append(f"\nload after: `{load()}`")
        print("\n".join(lines[3:]))
        if args.out:
            args.out.write_text("\n".join(lines) + "\n")
        return
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
