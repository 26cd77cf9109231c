"""Forward+backward time and peak memory of state-space blocks against sequence length.

    python benchmarks/scan.py [--lengths 256 1024 4096] [--seq-max 1024] [--reps 3]

Rows (each a 2-layer backbone, width 64, state 16, batch 8, the sum of outputs backpropagated):
  mamba-sequential  our Mamba-1 with the step-by-step scan (the readable reference)
  mamba-chunked     our Mamba-1 with the chunked parallel scan
  mambapy-pscan     the third-party `mambapy` Mamba (Blelloch parallel scan), same sizes
  ssd-chunkQ        our Mamba-2 SSD, chunked algorithm with chunk Q
  ssd-quadratic     the SSD's attention-like form (memory O(L^2))
Both Mamba blocks have inner width 2 x width and the SSD the same (expand 2, heads of 16), so
the last column compares block against block at equal inner width and length.
Each measurement runs in a fresh process, so peak memory is that process's (CPU: max RSS above
the state after building the model; GPU: torch.cuda.max_memory_allocated). Ratios are against
mamba-sequential and mambapy-pscan at the same length, all from this run.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def build(name: str, width: int, state: int, layers: int):
    from lib.models.mamba import MambaBackbone, MambaConfig
    from lib.models.ssd import SSDBackbone, SSDConfig

    if name.startswith("mamba-"):
        return MambaBackbone(MambaConfig(d_model=width, n_layer=layers, d_state=state, scan=name.split("-")[1]))
    if name == "mambapy-pscan":
        from mambapy.mamba import Mamba, MambaConfig as PyConfig

        return Mamba(PyConfig(d_model=width, n_layers=layers, d_state=state, pscan=True))
    if name == "ssd-quadratic":
        return SSDBackbone(SSDConfig(d_model=width, n_layer=layers, d_state=state, mode="quadratic"))
    return SSDBackbone(SSDConfig(d_model=width, n_layer=layers, d_state=state, chunk=int(name.removeprefix("ssd-chunk"))))


def one(name: str, length: int, batch: int, width: int, state: int, layers: int, reps: int) -> dict:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = build(name, width, state, layers).to(device)
    x = torch.randn(batch, length, width, device=device, requires_grad=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, before any forward pass
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model(x).sum().backward()  # burn-in
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        model(x).sum().backward()
        sync()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # the process's peak resident memory above what it held before the first forward pass
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"ms": 1000 * min(times), "peak_mb": peak, "device": device.type}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--rows", nargs="+", default=["mamba-sequential", "mamba-chunked", "mambapy-pscan", "ssd-chunk32", "ssd-chunk64", "ssd-chunk128", "ssd-quadratic"])
    ap.add_argument("--seq-max", type=int, default=1024, help="longest length for mamba-sequential (it is slow)")
    ap.add_argument("--quad-max", type=int, default=2048, help="longest length for ssd-quadratic (memory L^2)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--state", type=int, default=16)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seq-reps", type=int, default=1, help="timed repetitions of mamba-sequential (seconds to minutes each)")
    ap.add_argument("--one", nargs=2, metavar=("ROW", "LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = (args.batch, args.width, args.state, args.layers, args.reps)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), *sizes)))
        return
    import torch

    from lib.device import describe

    print(f"device: {describe()}, torch {torch.__version__}; batch {args.batch}, width {args.width}, state {args.state}, "
          f"{args.layers} layers, forward+backward, best of {args.reps}")
    print("| row | length | ms | peak MB | x faster than sequential | x faster than mambapy | x faster than mamba-chunked |\n|---|---|---|---|---|---|---|")
    for length in args.lengths:
        results = {}
        for row in args.rows:
            if (row == "mamba-sequential" and length > args.seq_max) or (row == "ssd-quadratic" and length > args.quad_max):
                continue
            reps = args.seq_reps if row == "mamba-sequential" else args.reps
            cmd = [sys.executable, __file__, "--one", row, str(length), "--batch", str(args.batch), "--width", str(args.width),
                   "--state", str(args.state), "--layers", str(args.layers), "--reps", str(reps)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(f"| {row} | {length} | failed: {out.stderr.strip().splitlines()[-1]} | | | | |", flush=True)
                continue
            r = results[row] = json.loads(out.stdout)
            seq, py, ours = (results.get(k) for k in ("mamba-sequential", "mambapy-pscan", "mamba-chunked"))
            ratio = lambda ref: f"{ref['ms'] / r['ms']:.2f}" if ref else "—"
            print(f"| {row} | {length} | {r['ms']:.1f} | {r['peak_mb']:.0f} | {ratio(seq)} | {ratio(py)} | {ratio(ours)} |", flush=True)


if __name__ == "__main__":
    main()
