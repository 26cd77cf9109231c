"""Masked mixer: an MLP-mixer whose token mixing is a causally masked T x T matrix.

Ref: B. Badger, "Masked Mixers for Language Generation and Retrieval" (arXiv 2409.01482) and its
blog; facts in references/masked_mixer.md (section 1).

Glossary: B batch, T positions (the fixed context, ctx), D width (d_model), H mixing heads.

    Block:  x = x + TokenMix(LN_1(x));  x = x + FFN(LN_2(x))        FFN: D -> 4D -> D, GELU
    flat:      TokenMix(X) = (W ⊙ M) X + c                          W: (T, T), M = tril(1), c: (T,)
    expanded:  TokenMix(X) = (W_2 ⊙ M_2) GELU((W_1 ⊙ M_1) X + c_1) + c_2     W_1: (eT, T), W_2: (T, eT)
    heads:     the D channels split into H groups, each with its own (W ⊙ M)

The same matrix acts on every channel (the reference's Conv1d(T, T, 1), channels = positions).
Causality comes from the mask applied inside the graph: W ⊙ M has zero gradient at masked
entries, and the masked entries start at zero, so AdamW (gradient 0, decoupled decay of 0)
keeps them exactly zero; the reference instead re-masked the weights in place before every
forward pass. For the expanded form the masks M_1 (eT x T) and M_2 (T x eT) let hidden row i
see positions <= i // e and output row t see hidden rows < (t + 1) e, so output t depends on
inputs <= t. A sequence shorter than T uses the top-left block of every matrix (positions are
absolute from the window start), so a prefix of length t gives the same outputs as the full
window at those t positions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from lib.config import Config


@dataclass(frozen=True)
class MixerConfig(Config):
    n_layer: int = 4
    d_model: int = 128
    ctx: int = 256  # T: the fixed window
    heads: int = 1  # H token-mixing matrices per block (1 = the reference's flat mixer)
    expand: int = 0  # 0: flat; e >= 1: expanded (two masked matrices, e T hidden rows)

    def __post_init__(self):
        if min(self.n_layer, self.d_model, self.ctx, self.heads) < 1 or self.expand < 0:
            raise ValueError("n_layer, d_model, ctx, heads must be >= 1 and expand >= 0")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")


class MaskedLinearT(nn.Module):
    """Y[h] = (W[h] ⊙ M) X[h] + c over positions: (B, T_in, D) -> (B, T_out, D), one matrix per head."""

    def __init__(self, t_out: int, t_in: int, heads: int, mask: torch.Tensor):
        super().__init__()
        self.heads = heads
        self.register_buffer("mask", mask.float(), persistent=False)  # (t_out, t_in), 1 = live
        bound = 1 / math.sqrt(t_in)  # PyTorch's Conv1d default init, as in the reference
        self.weight = nn.Parameter(torch.empty(heads, t_out, t_in).uniform_(-bound, bound) * self.mask)
        self.bias = nn.Parameter(torch.empty(heads, t_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        t_in = x.shape[1]
        w = (self.weight * self.mask)[:, :t_out, :t_in]  # (H, t_out, t_in), masked in the graph
        x = rearrange(x, "b t (h d) -> b h t d", h=self.heads)
        y = w @ x + self.bias[:, :t_out, None]  # (B, H, t_out, d)
        return rearrange(y, "b h t d -> b t (h d)")


class TokenMix(nn.Module):
    def __init__(self, cfg: MixerConfig):
        super().__init__()
        T, e, H = cfg.ctx, cfg.expand, cfg.heads
        self.e = e
        tril = torch.ones(T, T).tril()
        if e == 0:
            self.mix = MaskedLinearT(T, T, H, tril)
        else:
            rows, cols = torch.arange(e * T), torch.arange(T)
            self.up = MaskedLinearT(e * T, T, H, cols[None, :] <= rows[:, None] // e)  # hidden row i sees t <= i // e
            self.down = MaskedLinearT(T, e * T, H, rows[None, :] < (cols[:, None] + 1) * e)  # out t sees rows < (t+1) e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if self.e == 0:
            return self.mix(x, t)
        return self.down(F.gelu(self.up(x, self.e * t)), t)


class MixerBlock(nn.Module):
    def __init__(self, cfg: MixerConfig):
        super().__init__()
        D = cfg.d_model
        self.ln_1, self.mix = nn.LayerNorm(D), TokenMix(cfg)
        self.ln_2 = nn.LayerNorm(D)
        self.ffn = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mix(self.ln_1(x))
        return x + self.ffn(self.ln_2(x))


class MixerBackbone(nn.Module):
    """(B, t, D) -> (B, t, D) for any t <= ctx: n_layer mixer blocks, final LayerNorm. No positions."""

    def __init__(self, cfg: MixerConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(MixerBlock(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.cfg.ctx:
            raise ValueError(f"sequence of {x.shape[1]} tokens exceeds the mixer's fixed window ctx={self.cfg.ctx}")
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def step(self, h: torch.Tensor, window: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """New positions h (B, n, D) after the window of earlier ones (None at the start): the new
        positions are written into the fixed window (the oldest leave once it holds ctx) and the
        window is run forward again, the reference's in-place window filling: O(ctx^2) per token.
        Returns (outputs at the new positions (B, n, D), the new window)."""
        window = h if window is None else torch.cat([window, h], dim=1)
        window = window[:, -self.cfg.ctx :]
        return self(window)[:, -h.shape[1] :], window
