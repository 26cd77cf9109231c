"""ConvTextModel: a byte-level stack of residual dilated 1-D convolutions.

Ref: defgsus/nn-experiments "Selective Copying" (references/selective_copy.md, section 2).

    ids (B, T) -> Embedding(V, C) -> N x [ x + GELU(Conv1d_i(x)) ] -> Linear(C, V, tied to the embedding)

Conv i has kernel k_i and dilation d_i, zero padding floor(k_i/2)*d_i on both sides, so
the length is kept. The head shares the embedding matrix (as in the reference): that is
why its parameter counts are 256*C = 16,384 below an untied embedding + head.
Parameters: P = V*C + sum_i (C^2 k_i + C)  (dilation does not change it).
Receptive radius (cells each way that can reach an output): R = sum_i floor(k_i/2)*d_i.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from lib.config import Config


def per_layer(value: int | list[int] | tuple[int, ...], layers: int, name: str) -> tuple[int, ...]:
    """An int (same for every layer) or a per-layer list -> a tuple of `layers` ints."""
    values = (value,) * layers if isinstance(value, int) else tuple(value)
    if len(values) != layers:
        raise ValueError(f"{name}: {len(values)} values {list(values)} for {layers} layers")
    if any(v < 1 for v in values):
        raise ValueError(f"{name}: values must be >= 1, got {list(values)}")
    return values


def label(value: int | tuple[int, ...]) -> str:
    """Compact label of a per-layer spec: (1,1,1) -> '1', (1,2,3) -> '1-2-3'."""
    values = (value,) if isinstance(value, int) else tuple(value)
    return str(values[0]) if len(set(values)) == 1 else "-".join(map(str, values))


def receptive_radius(kernel_size: tuple[int, ...], dilation: tuple[int, ...]) -> int:
    """Cells each way from which information can reach one output: sum floor(k/2)*d."""
    return sum(k // 2 * d for k, d in zip(kernel_size, dilation))


@dataclass(frozen=True)
class ConvTextConfig(Config):
    layers: int = 6
    kernel_size: int | list[int] = 9  # one for all layers, or one per layer
    dilation: int | list[int] = 1  # one for all layers, or one per layer
    channels: int = 64
    vocab: int = 256
    tie_head: bool = True  # the reference ties the head to the embedding

    def __post_init__(self):
        if self.layers < 1 or self.channels < 1 or self.vocab < 1:
            raise ValueError(f"layers, channels, vocab must be >= 1, got {self.layers}, {self.channels}, {self.vocab}")
        ks = per_layer(self.kernel_size, self.layers, "kernel_size")
        if any(k % 2 == 0 for k in ks):
            raise ValueError(f"kernel_size must be odd so 'same' padding keeps the length, got {list(ks)}")
        object.__setattr__(self, "kernel_size", ks)
        object.__setattr__(self, "dilation", per_layer(self.dilation, self.layers, "dilation"))

    @property
    def name(self) -> str:
        return f"l{self.layers}-ks{label(self.kernel_size)}-dil{label(self.dilation)}-ch{self.channels}"

    def columns(self) -> dict:
        """This config in the results-table columns (kernel_size, dilation as compact labels)."""
        return {"layers": self.layers, "kernel_size": label(self.kernel_size), "dilation": label(self.dilation), "radius": self.radius}

    @property
    def radius(self) -> int:
        return receptive_radius(self.kernel_size, self.dilation)

    def n_params(self) -> int:
        """Closed form: embedding (+ untied head) + sum of conv weights and biases."""
        c = self.channels
        head = 0 if self.tie_head else self.vocab * c
        return self.vocab * c + head + sum(c * c * k + c for k in self.kernel_size)


class ConvTextModel(nn.Module):
    def __init__(self, cfg: ConvTextConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.channels
        self.embed = nn.Embedding(cfg.vocab, C)
        self.convs = nn.ModuleList(
            nn.Conv1d(C, C, k, dilation=d, padding=k // 2 * d) for k, d in zip(cfg.kernel_size, cfg.dilation)
        )
        self.head = nn.Linear(C, cfg.vocab, bias=False)
        if cfg.tie_head:
            self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = rearrange(self.embed(ids), "b t c -> b c t")
        for conv in self.convs:
            x = x + F.gelu(conv(x))  # residual after the activation (exact erf GELU)
        return self.head(rearrange(x, "b c t -> b t c"))  # (B, T, V) logits

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # a tied matrix is one parameter, counted once
