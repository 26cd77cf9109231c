"""Runs per hour: S seeds trained one after another (lib.train.train) vs as one batched model
(lib.batched.train_batched), at the block x task grid's shape: a ~50k-parameter SeqModel on the
grid's easy MQAR (length 64), batch 64.

    python benchmarks/batched_seeds.py --device cpu [--seeds 1 5 20 64] [--bodies attention conv] [--threads 1]

Both contenders are the project's own loops, called whole (model build, evaluation replaced by an
empty one, checkpoints off). A step's cost is the difference between a call of 2w steps and one of
w steps, divided by w, so set-up and the first steps cancel (after one untimed call of each per body). On a CPU the clock is the process's
CPU time (the machine may be shared: this is what one dedicated core would do); on CUDA the wall
clock (the loop reads its loss back at the end of each call, which waits for the device). Separate
runs cost S times one run, so the separate side times min(S, --max-separate) runs. The ratio is
batched runs/hour over separate runs/hour, both measured in this process, alternating.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import platform
import subprocess
import time

import torch

from lib.batched import train_batched
from lib.device import describe, pick
from lib.models.seq import SeqModel
from lib.studies.grid import TASKS, GridSettings, model_config
from lib.train import TrainConfig, build, train

RUN_STEPS = 600  # the grid's cpu cap: the run length behind "runs/hour"


class Unevaluated:
    """The task with an empty evaluation: only training steps are timed."""

    def __init__(self, task):
        self.task = task

    def train_batch(self, batch_size, gen, step=0):
        return self.task.train_batch(batch_size, gen, step)

    def loss(self, model, batch):
        return self.task.loss(model, batch)

    def evaluate(self, model) -> dict:
        return {}


def per_step(run, w: int, clock) -> float:
    """Seconds per step of run(steps): (cost of 2w steps - cost of w steps) / w."""
    def cost(steps: int) -> float:
        t0 = clock()
        run(steps)
        return clock() - t0

    short = cost(w)
    return (cost(2 * w) - short) / w


def separate(mcfg, task, cfg: TrainConfig, n: int, w: int, clock) -> float:
    """Seconds per step of one run trained alone (mean over n runs, seeds 0 .. n-1)."""
    def run(steps: int) -> None:
        for s in range(n):
            train(build(SeqModel, mcfg, s), Unevaluated(task), dataclasses.replace(cfg, seed=s, steps=steps, eval_every=steps))

    return per_step(run, w, clock) / n


def batched(mcfg, task, cfg: TrainConfig, S: int, w: int, clock) -> tuple[float, str]:
    """Seconds per batched step of all S members, and how the losses were computed (vmap or a loop)."""
    out = io.StringIO()

    def run(steps: int) -> None:
        with contextlib.redirect_stdout(out):
            train_batched([build(SeqModel, mcfg, s) for s in range(S)], [Unevaluated(task) for _ in range(S)],
                          [dataclasses.replace(cfg, seed=s, steps=steps, eval_every=steps) for s in range(S)])

    seconds = per_step(run, w, clock)
    return seconds, "loop" if "cannot be vmapped" in out.getvalue() else "vmap"


def machine(device: torch.device) -> str:
    cpu = platform.processor() or "CPU"
    with contextlib.suppress(OSError):
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return (f"device: {describe(device)}; CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
            f"torch {torch.__version__}\nload at start: {load}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 5, 20, 64])
    ap.add_argument("--bodies", nargs="+", default=["attention", "conv"])
    ap.add_argument("--w", type=int, default=2, help="steps timed per call (a call of 2w steps minus one of w)")
    ap.add_argument("--max-separate", type=int, default=5, help="separate runs timed (their mean cost stands for each of S)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick(args.device)
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    task = TASKS["mqar"]["easy"].build()
    settings = GridSettings()
    cfg = TrainConfig(batch_size=settings.batch_size, lr=1e-3, warmup_steps=0, grad_clip=1.0, device=args.device, compile=False)
    print(machine(device))
    print(f"MQAR length {task.cfg.seq_len}, vocabulary {task.cfg.vocab}, batch {cfg.batch_size}; {args.w} timed steps per call; "
          f"clock: {'process CPU time' if device.type == 'cpu' else 'wall'}; runs/hour at {RUN_STEPS} steps a run\n")
    print("| body | params | S | batched via | separate runs timed | separate ms/step/run | batched ms/step/run | "
          "separate runs/h | batched runs/h | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    per_hour = lambda s: 3600 / (s * RUN_STEPS)
    for body in args.bodies:
        mcfg = model_config(settings, body, False, task)
        params = SeqModel(mcfg).n_params()
        separate(mcfg, task, cfg, 1, 1, clock), batched(mcfg, task, cfg, 2, 1, clock)  # burn-in: first calls, lazy set-up
        for S in args.seeds:
            n = min(S, args.max_separate)
            sep = separate(mcfg, task, cfg, n, args.w, clock)
            bat, path = batched(mcfg, task, cfg, S, args.w, clock)
            bat /= S
            print(f"| {body} | {params:,} | {S} | {path} | {n} | {1000 * sep:.1f} | {1000 * bat:.1f} | {per_hour(sep):,.0f} | "
                  f"{per_hour(bat):,.0f} | {sep / bat:.2f} |", flush=True)
    print(f"\nload at end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
