"""Findings of the small language models (notebooks/small_lms.ipynb): values and labels first, prose second.

    results(history, task)                # one row per model: bits per character at the end of the budget and at equal tokens
    found = findings(history, task, mem)  # the comparisons (lib.analysis.stats) and the reference's two rows, labelled
    render(found)                         # the report's "What we found"

Also the measurements the findings read beside training: memory against context (`memory`) and
the causality check on the trained models (`causality`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lib.analysis import labels, reference
from lib.analysis.stats import Comparison, compare, fmt, seed_interval
from lib.memory import fwd_bwd_memory_mb
from lib.models.lm import LanguageModel
from lib.sweep import final_rows

PAIRS = (("mixer", "gpt"), ("mixer", "ssd"), ("gpt", "ssd"))  # the pairwise comparisons, when both models ran
LEAVE_UNIGRAM = 0.9  # a model "leaves" the unigram bound at its first evaluation below this fraction of it


def corpus_table(task) -> pd.DataFrame:
    """The corpus's statistics in one row (documents, tokens, vocabulary, unigram bound, entropy floor)."""
    return pd.DataFrame([task.stats()])


def budget_table(history: pd.DataFrame) -> pd.DataFrame:
    """One row per model: parameters, seeds, steps, stop reason, training minutes and tokens per second (means over seeds)."""
    return (final_rows(history).groupby(["run", "arch"], as_index=False, sort=False)
            .agg(params=("params", "first"), seeds=("seed", "nunique"), steps=("step", "mean"), stop_reason=("stop_reason", "first"),
                 train_minutes=("train_minutes", "mean"), tokens_per_s=("tokens_per_s", "mean")))


def results(history: pd.DataFrame, task) -> pd.DataFrame:
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
        left = h[h.val_bpc < LEAVE_UNIGRAM * unigram].groupby("seed")["train_minutes"].min()
        excess = seed_interval(f["val_bpc"] - floor) if floor is not None else (float("nan"),) * 3
        rows.append({"run": run, "arch": f["arch"].iloc[0], "d_model": int(f["d_model"].iloc[0]), "params": int(f["params"].iloc[0]),
                     "seeds": f["seed"].nunique(), "steps": f["step"].mean(), "stop_reason": "/".join(sorted(set(f["stop_reason"]))),
                     "train_minutes": f["train_minutes"].mean(), "tokens": f["tokens"].mean(),
                     "val_bpc": bpc[0], "val_bpc_lo": bpc[1], "val_bpc_hi": bpc[2],
                     "excess_bpc": excess[0], "excess_lo": excess[1], "excess_hi": excess[2],
                     "bpc_equal_tokens": eq[0], "at_tokens": int(common), "minutes_to_leave_unigram": float(left.mean()),
                     "val_loss_nats_per_token": f["val_loss"].mean(), "bpc_ci": bpc, "excess_ci": excess, "bpc_equal_tokens_ci": eq,
                     "bpc_seeds": tuple(f["val_bpc"]), "bpc_equal_tokens_seeds": eq_seeds})
    out = pd.DataFrame(rows)
    out["floor_bpc"], out["unigram_bpc"] = floor, unigram
    return out


def results_table(history: pd.DataFrame, task) -> pd.DataFrame:
    """results() for the report: intervals as 'mean [lo, hi]' strings, fewer columns."""
    res = results(history, task)
    return pd.DataFrame({"run": res.run, "params": res.params, "seeds": res.seeds, "steps": res.steps,
                         "stop_reason": res.stop_reason, "train_minutes": res.train_minutes,
                         "val_bpc [95 % CI]": res.bpc_ci.map(fmt), "above floor [95 % CI]": res.excess_ci.map(fmt),
                         "bpc at equal tokens": res.bpc_equal_tokens_ci.map(fmt), "at_tokens": res.at_tokens,
                         "minutes to leave unigram": res.minutes_to_leave_unigram,
                         "nats/token": res.val_loss_nats_per_token})


def memory(configs, contexts, task, device) -> pd.DataFrame:
    """MiB of one forward+backward at batch 1 (lib.memory) for each model config with its window widened to each context."""
    rows = []
    for c in configs:
        for T in contexts:
            m = LanguageModel(dataclasses.replace(c, ctx=T)).to(device)
            x = torch.randint(0, c.vocab, (1, T + 1), device=device)
            rows.append({"run": c.name, "arch": c.arch, "context": T, "params": m.n_params(),
                         "memory_mb": fwd_bwd_memory_mb(lambda: task.loss(m, (x,)), device)})
    return pd.DataFrame(rows)


def memory_table(mem: pd.DataFrame) -> pd.DataFrame:
    """memory() as context x run (MiB)."""
    return mem.pivot(index="context", columns="run", values="memory_mb")


@torch.no_grad()
def causality(models: dict, configs, val_x: torch.Tensor, seed: int) -> pd.DataFrame:
    """Per model (the weights of `seed`) and position j of the windows `val_x` (B, ctx + 1): change token j and
    record the largest change of any logit before j (a causal model: exactly 0) and at j or later."""
    x = val_x[:, :-1]
    ctx, rows = x.shape[1], []
    for c in configs:
        model = models[c.name, seed]
        x = x.to(next(model.parameters()).device)
        base = model(x)
        for j in (ctx // 4, ctx // 2, ctx - 1):
            y = x.clone()
            y[:, j] = (y[:, j] + 1) % c.vocab
            out = model(y)
            rows.append({"run": c.name, "j": j, "max change before j": (out[:, :j] - base[:, :j]).abs().max().item(),
                         "max change at/after j": (out[:, j:] - base[:, j:]).abs().max().item()})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Findings:
    """The classifications behind the report's findings. `results` is results() (one row per model);
    `pairwise`: (a, b, a vs b on final bits/char); `reference`: the reference's d = 512 and d = 256
    rows, labelled (lib.analysis.labels); `equal_tokens`: mixer vs transformer at equal tokens."""
    results: pd.DataFrame
    seeds: int  # the fewest seeds of any model
    best: str  # the model with the lowest mean bits/char at the end of the budget
    pairwise: tuple[tuple[str, str, Comparison], ...]
    reference: tuple[tuple[int, labels.Verdict], ...]  # (the row's width, its verdict); empty without both a mixer and a transformer
    equal_tokens: Comparison | None
    memory_context: int  # the largest context measured
    memory: dict[str, float]  # run -> MiB at memory_context


def reference_verdicts(mixer: pd.Series, gpt: pd.Series, seeds: int) -> tuple[tuple[int, labels.Verdict], ...]:
    """The reference's two rows (d = 512: the mixer ahead; d = 256: the transformer ahead), each judged
    on our final bits/char only where our models have that width; the row nearest our width is not
    comparable, the other untested (no model of that width)."""
    cmp = compare(mixer.bpc_seeds, gpt.bpc_seeds)
    done = all(s == "converged" for s in (mixer.stop_reason, gpt.stop_reason))
    widths = {int(mixer.d_model), int(gpt.d_model)}
    nearest = min((512, 256), key=lambda d: min(abs(d - w) for w in widths))
    val = reference.small_lm_val
    out = []
    for d, expected, ref in ((512, "lower", f"mixer {val('mixer', 512):.2f} vs transformer {val('gpt', 512):.2f} val CE "
                                            "(nats/token), the mixer ahead"),
                             (256, "higher", f"transformer {val('gpt', 256):.2f} vs mixer {val('mixer', 256):.2f} val CE "
                                             "(nats/token), the transformer ahead")):
        claim = f"d = {d}: the mixer {expected} than the transformer"
        kw = dict(ref_metric="validation CE at equal compute", ref_horizon="12 h on a GPU", ref_value=ref, finished=done)
        if widths == {d}:
            out.append((d, labels.comparison_verdict(claim, cmp, expected, **kw)))
        else:  # the row nearest our width: not comparable; a farther one: untested (no model of that width)
            label, reason = labels.derive(None, seeds if d == nearest else 0, done, False,
                                          f"our models are d = {'/'.join(map(str, sorted(widths)))}, not {d}")
            out.append((d, labels.Verdict(claim, kw["ref_metric"], kw["ref_horizon"], ref, cmp.mean_a, cmp.ci_a, seeds, done, False,
                                          label, reason)))
    return tuple(out)


def findings(history: pd.DataFrame, task, mem: pd.DataFrame) -> Findings:
    """Every comparison with its seeds and intervals, and the reference's rows labelled, from the
    training history (results()) and the memory table (memory())."""
    res = results(history, task)
    r = res.set_index("arch")
    seeds = int(res["seeds"].min())
    pairwise = tuple((a, b, compare(r.loc[a, "bpc_seeds"], r.loc[b, "bpc_seeds"])) for a, b in PAIRS if a in r.index and b in r.index)
    both = {"mixer", "gpt"} <= set(r.index)
    big = mem[mem.context == mem.context.max()].set_index("run")["memory_mb"]
    return Findings(res, seeds, str(res.sort_values("val_bpc").iloc[0].arch), pairwise,
                    reference_verdicts(r.loc["mixer"], r.loc["gpt"], seeds) if both else (),
                    compare(r.loc["mixer", "bpc_equal_tokens_seeds"], r.loc["gpt", "bpc_equal_tokens_seeds"]) if both else None,
                    int(mem.context.max()), dict(big.items()))


def render(f: Findings) -> str:
    """The report's "What we found", from findings()."""
    r = f.results.set_index("arch")
    floor, uni = r["floor_bpc"].iloc[0], float(r["unigram_bpc"].iloc[0])
    lines = []
    if floor is not None and not pd.isna(floor):
        lines.append(f"- Entropy floor of the validation stories: **{floor:.3f} bits/char** (exact, from the grammar); unigram bound "
                     f"{uni:.3f}. Every model sits above the floor: " + ", ".join(
                         f"{a} {fmt(row.bpc_ci)} ({row.val_bpc / floor:.1f}× the floor)" for a, row in r.iterrows())
                     + f" (mean [95 % t-interval] over {f.seeds} seeds).")
    lines.append("- Budgets: " + ", ".join(f"{a} {row.train_minutes:.1f} min, {row.steps:.0f} steps ({row.stop_reason})"
                                           for a, row in r.iterrows()) + ".")
    lines.append(f"- Lowest bits/char at the end of the budget: **{f.best}**. Pairwise: "
                 + "; ".join(cmp.sentence(a, b) for a, b, cmp in f.pairwise) + ".")
    for d, v in f.reference:
        lines.append(f"- Reference, d = {d} ({v.ref_value}): **{v.label}** here ({v.reason}).")
    if f.equal_tokens is not None:
        lines.append(f"- At equal tokens ({int(f.results.at_tokens.min()):,}, interpolated between evaluations): "
                     + f.equal_tokens.sentence("mixer", "transformer") + ".")
    lines.append("- Training minutes until a model first beats the unigram bound by 10 %: " + ", ".join(
        f"{a} {row.minutes_to_leave_unigram:.1f}" for a, row in r.iterrows()) + " (a model that waits at the unigram bound "
        "spends that part of an equal budget learning nothing beyond word frequencies).")
    lines.append(f"- Memory of one forward+backward at context {f.memory_context}: "
                 + ", ".join(f"{k} {v:.1f} MiB" for k, v in f.memory.items()) + ".")
    return "\n".join(lines)
