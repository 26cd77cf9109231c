"""A held-out set of sequences that a training stream must never produce.

Used by every task with a fixed validation set: the training sampler draws, drops the rows
whose exact token sequence is held out, and fills the batch from further rows. On the CPU the
test is exact on each row's bytes and the sampler draws again until the batch is full. On an
accelerator that loop would read the device every step, so rows are drawn with a margin, a
row is dropped when its hash is a held-out row's hash (a held-out row always is; a collision
only drops an extra training row, never lets a held-out one through), and the first `n` kept
rows are taken, all on the device. A batch that ran out of kept rows is counted on the device
and `check()` (called at evaluation) raises, so the guarantee stays exact.
"""
from __future__ import annotations

from typing import Callable

import torch


def row_keys(rows: torch.Tensor) -> list[bytes]:
    """(n, T) integer rows -> one exact key per row."""
    return [r.tobytes() for r in rows.to(torch.int64).cpu().numpy()]


def row_hash(rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(n, T) non-negative integer rows -> (n,) int64 sum_t x_t w_t, exact (no overflow: see _weights)."""
    return (rows.long() * weights).sum(1)


def _weights(T: int, max_token: int, device: torch.device) -> torch.Tensor:
    """T random weights small enough that sum_t x_t w_t < 2^63 for x_t <= max_token."""
    bits = 62 - max(1, int(max_token).bit_length()) - max(1, T.bit_length())
    if bits < 20:
        raise ValueError(f"rows of length {T} with tokens up to {max_token} are too long to hash exactly")
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 2**bits, (T,), generator=gen, dtype=torch.long).to(device)


class HeldOut:
    def __init__(self, rows: torch.Tensor):
        self.rows = rows
        self.keys = frozenset(row_keys(rows))
        self._skipped = 0  # rows drawn for training and dropped because they are held out (a device tensor on accelerators)
        self._short = 0  # device batches that ran out of kept rows (must stay 0)
        self._hashes: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # device -> (weights, sorted held-out hashes)

    @property
    def skipped(self) -> int:
        return int(self._skipped)

    def keep(self, rows: torch.Tensor) -> torch.Tensor:
        """(n,) bool: which rows are not held out (exact)."""
        return torch.tensor([k not in self.keys for k in row_keys(rows)], dtype=torch.bool)

    def keep_hashed(self, rows: torch.Tensor) -> torch.Tensor:
        """(n,) bool on rows' device: False for every held-out row (and, rarely, a colliding training row)."""
        dev = str(rows.device)
        if dev not in self._hashes:
            w = _weights(self.rows.shape[1], max(int(self.rows.max()), 2**16), rows.device)
            self._hashes[dev] = (w, row_hash(self.rows.to(rows.device), w).sort().values)
        w, held = self._hashes[dev]
        return ~torch.isin(row_hash(rows, w), held)

    def fill(self, draw: Callable[[int], tuple[torch.Tensor, ...]], n: int, key: int = 0, on_device: bool = False) -> tuple[torch.Tensor, ...]:
        """n rows from draw(m) -> tensors of m rows, none of whose tensor `key` is held out.

        `on_device` (the sampler's generator is not on the CPU) takes the no-sync path."""
        if on_device:
            batch = draw(n + max(8, n // 8))  # a margin: held-out rows are rare, so the batch fills
            keep = self.keep_hashed(batch[key])
            order = torch.argsort((~keep).to(torch.uint8), stable=True)[:n]  # kept rows first, in drawn order
            self._skipped = self._skipped + (~keep).sum()
            self._short = self._short + (~keep[order]).sum()
            return tuple(t[order] for t in batch)
        parts, have = [], 0
        while have < n:
            batch = draw(n - have)
            keep = self.keep(batch[key])
            self._skipped += int((~keep).sum())
            parts.append([t[keep] for t in batch])
            have += int(keep.sum())
        return tuple(torch.cat(ts) for ts in zip(*parts))

    def check(self) -> None:
        """Raise if a device batch ever ran out of kept rows (one device read; call at evaluation)."""
        if int(self._short):
            raise RuntimeError(f"{int(self._short)} held-out rows reached training batches: raise the sampler's margin")
