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
VOCAB = 256  # token ids are bytes


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
        self.seq_len = cfg.seq_len
        self.vocab = VOCAB
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
    def evaluate(self, model: torch.nn.Module, batch_size: int = 500, *, iters: int | None = None) -> dict[str, float]:
        """Validation metrics over the whole fixed set (a looped model at `iters` iterations; None:
        its own).

        val_error_pct is the error % over masked (answer) cells; the reference averages
        per-batch percentages over batches of 64, which equals this up to the ragged last batch.
        """
        self.heldout.check()  # no held-out row reached a device-drawn training batch
        device = next(model.parameters()).device
        total: dict[str, float] = {}
        for i in range(0, self.cfg.val_size, batch_size):
            b = CopyBatch(*(t[i : i + batch_size].to(device) for t in self.val))
            logits = model(b.x) if iters is None else model(b.x, iters=iters)
            for k, v in self.counts(logits, b).items():
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
