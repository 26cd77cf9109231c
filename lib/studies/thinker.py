"""The latent thinker study's wiring (notebooks/latent_thinker.ipynb): four experiments on
algorithmic tasks, each one call from the notebook's parameters `p`.

    copy_curricula(p)        copy with no / uniform / adaptive length curriculum + an equal-size causal TF
    addition(p)              base-b addition on held-out operand pairs, per width + an equal-size causal TF
    compute_randomised(p)    one model trained with (n_latent, n_step) drawn per batch, evaluated on a grid
    length_generalisation(p) copy trained on short kept lengths, scored on every kept length
"""
from __future__ import annotations

import pandas as pd
import torch

from lib.curriculum import AdaptiveLength, ComputeRandom, UniformLength
from lib.models.gpt import GPTReader, ReaderConfig
from lib.models.thinker import Thinker, ThinkerConfig
from lib.studies import Study, eval_every
from lib.sweep import train_sweep
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig

STUDY = "latent_thinker"


def train_config(p: dict, steps: int, lr: float, batch: int, warmup: int = 0, min_lr_ratio: float = 0.0) -> dict:
    return dict(steps=steps, batch_size=batch, lr=lr, warmup_steps=warmup, min_lr_ratio=min_lr_ratio, weight_decay=0.0,
                grad_clip=p["grad_clip"], eval_every=eval_every(steps, p["evals"]), device=p["device"], compile=p["compile"])


def equal_size_baseline(task_cfg: AlgorithmicConfig, n_params: int) -> ReaderConfig:
    """A standard 1-layer causal transformer whose width gives the parameter count closest to n_params."""
    return min((ReaderConfig(vocab=task_cfg.vocab, out_len=task_cfg.out_len, n_embd=w, n_head=4,
                             n_positions=task_cfg.in_len + task_cfg.out_len) for w in range(8, 129, 4)),
               key=lambda c: abs(GPTReader(c).n_params() - n_params))


def curriculum(p: dict, name: str, length: int):
    """A length curriculum by name: none, uniform (kept lengths 3..uniform_max_keep) or adaptive."""
    makers = {"none": lambda: None, "uniform": lambda: UniformLength(length, max_keep=min(length, p["uniform_max_keep"])),
              "adaptive": lambda: AdaptiveLength(length, start=p["adaptive_start"], threshold=p["adaptive_threshold"])}
    if name not in makers:
        raise ValueError(f"curriculum must be one of {sorted(makers)}, got {name!r}")
    return makers[name]()


def copy_model(p: dict, length: int, n_latent: int | None = None, n_step: int | None = None) -> ThinkerConfig:
    cfg = AlgorithmicConfig(task="copy", V=p["copy_V"], length=length)
    return ThinkerConfig(vocab=cfg.vocab, out_len=cfg.out_len, d=p["copy_d"], n_head=p["copy_heads"],
                         n_latent=n_latent or p["copy_latents"], n_step=n_step or p["copy_n_step"], latent_readout=True, max_len=4 * length)


def copy_curricula(p: dict) -> Study:
    """Copy at copy_length with each curriculum (and the equal-size causal TF): history with a
    `curriculum` column, models keyed by (curriculum, seed)."""
    task_cfg = AlgorithmicConfig(task="copy", V=p["copy_V"], length=p["copy_length"], val_size=p["val_size"])
    model = copy_model(p, p["copy_length"])
    tcfg = train_config(p, p["copy_steps"], p["copy_lr"], p["copy_batch"], p["copy_warmup"])
    histories, models = [], {}
    for cur in p["curricula"]:
        h, m = train_sweep(Thinker, [model], Algorithmic(task_cfg, lengths=curriculum(p, cur, p["copy_length"])), tcfg,
                           seeds=p["copy_seeds"], study=STUDY, columns=lambda c: {"curriculum": cur}, workers=p["workers"])
        histories.append(h)
        models.update({(cur, s): v for (_, s), v in m.items()})
    base = equal_size_baseline(task_cfg, next(iter(models.values())).n_params())
    h, m = train_sweep(GPTReader, [base], Algorithmic(task_cfg), tcfg, seeds=p["copy_seeds"], study=STUDY,
                       columns=lambda c: {"curriculum": "none (causal TF)"}, workers=p["workers"])
    models.update({("none (causal TF)", s): v for (_, s), v in m.items()})
    return Study(Algorithmic(task_cfg), [model, base], pd.concat(histories + [h], ignore_index=True), models, tcfg, p["copy_seeds"])


def addition(p: dict) -> Study:
    """Base-b addition at every width of add_widths, then the equal-size causal TF of the first width."""
    task = Algorithmic(AlgorithmicConfig(task="addition", base=p["add_base"], limit=p["add_limit"], val_size=p["val_size"]))
    configs = [ThinkerConfig(vocab=task.cfg.vocab, out_len=task.cfg.out_len, d=w, n_head=min(8, w // 2), n_latent=p["add_latents"],
                             n_step=p["add_n_step"], max_len=4 * task.cfg.in_len) for w in p["add_widths"]]
    tcfg = train_config(p, p["add_steps"], p["add_lr"], p["add_batch"], p["add_warmup"], p["add_min_lr_ratio"])
    hist, models = train_sweep(Thinker, configs, task, tcfg, seeds=p["add_seeds"], study=STUDY, workers=p["workers"])
    base = equal_size_baseline(task.cfg, models[configs[0].name, p["add_seeds"][0]].n_params())
    base_hist, base_models = train_sweep(GPTReader, [base], task, tcfg, seeds=p["add_seeds"], study=STUDY, workers=p["workers"])
    return Study(task, configs + [base], pd.concat([hist, base_hist], ignore_index=True), {**models, **base_models}, tcfg, p["add_seeds"])


def compute_randomised(p: dict) -> tuple[Study, pd.DataFrame]:
    """The compute-randomised model, and its held-out accuracy on the eval_latents x eval_n_steps grid
    (column `trained`: the cell is in the training sets)."""
    task_cfg = AlgorithmicConfig(task=p["rand_task"], V=p["copy_V"], length=p["rand_length"], val_size=p["val_size"])
    model = ThinkerConfig(vocab=task_cfg.vocab, out_len=task_cfg.out_len, d=p["copy_d"], n_head=p["copy_heads"],
                          n_latent=max(p["rand_latents"]), n_step=max(p["rand_n_steps"]), latent_readout=True, max_len=4 * p["rand_length"])
    task = Algorithmic(task_cfg, lengths=curriculum(p, p["rand_curriculum"], p["rand_length"]),
                       compute=ComputeRandom(p["rand_latents"], p["rand_n_steps"]))
    tcfg = train_config(p, p["rand_steps"], p["copy_lr"], p["copy_batch"], p["copy_warmup"])
    hist, models = train_sweep(Thinker, [model], task, tcfg, seeds=p["copy_seeds"], study=STUDY, workers=p["workers"])
    grid = pd.DataFrame([{"n_latent": m, "n_step": s, "seed": seed, "trained": m in p["rand_latents"] and s in p["rand_n_steps"],
                          **task.evaluate(models[model.name, seed], n_latent=m, n_step=s)}
                         for m in p["eval_latents"] for s in p["eval_n_steps"] for seed in p["copy_seeds"]])
    return Study(task, [model], hist, models, tcfg, p["copy_seeds"]), grid


def length_generalisation(p: dict) -> tuple[Study, pd.DataFrame]:
    """Copy trained on kept lengths <= train_max_keep; per kept length k and seed, the token accuracy
    on the k kept positions (the blanked prefix is trivially right, so it is left out)."""
    task_cfg = AlgorithmicConfig(task="copy", V=p["copy_V"], length=p["copy_length"], val_size=p["val_size"])
    task = Algorithmic(task_cfg, lengths=UniformLength(p["copy_length"], min_keep=1, max_keep=p["train_max_keep"]))
    model = copy_model(p, p["copy_length"])
    tcfg = train_config(p, p["copy_steps"], p["copy_lr"], p["copy_batch"], p["copy_warmup"])
    hist, models = train_sweep(Thinker, [model], task, tcfg, seeds=p["length_seeds"], study=STUDY,
                               columns=lambda c: {"max_keep": p["train_max_keep"]}, workers=p["workers"])

    @torch.no_grad()
    def kept_accuracy(m, k):
        val = task.at_length(k)
        device = next(m.parameters()).device
        return float((m(val.x.to(device)).argmax(-1).cpu() == val.y)[:, -k:].float().mean())

    by_len = pd.DataFrame([{"kept length": k, "seed": s, "trained": k <= p["train_max_keep"],
                            "kept_token_acc": kept_accuracy(models[model.name, s], k),
                            **task.evaluate(models[model.name, s], val=task.at_length(k))}
                           for k in range(1, p["copy_length"] + 1) for s in p["length_seeds"]])
    return Study(task, [model], hist, models, tcfg, p["length_seeds"]), by_len
