"""The small language models' wiring (notebooks/small_lms.ipynb): one task (corpus, tokenizer,
windows), every model entry with the same wall-clock budget; its results and findings are
lib/analysis/lm.py's.

    task = lm.make_task(p)
    study = lm.train(p, task)        # history with tokens and tokens_per_s columns
"""
from __future__ import annotations

import pandas as pd

from lib import progress
from lib.models.lm import LanguageModel, LMConfig
from lib.studies import Study, eval_every
from lib.sweep import train_missing, train_sweep
from lib.tasks.lm import LMTask, TextConfig
from lib.train import TrainConfig

STUDY = "small_lms"


def make_task(p: dict) -> LMTask:
    return LMTask(TextConfig(corpus=p["corpus"], path=p["tinystories_path"], n_docs=p["n_docs"], tokenizer=p["tokenizer"],
                             vocab=p["vocab"], ctx=p["ctx"], val_windows=p["val_windows"]))


def runs(p: dict, task: LMTask) -> list[tuple[LMConfig, dict]]:
    """(model config, TrainConfig keys) per entry of p["models"] (LMConfig keys, plus an optional
    per-entry `steps` cap). Every run has the same wall-clock budget `max_minutes` when set, so
    equal compute holds by construction; the caps are set so that the budget binds first."""
    entries = [{k: v for k, v in m.items() if k != "steps"} for m in p["models"]]
    configs = LMConfig.sweep(entries, vocab=task.vocab_size, ctx=p["ctx"])
    out = []
    for c, m in zip(configs, p["models"]):
        n = m.get("steps", p["steps"])
        out.append((c, dict(steps=n, batch_size=p["batch_size"], lr=p["lr"], weight_decay=p["weight_decay"],
                            warmup_steps=p["warmup_steps"], min_lr_ratio=p["min_lr_ratio"], grad_clip=p["grad_clip"],
                            eval_every=eval_every(n, p["evals"]), max_minutes=p["max_minutes"], device=p["device"],
                            compile=p["compile"])))
    return out


def train(p: dict, task: LMTask) -> Study:
    """Every model entry on `task`, each with p["seeds"]; the missing runs train side by side in
    p["workers"] processes (CPU), then every run is loaded."""
    plan = runs(p, task)
    todo = [(c, task, TrainConfig.load({**t, "seed": s})) for c, t in plan for s in p["seeds"]]
    train_missing(LanguageModel, todo, STUDY, p["workers"], cost=lambda c: -c.n_layer)  # equal budgets: any order
    histories, models = [], {}
    with progress.Runs(len(todo)):  # one count of runs, with one ETA, over every model entry
        for c, tcfg in plan:
            h, t = train_sweep(LanguageModel, [c], task, tcfg, seeds=p["seeds"], study=STUDY,
                               columns=lambda c: {"arch": c.arch, "layers": c.n_layer, "d_model": c.d_model})
            histories.append(h)
            models.update(t)
    history = pd.concat(histories, ignore_index=True)
    history["tokens"] = history["samples"] * p["ctx"]
    history["tokens_per_s"] = history["samples_per_s"] * p["ctx"]
    if task.floor_bpc is not None:
        history["excess_bpc"] = history["val_bpc"] - task.floor_bpc
    return Study(task, [c for c, _ in plan], history, models, {}, list(p["seeds"]))
