"""A causal dilated 1-D convolution stack: the selective-copy layer made causal, as a sequence body.

Ref: references/selective_copy.md (the residual dilated conv block of ConvTextModel, which
pads both sides); here the padding is on the left only, so output t sees inputs t - R .. t.

    Block:  x = x + GELU(Conv1d_i(LN(x)))      kernel k_i, dilation d_i, left padding (k_i - 1) d_i
    Stack:  n_layer blocks, final LayerNorm: (B, N, e) -> (B, N, e)

Receptive window (inputs each output sees, itself included): W = 1 + sum_i (k_i - 1) d_i.
Generation state per sequence: the last (k_i - 1) d_i inputs of every layer, e channels each.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from lib.config import Config
from lib.models.conv_text import per_layer


@dataclass(frozen=True)
class CausalConvConfig(Config):
    d_model: int = 64
    n_layer: int = 4
    kernel_size: int | tuple[int, ...] = 3
    dilation: int | tuple[int, ...] = (1, 2, 4, 8)  # one per layer, or one for all

    def __post_init__(self):
        per_layer(self.kernel_size, self.n_layer, "kernel_size")
        per_layer(self.dilation, self.n_layer, "dilation")
        if self.d_model < 1 or self.n_layer < 1:
            raise ValueError(f"d_model and n_layer must be >= 1, got {self.d_model}, {self.n_layer}")

    @property
    def kernels(self) -> tuple[int, ...]:
        return per_layer(self.kernel_size, self.n_layer, "kernel_size")

    @property
    def dilations(self) -> tuple[int, ...]:
        return per_layer(self.dilation, self.n_layer, "dilation")

    @property
    def window(self) -> int:
        """W: how many inputs (itself included) one output sees."""
        return 1 + sum((k - 1) * d for k, d in zip(self.kernels, self.dilations))


class CausalConvBlock(nn.Module):
    def __init__(self, d: int, k: int, dilation: int):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.conv = nn.Conv1d(d, d, k, dilation=dilation)
        self.pad = (k - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = rearrange(self.ln(x), "b n e -> b e n")
        h = self.conv(F.pad(h, (self.pad, 0)))  # left padding only: causal
        return x + F.gelu(rearrange(h, "b e n -> b n e"))


class CausalConvBackbone(nn.Module):
    """(B, N, e) -> (B, N, e); no positions (the convolution is ordered)."""

    def __init__(self, cfg: CausalConvConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(CausalConvBlock(cfg.d_model, k, d) for k, d in zip(cfg.kernels, cfg.dilations))
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)
