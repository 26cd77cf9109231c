"""The algorithmic tasks (copy, flip, cumsum, ..., base-b addition; lib/tasks/algorithmic.py) as
causal token sequences, for any body of the block x task grid:

    x_1 .. x_n  Q Q .. Q          inputs, then out_len query tokens Q (a new id: the task's vocab)
    -   ..  -   y_1 .. y_out      labels only at the queries (IGNORE elsewhere)

A causal model has read the whole input before the first query, so every target is computable.
Training batches and the held-out validation set are the algorithmic task's own.
"""
from __future__ import annotations

import torch

from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig, AlgoBatch
from lib.tasks.recall import IGNORE, TokenBatch, TokenTask


def as_sequence(b: AlgoBatch, query: int) -> TokenBatch:
    n, out_len = b.y.shape
    q = torch.full((n, out_len), query, dtype=torch.long, device=b.x.device)
    x = torch.cat([b.x, q], 1)
    y = torch.cat([torch.full_like(b.x, IGNORE), b.y], 1)
    return TokenBatch(x, y)


class AlgoSequence(TokenTask):
    def __init__(self, cfg: AlgorithmicConfig):
        self.cfg = cfg
        self.algo = Algorithmic(cfg)
        self.spec = (cfg, "sequence")
        self.query = cfg.vocab
        self.vocab = cfg.vocab + 1
        self.seq_len = cfg.in_len + cfg.out_len
        self.val = as_sequence(self.algo.val, self.query)
        self.heldout = self.algo.heldout

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> TokenBatch:
        return as_sequence(self.algo.train_batch(batch_size, gen, step), self.query)
