"""The offline story corpus for the small language models, and the TinyStories loader.

Offline we generate children's stories from a seeded probabilistic grammar instead of downloading
TinyStories (references/masked_mixer.md); the grammar (lib/data/story_grammar.py) knows the
exact -log p of every story, so the corpus's entropy in bits per character, the floor no model can
beat, is known:

    stories(2, seed=0)[0][:80]
    -> 'There once was a busy fox named Lucy. Lucy lived in a small cottage near the vil'

It is generated in a second or two, so nothing is downloaded. Tokenizers: lib/data/tokenizers.py;
the language-modelling task (split, stream, windows, bits per character): lib/tasks/lm.py.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

from lib.data.story_grammar import stories, stories_with_nats  # noqa: F401  (the offline corpus)


def load_tinystories(path: str | Path | None = None, split: str = "train", n: int | None = None) -> list[str]:
    """TinyStories documents: from a local file, or through HF `datasets` (its cache or the hub).

    A local file is either JSON lines with a "text" field, or plain text with stories separated
    by `<|endoftext|>` (the format of the official TinyStories*.txt files). Never called by tests
    or by the offline default; `datasets` is the optional `tinystories` extra.
    """
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"TinyStories file {p} does not exist")
        raw = p.read_text(encoding="utf-8")
        if p.suffix in (".jsonl", ".json"):
            docs = [json.loads(line)["text"] for line in raw.splitlines() if line.strip()]
        else:
            docs = raw.split("<|endoftext|>")
    else:
        try:
            from datasets import load_dataset
        except ImportError as e:
            raise ImportError("TinyStories from the hub needs `pip install -e '.[tinystories]'`, or pass path= a local file") from e
        ds = load_dataset("roneneldan/TinyStories", split=split)
        docs = ds["text"] if n is None else ds.select(range(min(n, len(ds))))["text"]
    docs = [d.strip() for d in docs if d.strip()]
    return docs[:n] if n is not None else docs


# ---------------------------------------------------------------------------------------------
# Tokenizers: bytes, and a byte-level BPE (HF `tokenizers`)
# ---------------------------------------------------------------------------------------------


def word_counts(docs: list[str]) -> Counter:
    """Distinct lower-cased words (letters only) and their counts: the corpus's vocabulary."""
    return Counter(w.lower() for d in docs for w in re.findall(r"[A-Za-z']+", d))
