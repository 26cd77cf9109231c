"""The small language models' wiring (notebooks/small_lms.ipynb): one task (corpus, tokenizer,
windows) and one training call per model entry, each entry with its own step budget.

    task = lm.make_task(p)
    study = lm.train(p, task)        # history with tokens and tokens_per_s columns
"""
from __future__ import annotations

import pandas as pd

from lib.models.lm import LanguageModel, LMConfig
from lib.studies import Study, eval_every
from lib.sweep import train_sweep
from lib.tasks.lm import LMTask, TextConfig

STUDY = "small_lms"


def make_task(p: dict) -> LMTask:
    return LMTask(TextConfig(corpus=p["corpus"], path=p["tinystories_path"], n_docs=p["n_docs"], tokenizer=p["tokenizer"],
                             vocab=p["vocab"], ctx=p["ctx"], val_windows=p["val_windows"]))


def train(p: dict, task: LMTask) -> Study:
    """Every entry of p["models"] (LMConfig keys, plus an optional per-entry `steps`) on `task`."""
    configs = LMConfig.sweep([{k: v for k, v in m.items() if k != "steps"} for m in p["models"]], vocab=task.vocab_size, ctx=p["ctx"])
    histories, models = [], {}
    for c, m in zip(configs, p["models"]):
        n = m.get("steps", p["steps"])
        tcfg = dict(steps=n, batch_size=p["batch_size"], lr=p["lr"], weight_decay=p["weight_decay"], warmup_steps=p["warmup_steps"],
                    min_lr_ratio=p["min_lr_ratio"], grad_clip=p["grad_clip"], eval_every=eval_every(n, p["evals"]), device=p["device"],
                    compile=p["compile"])
        h, t = train_sweep(LanguageModel, [c], task, tcfg, seeds=p["seeds"], study=STUDY,
                           columns=lambda c: {"arch": c.arch, "layers": c.n_layer, "d_model": c.d_model})
        histories.append(h)
        models.update(t)
    history = pd.concat(histories, ignore_index=True)
    history["tokens"] = history["samples"] * p["ctx"]
    history["tokens_per_s"] = history["samples_per_s"] * p["ctx"]
    return Study(task, configs, history, models, {}, list(p["seeds"]))
