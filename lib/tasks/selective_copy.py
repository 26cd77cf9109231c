"""Selective copying: fill in a masked answer listing the letters of an area in order.

Ref: defgsus/nn-experiments, "Selective Copying" (2024-12-14); facts in
references/selective_copy.md. One sample (n_items=4, area=14 for show;
the reference uses 10 letters A..J in an area of 40 blank cells):

    target  'A    D C  B   : ADCB'
    input   'A    D C  B   : \\0\\0\\0\\0'      (the answer bytes are masked with byte 0)

Bytes are the vocabulary (256 ids). The model sees the masked input and emits all
positions in one pass; the loss covers every position (as in the reference), the
headline metric is the error % over the masked answer cells only.

The validation set is fixed (`val_size` samples from a generator seeded with
`val_seed`); the endless training stream drops any sample whose text equals a
validation text, so the two never overlap (exact test on the bytes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lib.config import Config
from lib.tasks.heldout import HeldOut

MASK = 0  # byte that replaces each answer cell in the input


@dataclass(frozen=True)
class SelectiveCopyConfig(Config):
    n_items: int = 10  # letters placed per sample (distinct, drawn from `alphabet`)
    area: int = 40  # cells in the area
    alphabet: str = "ABCDEFGHIJ"
    blank: str = " "  # an empty area cell
    delimiter: str = ": "
    val_size: int = 10_000
    val_seed: int = 23

    def __post_init__(self):
        if not 1 <= self.n_items <= self.area:
            raise ValueError(f"n_items must be in [1, area={self.area}], got {self.n_items}")
        if self.n_items > len(self.alphabet) or len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"alphabet needs >= n_items={self.n_items} distinct letters, got {self.alphabet!r}")
        text = self.alphabet + self.blank + self.delimiter
        if not text.isascii() or "\0" in text or len(self.blank) != 1:
            raise ValueError("alphabet, blank (one char) and delimiter must be ASCII without byte 0")
        if self.blank in self.alphabet:
            raise ValueError(f"blank {self.blank!r} must not be in the alphabet")
        if self.val_size < 1:
            raise ValueError(f"val_size must be >= 1, got {self.val_size}")

    @property
    def seq_len(self) -> int:
        return self.area + len(self.delimiter) + self.n_items


class CopyBatch(NamedTuple):
    x: torch.Tensor  # (B, T) uint8->long byte ids, answer masked with MASK
    y: torch.Tensor  # (B, T) the unmasked sample


def sample(cfg: SelectiveCopyConfig, n: int, *, gen: torch.Generator) -> CopyBatch:
    """n fresh samples. Letters go to distinct uniform cells; the answer lists them left to right."""
    dev = gen.device  # drawn where the generator lives (the training device)
    alphabet = torch.tensor(list(cfg.alphabet.encode()), dtype=torch.long, device=dev)
    cells = torch.rand(n, cfg.area, generator=gen, device=dev).argsort(dim=1)[:, : cfg.n_items]  # (n, k) distinct cells
    letters = alphabet[torch.rand(n, len(alphabet), generator=gen, device=dev).argsort(dim=1)[:, : cfg.n_items]]  # (n, k)
    area = torch.full((n, cfg.area), ord(cfg.blank), dtype=torch.long, device=dev).scatter_(1, cells, letters)
    answer = letters.gather(1, cells.argsort(dim=1))  # letters in order of their cells
    delim = torch.tensor(list(cfg.delimiter.encode()), dtype=torch.long, device=dev).expand(n, -1)
    y = torch.cat([area, delim, answer], dim=1)  # (n, T)
    x = y.clone()
    x[:, -cfg.n_items :] = MASK
    return CopyBatch(x, y)


def decode(ids: torch.Tensor | list[int], mask_char: str = "\u25a1") -> str:
    """Byte ids -> text; the mask byte shows as a white square, other non-printables as '?'."""
    out = []
    for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
        out.append(mask_char if i == MASK else chr(i) if 32 <= i < 127 else "?")
    return "".join(out)


class SelectiveCopy:
    """The task object the training loop drives: batches, loss, evaluation."""

    def __init__(self, cfg: SelectiveCopyConfig):
        self.cfg = cfg
        self.spec = (cfg,)  # what identifies this task in a checkpoint key
        self.val = sample(cfg, cfg.val_size, gen=torch.Generator().manual_seed(cfg.val_seed))
        self.heldout = HeldOut(self.val.y)

    @property
    def skipped(self) -> int:
        """Training samples dropped because they equal a validation sample."""
        return self.heldout.skipped

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> CopyBatch:
        """A training batch with every validation sample filtered out (re-drawn until full)."""
        draw = lambda m: sample(self.cfg, m, gen=gen)
        return CopyBatch(*self.heldout.fill(draw, batch_size, key=1, on_device=gen.device.type != "cpu"))

    @staticmethod
    def loss(model: torch.nn.Module, batch: CopyBatch) -> torch.Tensor:
        logits = model(batch.x)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch.y.flatten())

    @staticmethod
    def counts(logits: torch.Tensor, batch: CopyBatch) -> dict[str, float]:
        """Summed loss and error counts of one batch (summed, so batches of any size average exactly)."""
        wrong = logits.argmax(-1) != batch.y  # (B, T)
        masked = batch.x == MASK
        return {
            "loss_sum": F.cross_entropy(logits.flatten(0, 1).float(), batch.y.flatten(), reduction="sum").item(),
            "cells": wrong.numel(),
            "masked": int(masked.sum()),
            "masked_wrong": int((wrong & masked).sum()),
            "wrong": int(wrong.sum()),
            "samples": wrong.shape[0],
            "samples_wrong": int(wrong.any(dim=1).sum()),
        }

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batch_size: int = 500) -> dict[str, float]:
        """Validation metrics over the whole fixed set.

        val_error_pct is the error % over masked (answer) cells; the reference averages
        per-batch percentages over batches of 64, which equals this up to the ragged last batch.
        """
        self.heldout.check()  # no held-out row reached a device-drawn training batch
        device = next(model.parameters()).device
        total: dict[str, float] = {}
        for i in range(0, self.cfg.val_size, batch_size):
            b = CopyBatch(*(t[i : i + batch_size].to(device) for t in self.val))
            for k, v in self.counts(model(b.x), b).items():
                total[k] = total.get(k, 0) + v
        return {
            "val_loss": total["loss_sum"] / total["cells"],
            "val_error_pct": 100 * total["masked_wrong"] / total["masked"],
            "val_all_error_pct": 100 * total["wrong"] / total["cells"],
            "val_sample_error_pct": 100 * total["samples_wrong"] / total["samples"],
        }

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, n: int) -> tuple[CopyBatch, torch.Tensor]:
        """The first n validation samples and the model's argmax output, on CPU (for pictures)."""
        device = next(model.parameters()).device
        b = CopyBatch(self.val.x[:n], self.val.y[:n])
        return b, model(b.x.to(device)).argmax(-1).cpu()


# Reference results (1M samples, single runs; nitem 10, area 40, ch 64), tables T1-T4 of
# references/selective_copy.md. `dilation` is an int (all layers) or a per-layer list.
REFERENCE = [
    # layers, kernel_size, dilation, val_loss, params, train_min, samples_per_s
    (6, 9, 1, 0.203547, 237_952, 8.71, 1913),
    (8, 9, 1, 0.088512, 311_808, 11.75, 1418),
    (10, 9, 1, 0.0164525, 385_664, 14.51, 1148),
    (12, 9, 1, 0.00128227, 459_520, 16.5, 1009),
    (6, 11, 1, 0.12667, 287_104, 8.85, 1882),
    (6, 13, 1, 0.0355833, 336_256, 9.44, 1764),
    (6, 15, 1, 0.00105004, 385_408, 58.02, 286),
    (6, 17, 1, 0.000182635, 434_560, 49.15, 339),
    (6, 9, 2, 0.324, 237_952, 1.96, 8491),
    (6, 9, [2, 2, 2, 2, 2, 1], 0.0870354, 237_952, 3.28, 5085),
    (6, 9, [2, 2, 2, 2, 1, 1], 0.0676225, 237_952, 4.24, 3935),
    (6, 9, [2, 2, 2, 1, 1, 1], 0.0670086, 237_952, 5.26, 3171),
    (6, 9, [3, 3, 3, 1, 1, 1], 0.0514503, 237_952, 5.17, 3223),
    (6, 9, [4, 4, 4, 1, 1, 1], 0.0460037, 237_952, 5.37, 3101),
    (6, 9, [5, 5, 5, 1, 1, 1], 0.0423690, 237_952, 5.1, 3269),
    (6, 9, [6, 6, 6, 1, 1, 1], 0.0363355, 237_952, 5.28, 3158),
    (6, 9, [2, 4, 6, 3, 5, 1], 0.0323526, 237_952, 3.26, 5116),
    (6, 9, [2, 6, 4, 5, 3, 1], 0.0212173, 237_952, 3.07, 5428),
    (6, 9, [3, 5, 7, 9, 11, 1], 0.0096797, 237_952, 3.08, 5407),
    (6, 9, [5, 4, 3, 2, 1, 1], 0.0066358, 237_952, 4.2, 3967),
    (6, 9, [2, 3, 4, 5, 1, 1], 0.0021815, 237_952, 4.35, 3828),
    (6, 9, [2, 3, 4, 5, 6, 1], 0.0015734, 237_952, 3.15, 5292),
    (6, 9, [1, 2, 3, 4, 5, 1], 0.0002703, 237_952, 4.03, 4137),
]
# Mask error % at 1M samples read off the reference's error-curve plots (section 4).
REFERENCE_ERROR_PCT = {
    (6, 9, "1"): 47.51, (8, 9, "1"): 22.22, (10, 9, "1"): 3.638, (12, 9, "1"): 0.1951,
    (6, 11, "1"): 30.15, (6, 13, "1"): 9.813, (6, 15, "1"): 0.1781, (6, 17, "1"): 0.02488,
    (6, 9, "2-3-4-5-6-1"): 0.2349, (6, 9, "2-3-4-5-1-1"): 0.3055,
    (6, 9, "5-4-3-2-1-1"): 1.14, (6, 9, "3-5-7-9-11-1"): 1.691,
}


def reference_table():
    """The reference results as a DataFrame in the project's column names."""
    import pandas as pd

    from lib.models.conv_text import label

    rows = []
    for layers, ks, dil, val_loss, params, minutes, sps in REFERENCE:
        key = (layers, ks, label(tuple(dil) if isinstance(dil, list) else dil))
        rows.append({
            "layers": layers, "kernel_size": str(ks), "dilation": key[2], "params": params,
            "val_loss": val_loss, "val_error_pct": REFERENCE_ERROR_PCT.get(key, float("nan")),
            "train_minutes": minutes, "samples_per_s": sps,
        })
    return pd.DataFrame(rows)
