"""The whole looped family at a profile: every run its notebooks need (read from each notebook's
configs/<notebook>/<profile>.yml), what training them costs, and training the missing ones in a
pool of processes, costliest first, so the notebooks then load them.

    python -m lib.studies.family cpu --workers 2

The family's wiring for one notebook is lib/studies/looped.py; this module reads the other
notebooks' profiles (lib.notebooks), so it sits above it.
"""
from __future__ import annotations

import argparse
import copy
import os

from lib import notebooks
from lib.models import bodies
from lib.models.looped import Looped, LoopedConfig
from lib.provenance import RETRAIN_STALE_ENV
from lib.studies import looped
from lib.sweep import checkpoint_for, run_identity, train_missing
from lib.train import TrainConfig, finished, load_checkpoint


def runs(profile: str) -> list:
    """Every (model config, task, TrainConfig) the family's notebooks need at `profile`, once each."""
    out, seen, named, asked = [], set(), set(), set()
    for nb in looped.FAMILY:
        p = notebooks.profile_parameters(nb, profile)
        s = looped.settings(p)
        points = p.get("mask_points")
        for kind in p.get("kinds", [s.kind]):
            task = looped.make_task(s, kind, points)
            for c in looped.model_configs(s, p["sweep"], points):
                named.add(c.name)
                seeds = p["seeds"] if c.looped or not p.get("plain_seeds") else p["plain_seeds"]
                for seed in seeds:
                    run = (c, copy.deepcopy(looped.loop_curriculum(task, s.loops_ramp)(c)),
                           TrainConfig.load({**s.train_config(c.name), "seed": seed}))
                    key = checkpoint_for(looped.STUDY, *run)
                    if key not in seen:
                        seen.add(key)
                        out.append(run)
        asked |= set(s.steps_for or {})
    if asked - named:
        raise ValueError(f"steps_for at profile {profile!r} names no run of the family: {sorted(asked - named)}; "
                         f"its runs: {sorted(named)}")
    return out


def cost(c: LoopedConfig) -> float:
    """A rough relative cost of one training step (for ordering work: longest first): the body's
    cost per layer and position, times layers, positions and iterations (those without gradient
    counted at a third)."""
    grad_iters = min(c.T, c.b)
    return bodies.get(c.body).cost * c.n_layer * (grad_iters + (c.b - grad_iters) / 3) * c.n_positions


def training(profile: str) -> dict:
    """What training the whole family costs at `profile`, from its checkpoints: runs, runs present
    and finished, and the sum of their training minutes (evaluation excluded)."""
    todo = runs(profile)
    saved = [(load_checkpoint(p, identity=run_identity(looped.STUDY, c, t, cfg)), cfg) for c, t, cfg in todo
             if (p := checkpoint_for(looped.STUDY, c, t, cfg)).exists()]
    done = [s for s, cfg in saved if finished(s, cfg)]
    return {"runs": len(todo), "finished": len(done), "minutes": sum(s["train_seconds"] for s in done) / 60}


def train(profile: str, workers: int = 2) -> list[str]:
    """Train every missing run of the family at `profile` in `workers` processes, longest first:
    the notebooks then load them."""
    todo = runs(profile)
    print(f"{len(todo)} runs in the looped family at profile {profile!r}")
    return train_missing(Looped, todo, looped.STUDY, workers, cost=cost)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m lib.studies.family", description=train.__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--retrain-stale", action="store_true",
                    help="also retrain finished runs whose model/task/training code changed since they were trained")
    args = ap.parse_args()
    if args.retrain_stale:
        os.environ[RETRAIN_STALE_ENV] = "1"  # read by train() here and in the spawned workers
    train(args.profile, args.workers)
