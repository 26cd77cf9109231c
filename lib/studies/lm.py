"""The small language models' wiring (notebooks/small_lms.ipynb): one task (corpus, tokenizer,
windows), every model entry with the same wall-clock budget, results in bits per character
against the grammar's entropy floor, and the report's findings.

    task = lm.make_task(p)
    study = lm.train(p, task)        # history with tokens and tokens_per_s columns
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib import progress
from lib.analysis import labels, reference
from lib.analysis.stats import compare, fmt, seed_interval
from lib.models.lm import LanguageModel, LMConfig
from lib.studies import Study, eval_every
from lib.sweep import final_rows, train_missing, train_sweep
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


def results(history: pd.DataFrame, task: LMTask) -> pd.DataFrame:
    """One row per model: bits per character at the end of the budget and at equal tokens (mean and
    95 % t-interval over seeds, and the per-seed values), its excess over the entropy floor, steps and minutes."""
    final = final_rows(history)
    common = final["tokens"].min()  # every run saw at least this many tokens
    # bits/char at exactly `common` tokens: linear between the evaluations around it, per run and seed
    at_common = {key: float(np.interp(common, h.sort_values("step").tokens, h.sort_values("step").val_bpc))
                 for key, h in history.groupby(["run", "seed"])}
    unigram = task.stats()["unigram_bpc"]
    floor, rows = task.floor_bpc, []
    for run, f in final.groupby("run", sort=False):
        eq_seeds = tuple(v for (r, _), v in at_common.items() if r == run)
        bpc, eq = seed_interval(f["val_bpc"]), seed_interval(eq_seeds)
        h = history[history.run == run]
        # training minutes until the run first beat the unigram bound by 10 % (the mixer waits at it)
        left = h[h.val_bpc < 0.9 * unigram].groupby("seed")["train_minutes"].min()
        excess = seed_interval(f["val_bpc"] - floor) if floor is not None else (float("nan"),) * 3
        rows.append({"run": run, "arch": f["arch"].iloc[0], "d_model": int(f["d_model"].iloc[0]), "params": int(f["params"].iloc[0]), "seeds": f["seed"].nunique(),
                     "steps": f["step"].mean(), "stop_reason": "/".join(sorted(set(f["stop_reason"]))),
                     "train_minutes": f["train_minutes"].mean(), "tokens": f["tokens"].mean(),
                     "val_bpc": bpc[0], "val_bpc_lo": bpc[1], "val_bpc_hi": bpc[2],
                     "excess_bpc": excess[0], "excess_lo": excess[1], "excess_hi": excess[2],
                     "bpc_equal_tokens": eq[0], "at_tokens": int(common), "minutes_to_leave_unigram": float(left.mean()),
                     "val_loss_nats_per_token": f["val_loss"].mean(), "bpc_ci": bpc, "excess_ci": excess, "bpc_equal_tokens_ci": eq,
                     "bpc_seeds": tuple(f["val_bpc"]), "bpc_equal_tokens_seeds": eq_seeds})
    out = pd.DataFrame(rows)
    out["floor_bpc"], out["unigram_bpc"] = floor, unigram
    return out


def findings(results: pd.DataFrame, task: LMTask, mem: pd.DataFrame) -> str:
    """The report's "What we found": every comparison with its seeds and intervals, and the
    reference's two rows (d = 512: mixer ahead; d = 256: transformer ahead) labelled: judged only
    where our models have the row's width, untested (no d = 512 model) or not comparable otherwise."""
    r = results.set_index("arch")
    seeds = int(results["seeds"].min())
    floor, uni = task.floor_bpc, float(results["unigram_bpc"].iloc[0])
    lines = []
    if floor is not None:
        lines.append(f"- Entropy floor of the validation stories: **{floor:.3f} bits/char** (exact, from the grammar); unigram bound "
                     f"{uni:.3f}. Every model sits above the floor: " + ", ".join(
                         f"{a} {fmt(row.bpc_ci)} ({row.val_bpc / floor:.1f}× the floor)" for a, row in r.iterrows())
                     + f" (mean [95 % t-interval] over {seeds} seeds).")
    lines.append("- Budgets: " + ", ".join(f"{a} {row.train_minutes:.1f} min, {row.steps:.0f} steps ({row.stop_reason})"
                                           for a, row in r.iterrows()) + ".")
    best = results.sort_values("val_bpc").iloc[0]
    lines.append(f"- Lowest bits/char at the end of the budget: **{best.arch}**. Pairwise: " + "; ".join(
        compare(r.loc[a, "bpc_seeds"], r.loc[b, "bpc_seeds"]).sentence(a, b)
        for a, b in (("mixer", "gpt"), ("mixer", "ssd"), ("gpt", "ssd")) if a in r.index and b in r.index) + ".")
    if {"mixer", "gpt"} <= set(r.index):
        m, g = r.loc["mixer"], r.loc["gpt"]
        cmp = compare(m.bpc_seeds, g.bpc_seeds)
        done = all(s == "converged" for s in (m.stop_reason, g.stop_reason))
        widths = {int(m.d_model), int(g.d_model)}
        nearest = min((512, 256), key=lambda d: min(abs(d - w) for w in widths))
        val = reference.small_lm_val
        for d, expected, ref in ((512, "lower", f"mixer {val('mixer', 512):.2f} vs transformer {val('gpt', 512):.2f} val CE "
                                                "(nats/token), the mixer ahead"),
                                 (256, "higher", f"transformer {val('gpt', 256):.2f} vs mixer {val('mixer', 256):.2f} val CE "
                                                 "(nats/token), the transformer ahead")):
            claim = f"d = {d}: the mixer {expected} than the transformer"
            kw = dict(ref_metric="validation CE at equal compute", ref_horizon="12 h on a GPU", ref_value=ref, finished=done)
            if widths == {d}:
                v = labels.comparison_verdict(claim, cmp, expected, **kw)
            else:  # the row nearest our width: not comparable; a farther one: untested (no model of that width)
                label, reason = labels.derive(None, seeds if d == nearest else 0, done, False,
                                              f"our models are d = {'/'.join(map(str, sorted(widths)))}, not {d}")
                v = labels.Verdict(claim, kw["ref_metric"], kw["ref_horizon"], ref, cmp.mean_a, cmp.ci_a, seeds, done, False, label, reason)
            lines.append(f"- Reference, d = {d} ({ref}): **{v.label}** here ({v.reason}).")
        lines.append(f"- At equal tokens ({int(results.at_tokens.min()):,}, interpolated between evaluations): "
                     + compare(m.bpc_equal_tokens_seeds, g.bpc_equal_tokens_seeds).sentence("mixer", "transformer") + ".")
    lines.append("- Training minutes until a model first beats the unigram bound by 10 %: " + ", ".join(
        f"{a} {row.minutes_to_leave_unigram:.1f}" for a, row in r.iterrows()) + " (a model that waits at the unigram bound "
        "spends that part of an equal budget learning nothing beyond word frequencies).")
    big = mem[mem.context == mem.context.max()].set_index("run")["memory_mb"]
    lines.append(f"- Memory of one forward+backward at context {mem.context.max()}: " + ", ".join(f"{k} {v:.1f} MiB" for k, v in big.items()) + ".")
    return "\n".join(lines)


def results_table(results: pd.DataFrame) -> pd.DataFrame:
    """`results` for the report: intervals as 'mean [lo, hi]' strings, fewer columns."""
    return pd.DataFrame({"run": results.run, "params": results.params, "seeds": results.seeds, "steps": results.steps,
                         "stop_reason": results.stop_reason, "train_minutes": results.train_minutes,
                         "val_bpc [95 % CI]": results.bpc_ci.map(fmt), "above floor [95 % CI]": results.excess_ci.map(fmt),
                         "bpc at equal tokens": results.bpc_equal_tokens_ci.map(fmt), "at_tokens": results.at_tokens,
                         "minutes to leave unigram": results.minutes_to_leave_unigram,
                         "nats/token": results.val_loss_nats_per_token})
