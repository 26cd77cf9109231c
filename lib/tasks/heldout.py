"""A held-out set of sequences that a training stream must never produce.

Used by every task with a fixed validation set: the training sampler draws, drops the rows
whose exact token sequence is held out, and draws again until the batch is full. The test is
exact (on the bytes of each row), so train and validation provably never share a sample.
"""
from __future__ import annotations

from typing import Callable

import torch


def row_keys(rows: torch.Tensor) -> list[bytes]:
    """(n, T) integer rows -> one exact key per row."""
    return [r.tobytes() for r in rows.to(torch.int64).cpu().numpy()]


class HeldOut:
    def __init__(self, rows: torch.Tensor):
        self.keys = frozenset(row_keys(rows))
        self.skipped = 0  # rows drawn for training and dropped because they are held out

    def keep(self, rows: torch.Tensor) -> torch.Tensor:
        """(n,) bool: which rows are not held out."""
        return torch.tensor([k not in self.keys for k in row_keys(rows)], dtype=torch.bool)

    def fill(self, draw: Callable[[int], tuple[torch.Tensor, ...]], n: int, key: int = 0) -> tuple[torch.Tensor, ...]:
        """Call draw(m) -> tensors of m rows until n rows whose tensor `key` is not held out are collected."""
        parts, have = [], 0
        while have < n:
            batch = draw(n - have)
            keep = self.keep(batch[key])
            self.skipped += int((~keep).sum())
            parts.append([t[keep] for t in batch])
            have += int(keep.sum())
        return tuple(torch.cat(ts) for ts in zip(*parts))
