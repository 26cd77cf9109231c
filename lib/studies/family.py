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
import dataclasses
import os

from lib import notebooks
from lib.models import bodies
from lib.models.looped import Looped, LoopedConfig
from lib.provenance import RETRAIN_STALE_ENV
from lib.studies import looped
from lib.sweep import BACKENDS, checkpoint_for, run_identity, train_missing
from lib.train import finished, load_checkpoint


def runs(profile: str) -> list:
    """Every (model config, task, TrainConfig) the family's notebooks need at `profile`, once each."""
    out, seen, named, asked = [], set(), set(), set()
    for nb in looped.FAMILY:
        s = notebooks.profile_settings(nb, profile)
        points = s.points_trained()
        for kind in s.kinds_trained():
            task = looped.make_task(s, kind, points)
            for c in looped.model_configs(s, s.sweep, points):
                named.add(c.name)
                for seed in s.seeds_for(c):
                    run = (c, copy.deepcopy(looped.loop_curriculum(task, s.loops_ramp)(c)),
                           dataclasses.replace(s.train_config(c.name), seed=seed))
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


def train(profile: str, workers: int = 2, backend: str = "processes", ray_address: str | None = None,
          gpus_per_run: float = 0.0) -> list[str]:
    """Train every missing run of the family at a profile side by side, longest first.

    In `workers` processes, or as Ray tasks (backend 'ray', on a local Ray or the cluster at
    `ray_address`); the notebooks then load them."""
    todo = runs(profile)
    print(f"{len(todo)} runs in the looped family at profile {profile!r}")
    return train_missing(Looped, todo, looped.STUDY, workers, cost=cost, backend=backend, ray_address=ray_address,
                         gpus_per_run=gpus_per_run)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m lib.studies.family", description=train.__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", choices=BACKENDS, default="processes")
    ap.add_argument("--ray-address", default=None, help="a Ray cluster ('auto', 'host:port', 'ray://host:10001'); default: a local Ray")
    ap.add_argument("--gpus-per-run", type=float, default=0.0)
    ap.add_argument("--retrain-stale", action="store_true",
                    help="also retrain finished runs whose model/task/training code changed since they were trained")
    args = ap.parse_args()
    if args.retrain_stale:
        os.environ[RETRAIN_STALE_ENV] = "1"  # read by train() here and in the spawned workers
    train(args.profile, args.workers, args.backend, args.ray_address, args.gpus_per_run)
