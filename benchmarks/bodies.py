"""Training-step time of every grid body against attention, plain and looped, at the grid's shapes.

    python benchmarks/bodies.py [--profile cpu] [--tasks mqar] [--rounds 15] [--out benchmarks/results/bodies_cpu.md]

Each contender is the grid's own model (lib.studies.grid.model_config: the body's width solved to the
profile's parameter count, plain = `layers` layers, looped = 1 layer run b times with T = b), trained
on the task's own batches: one step = forward + loss + backward + gradient clipping + AdamW step, as
lib/train.py does it. All contenders of a task run in one process on 1 thread (torch.set_num_threads(1)),
in lockstep: every round times one step of each, in turn, so a change of load hits all of them alike.
Times are medians over rounds of the process's CPU time per step (time.process_time; the wall-clock
median is shown beside it); "x attention" is attention's median over the body's (> 1: faster), plain
against plain attention, looped against looped attention.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from lib.config import read_config
from lib.device import describe
from lib.models.seq import SeqModel
from lib.studies.grid import TASKS, GridSettings, model_config


def contenders(s: GridSettings, task_name: str) -> list[tuple[str, bool, object, object]]:
    """(body, looped, model, task) for every body of s, plain and looped."""
    task = TASKS[task_name][s.levels[0]].build()
    out = []
    for looped in s.looped:
        for body in s.bodies:
            torch.manual_seed(0)
            out.append((body, looped, SeqModel(model_config(s, body, looped, task)), task))
    return out


def step_fn(model, task, batch_size: int):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def step():
        loss = task.loss(model, task.train_batch(batch_size, gen))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def lockstep(steps: list, rounds: int, burn_in: int = 2) -> list[tuple[float, float]]:
    """Median (CPU s, wall s) per step of each function, timed in interleaved rounds."""
    for _ in range(burn_in):
        for f in steps:
            f()
    cpu, wall = [[] for _ in steps], [[] for _ in steps]
    for _ in range(rounds):
        for i, f in enumerate(steps):
            c0, w0 = time.process_time(), time.perf_counter()
            f()
            cpu[i].append(time.process_time() - c0)
            wall[i].append(time.perf_counter() - w0)
    return [(statistics.median(c), statistics.median(w)) for c, w in zip(cpu, wall)]


def table(s: GridSettings, task_name: str, rounds: int) -> list[str]:
    cs = contenders(s, task_name)
    times = lockstep([step_fn(m, t, s.batch_size) for _, _, m, t in cs], rounds)
    ref = {lp: times[i][0] for i, (b, lp, _, _) in enumerate(cs) if b == "attention"}
    task = cs[0][3]
    lines = [f"\n{task_name} ({s.levels[0]}): length {task.seq_len}, batch {s.batch_size}; plain {s.layers} layers, "
             f"looped 1 layer x b = {s.b} (T = b); ~{s.params:,} parameters each; median of {rounds} lockstep rounds\n",
             "| body | looped | width | layers | params | ms/step (CPU) | ms/step (wall) | x attention |",
             "|---|---|---|---|---|---|---|---|"]
    for (body, looped, model, _), (c, w) in zip(cs, times):
        ratio = f"{ref[looped] / c:.2f}" if looped in ref else "—"
        lines.append(f"| {body} | {looped} | {model.cfg.body.d_model} | {model.cfg.body.n_layer} | {model.n_params():,} | "
                     f"{1000 * c:.1f} | {1000 * w:.1f} | {ratio} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", help="configs/block_task_grid/<profile>.yml")
    ap.add_argument("--tasks", nargs="+", default=["mqar"], help="grid tasks (default: the longest cpu task)")
    ap.add_argument("--bodies", nargs="+", help="a subset of the profile's bodies (attention is always timed)")
    ap.add_argument("--looped", choices=["both", "plain", "looped"], default="both")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path, help="also write the output to this markdown file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(__file__).resolve().parents[1]
    raw, _ = read_config(root / "configs" / "block_task_grid" / f"{args.profile}.yml")
    if args.bodies:
        raw["bodies"] = ["attention"] + [b for b in args.bodies if b != "attention"]
    if args.looped != "both":
        raw["looped"] = [args.looped == "looped"]
    s = GridSettings.load(raw)
    load = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [f"# Training-step time of every grid body vs attention (`python benchmarks/bodies.py {' '.join(sys.argv[1:])}`)\n",
             f"device: {describe('cpu')}, torch {torch.__version__}, eager (no compile), fp32; git {rev}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"load before: `{load()}` (other processes share this machine; the lockstep rounds and CPU-time "
             "medians keep the ratios comparable under load, the absolute times less so)"]
    print("\n".join(lines), flush=True)
    for t in args.tasks:
        part = table(s, t, args.rounds)
        print("\n".join(part), flush=True)
        lines += part
    tail = f"\nload after: `{load()}`"
    print(tail)
    lines.append(tail)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
