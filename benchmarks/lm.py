"""Training throughput and memory of the three small language models at equal parameter count.

    python benchmarks/lm.py [--config configs/small_lms/cpu.yml] [--ctx 512] [--contexts 512 1024 2048 4096]

Models: the `models` list of a small_lms config (sizes matched to ~equal parameters there), each
rebuilt at context --ctx. Table 1: training tokens/s (AdamW step included, batch --batch) and the
memory of one training step, with ratios to the transformer from this run. Table 2: memory of
one forward+backward at batch 1 against context. Memory: on CPU the bytes autograd saves for the
backward pass (lib.memory), on a GPU the allocator's peak. On a GPU, rows with torch.compile and
bf16 autocast are added.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F

from lib import device as devices
from lib.config import read_yaml
from lib.memory import fwd_bwd_memory_mb
from lib.models.lm import LanguageModel, LMConfig


def loss_of(model, x):
    return F.cross_entropy(model(x[:, :-1]).flatten(0, 1).float(), x[:, 1:].flatten())


def throughput(cfg: LMConfig, batch: int, steps: int, dev, compiled: bool, amp: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    model = LanguageModel(cfg).to(dev)
    net = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, cfg.vocab, (batch, cfg.ctx + 1), device=dev)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else torch.autocast("cpu", enabled=False)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step():
        with ctx:
            loss = loss_of(net, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(2):  # warm-up (and compilation)
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    tok_s = steps * batch * cfg.ctx / (time.perf_counter() - t0)
    with ctx:
        mem = fwd_bwd_memory_mb(lambda: loss_of(net, x), dev)
    return tok_s, mem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/small_lms/cpu.yml")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--contexts", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    args = ap.parse_args()
    dev = devices.pick()
    cfgs = [LMConfig.load({**{k: v for k, v in m.items() if k != "steps"}, "vocab": args.vocab, "ctx": args.ctx})
            for m in read_yaml(args.config)["models"]]
    variants = [(False, False)] + ([(True, False), (True, True)] if dev.type == "cuda" else [])
    print(f"device: {devices.describe(dev)}, torch {torch.__version__}; models from {args.config}, vocab {args.vocab}\n")
    print(f"Training at context {args.ctx}, batch {args.batch} (tokens/s over {args.steps} steps after 2 warm-up steps)\n")
    print("| model | params | compile | bf16 | tokens/s | x transformer | step memory MiB | x transformer |\n|---|---|---|---|---|---|---|---|")
    for compiled, amp in variants:
        rows = {c.name: (c, *throughput(c, args.batch, args.steps, dev, compiled, amp)) for c in cfgs}
        ref = next((r for r in rows.values() if r[0].arch == "gpt"), None)
        for name, (c, tok_s, mem) in rows.items():
            n = sum(p.numel() for p in LanguageModel(c).parameters())
            rt = f"{tok_s / ref[1]:.2f}" if ref else "—"
            rm = f"{mem / ref[2]:.2f}" if ref else "—"
            print(f"| {name} | {n:,} | {compiled} | {amp} | {tok_s:,.0f} | {rt} | {mem:.0f} | {rm} |", flush=True)
    print("\nMemory of one forward+backward at batch 1 against context (MiB)\n")
    print("| model | " + " | ".join(str(t) for t in args.contexts) + " | slope MiB per 1k tokens (last two) |")
    print("|---|" + "---|" * (len(args.contexts) + 1))
    for c in cfgs:
        mems = []
        for T in args.contexts:
            cT = dataclasses.replace(c, ctx=T)
            model = LanguageModel(cT).to(dev)
            x = torch.randint(0, cT.vocab, (1, T + 1), device=dev)
            mems.append(fwd_bwd_memory_mb(lambda: loss_of(model, x), dev))
            del model
        slope = (mems[-1] - mems[-2]) / ((args.contexts[-1] - args.contexts[-2]) / 1000) if len(mems) > 1 else float("nan")
        print(f"| {c.name} | " + " | ".join(f"{m:.1f}" for m in mems) + f" | {slope:.2f} |", flush=True)


if __name__ == "__main__":
    main()
