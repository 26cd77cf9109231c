"""Language modelling as a task for the one training loop.

Pipeline: documents (lib/data/corpus.py) -> split by document (a seeded permutation: a story is in
train or in validation, never both) -> tokenizer (lib/data/tokenizers.py) trained on the training
documents only -> one token stream per split with <eos> after every document -> fixed-length
windows (random offsets for training, consecutive non-overlapping windows for validation).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lib.config import Config
from lib.progress import phase
from lib.data.corpus import load_tinystories, stories_with_nats
from lib.data.tokenizers import BPETokenizer, ByteTokenizer

@dataclass(frozen=True)
class TextConfig(Config):
    corpus: str = "stories"  # 'stories' (offline generator) or 'tinystories' (local file or HF datasets)
    path: str = ""  # tinystories: a local .txt/.jsonl file ('' = HF datasets)
    n_docs: int = 20_000
    tokenizer: str = "bpe"  # 'bpe' or 'bytes'
    vocab: int = 4096  # BPE vocabulary size (an upper bound: a small corpus may need fewer merges)
    ctx: int = 256  # tokens a model sees; windows hold ctx + 1 tokens (inputs and shifted targets)
    val_frac: float = 0.05  # fraction of documents held out
    val_windows: int = 64  # validation windows evaluated (consecutive, non-overlapping)
    seed: int = 0  # corpus generation and the document split

    def __post_init__(self):
        if self.corpus not in ("stories", "tinystories"):
            raise ValueError(f"corpus must be one of ['stories', 'tinystories'], got {self.corpus!r}")
        if self.tokenizer not in ("bpe", "bytes"):
            raise ValueError(f"tokenizer must be one of ['bpe', 'bytes'], got {self.tokenizer!r}")
        if self.n_docs < 2 or self.ctx < 1 or self.val_windows < 1 or self.vocab < 258:
            raise ValueError("need n_docs >= 2, ctx >= 1, val_windows >= 1, vocab >= 258")
        if not 0 < self.val_frac < 1:
            raise ValueError(f"val_frac must be in (0, 1), got {self.val_frac}")


def split_documents(docs: list[str], val_frac: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded permutation of whole documents: (train, validation), disjoint by construction."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(val_frac * len(docs)))
    return [docs[i] for i in order[n_val:]], [docs[i] for i in order[:n_val]]


def token_stream(docs: list[str], tok) -> torch.Tensor:
    """All documents' tokens, each followed by <eos>, as one 1-D long tensor."""
    ids: list[int] = []
    for d in docs:
        ids += tok.encode(d) + [tok.eos_id]
    return torch.tensor(ids, dtype=torch.long)


def entropy_floor(docs: list[str], nats: dict[str, float], tok, n_tokens: int) -> float:
    """Bits per character of the best possible model on the documents that lie wholly within the
    first `n_tokens` of the stream (the validation windows' span), each read from its start: the
    grammar's exact -log p of those stories over their characters."""
    used, total_nats, total_chars = 0, 0.0, 0
    for d in docs:
        used += len(tok.encode(d)) + 1  # the document and its <eos>
        if used > n_tokens and total_chars:  # (a span shorter than one story uses that story)
            break
        total_nats, total_chars = total_nats + nats[d], total_chars + len(d)
    return total_nats / total_chars / math.log(2)


def unigram_entropy(stream: torch.Tensor) -> float:
    """Entropy of the token frequencies, nats per token: the loss of the best context-free model."""
    counts = torch.bincount(stream).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


class LMBatch(NamedTuple):
    x: torch.Tensor  # (B, ctx + 1) token ids: inputs x[:, :-1], targets x[:, 1:]


class LMTask:
    """Next-token prediction on packed windows. loss = mean cross-entropy (nats/token)."""

    def __init__(self, cfg: TextConfig, docs: list[str] | None = None):
        self.cfg = cfg
        self._host_gen: torch.Generator | None = None  # see train_batch: only with an accelerator
        nats = None  # -log p of each generated story (the grammar knows it), for the entropy floor
        if docs is None:
            phase(f"corpus: {cfg.n_docs:,} documents ({cfg.corpus})")
        if docs is None and cfg.corpus == "stories":
            pairs = stories_with_nats(cfg.n_docs, cfg.seed)
            docs, nats = [t for t, _ in pairs], dict(pairs)
        elif docs is None:
            docs = load_tinystories(cfg.path or None, n=cfg.n_docs)
        self.train_docs, self.val_docs = split_documents(docs, cfg.val_frac, cfg.seed)
        phase(f"tokenizer: {cfg.tokenizer}" + (f", {cfg.vocab:,} tokens at most, trained on {len(self.train_docs):,} documents" if cfg.tokenizer == "bpe" else ""))
        self.tok = ByteTokenizer() if cfg.tokenizer == "bytes" else BPETokenizer.train(self.train_docs, cfg.vocab)
        self.train_stream, self.val_stream = token_stream(self.train_docs, self.tok), token_stream(self.val_docs, self.tok)
        n = min(cfg.val_windows, (len(self.val_stream) - 1) // cfg.ctx)
        if n < 1 or len(self.train_stream) <= cfg.ctx + 1:
            raise ValueError(f"corpus too small for ctx={cfg.ctx}: {len(self.train_stream)} train / {len(self.val_stream)} validation tokens")
        self.val_x = torch.stack([self.val_stream[i * cfg.ctx : i * cfg.ctx + cfg.ctx + 1] for i in range(n)])
        # bits per character of the validation targets (tokenizer-free): nats/token * tokens / chars / ln 2
        chars = sum(len(self.tok.decode(w[1:].tolist())) for w in self.val_x)
        self.bits_per_nat_token = n * cfg.ctx / chars / math.log(2)
        self.floor_bpc = None if nats is None else entropy_floor(self.val_docs, nats, self.tok, n * cfg.ctx + 1)
        self.spec = (cfg,)  # what identifies this task in a checkpoint key

    @property
    def vocab_size(self) -> int:
        return self.tok.vocab_size

    def stats(self) -> dict:
        return {"train_docs": len(self.train_docs), "val_docs": len(self.val_docs), "train_tokens": len(self.train_stream),
                "val_tokens": len(self.val_stream), "vocab": self.vocab_size,
                "unigram_entropy": unigram_entropy(self.train_stream),
                "chars_per_token": sum(map(len, self.train_docs)) / (len(self.train_stream) - len(self.train_docs)),
                "unigram_bpc": unigram_entropy(self.train_stream) * len(self.train_stream) / sum(map(len, self.train_docs)) / math.log(2),
                "floor_bpc": self.floor_bpc}

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> LMBatch:
        """batch_size random windows of ctx + 1 tokens, cut on the CPU from the token stream.

        With an accelerator's generator the windows come from a CPU generator seeded from it (kept in
        the checkpoint through state_dict) and go out in pinned memory, so the loop's non-blocking
        copy overlaps the previous step."""
        on_host = gen.device.type == "cpu"
        if not on_host:
            if self._host_gen is None:
                self._host_gen = torch.Generator().manual_seed(gen.initial_seed())
            gen = self._host_gen
        starts = torch.randint(0, len(self.train_stream) - self.cfg.ctx - 1, (batch_size,), generator=gen)
        x = self.train_stream[starts[:, None] + torch.arange(self.cfg.ctx + 1)]  # (B, ctx + 1)
        return LMBatch(x if on_host else x.pin_memory())

    def state_dict(self) -> dict:
        """The host generator's state when batches are cut for an accelerator (None on the CPU)."""
        return {"host_gen": None if self._host_gen is None else self._host_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("host_gen") is not None:
            self._host_gen = torch.Generator()
            self._host_gen.set_state(state["host_gen"].cpu())

    @staticmethod
    def loss(model, batch: LMBatch | tuple) -> torch.Tensor:
        x = batch[0]  # (B, ctx + 1)
        logits = model(x[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())

    @torch.no_grad()
    def evaluate(self, model, batch_size: int = 16) -> dict[str, float]:
        device = next(model.parameters()).device
        total = 0.0
        for i in range(0, len(self.val_x), batch_size):
            x = self.val_x[i : i + batch_size].to(device)
            total += self.loss(model, LMBatch(x)).item() * len(x)
        val = total / len(self.val_x)
        return {"val_loss": val, "val_ppl": math.exp(min(val, 50.0)), "val_bpc": val * self.bits_per_nat_token}

    def meta(self) -> dict:
        """What generation needs from this task, saved in checkpoints: the tokenizer."""
        return {"tokenizer": self.tok.to_json()}
