"""The small language models' pictures and text (notebooks/small_lms.ipynb): curves against the
entropy floor and the unigram bound, memory against context, training stories and generated samples."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lib.generate import generate
from lib.viz import curves


def corpus_samples(task, n: int = 2, chars: int = 400, tokens: int = 24) -> str:
    """The first n training stories (their first `chars` characters) and the first tokens of the first
    one; raises if the tokenizer does not give that story back exactly (the tokens shown would mislead)."""
    doc = task.train_docs[0]
    if task.tok.decode(task.tok.encode(doc)) != doc:
        raise ValueError("the tokenizer does not round-trip the first training story")
    text = "".join(f"{d[:chars]} \n\n" for d in task.train_docs[:n])
    return text + "tokens: " + " | ".join(task.tok.decode([i]) for i in task.tok.encode(doc)[:tokens])


def bpc_curves(history: pd.DataFrame, task) -> Figure:
    """Validation bits/char against steps, tokens and training minutes (with the entropy floor and
    the unigram bound), and the excess over the floor against minutes (when the floor is known)."""
    fig = Figure(figsize=(11, 8))
    axes = fig.subplots(2, 2).ravel()
    for ax, x in zip(axes[:3], ("step", "tokens", "train_minutes")):
        curves.plot(history, x=x, y="val_bpc", logy=True, ax=ax, title=f"Validation bits/char vs {x.replace('_', ' ')}")
        if task.floor_bpc is not None:
            ax.axhline(task.floor_bpc, color="black", ls=":", lw=1, label="entropy floor")
        ax.axhline(task.stats()["unigram_bpc"], color="grey", ls="--", lw=1, label="unigram bound")
        ax.legend(fontsize=7)
    if task.floor_bpc is not None:
        curves.plot(history, x="train_minutes", y="excess_bpc", logy=True, ax=axes[3], title="Bits/char above the floor vs training time")
    fig.tight_layout()
    return fig


def memory(mem: pd.DataFrame) -> Figure:
    """Memory of one forward+backward against context, one line per model (lib.analysis.lm.memory's table)."""
    return curves.plot(mem, x="context", y="memory_mb", title="Memory of one forward+backward vs context", logx=True)


def samples(study, tok, prompt: str, n_tokens: int, seed: int) -> pd.DataFrame:
    """Per model (the weights of `seed`): the prompt's greedy and nucleus (top-p 0.9) continuations, on one line each."""
    rows = []
    for c in study.configs:
        model = study.models[c.name, seed]
        for method in ("greedy", "top_p"):
            ids = generate(model, tok.encode(prompt), n_tokens, method=method, top_p=0.9, seed=0, eos_id=tok.eos_id)
            rows.append({"run": c.name, "method": method, "text": (prompt + tok.decode(ids)).replace("\n", " ")})
    return pd.DataFrame(rows)
