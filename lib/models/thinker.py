"""A latent "thinker": one shared block updates latent slots for n_step steps, then queries read out.

Ref: the "Th1nker" experiment log (references/thinker.md, section 1); ideas only, our code.

Glossary: B batch, L input length, d width, M n_latent (slots per step), S n_step, O output length.

    I     = Embed(x) * sqrt(d) + P[o : o + L]          P fixed sinusoidal, o a random offset in training
    Z_0   = Latent[:M]                                  learned slots, (B, M, d)
    mem_0 = I
    Z_s   = Block(Z_{s-1}, mem_{s-1})                   self-attention over the slots, cross-attention to memory
    mem_s = [I ; Z_1 ; ... ; Z_s]                       a FIFO of every stored latent set; with read_steps = r,
                                                        I is dropped from mem_s for s >= r (the reference's read_step);
                                                        latent_readout: r = n_step, so only the readout loses I
    out_s = Head(Block(Q, mem_s))                       O learned output queries, read in the last `readout` steps

Block is one post-norm decoder layer (torch's TransformerDecoderLayer: self-attn, cross-attn,
4d GELU FFN) shared by every step and by the readout. n_latent and n_step are arguments of
forward, so one model runs at any compute; the parameter count does not depend on them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from lib.config import Config


def sinusoidal(n: int, d: int) -> torch.Tensor:
    """The standard (n, d) table: sin/cos at geometric frequencies (one frequency per channel pair)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10_000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return table


@dataclass(frozen=True)
class ThinkerConfig(Config):
    vocab: int = 36
    out_len: int = 20  # O output queries
    d: int = 32
    n_head: int = 8
    n_layer: int = 1  # layers of the shared block
    max_latent: int = 64  # rows of the latent table
    max_len: int = 128  # rows of the position table (3-4x the input length for random offsets)
    n_latent: int = 8  # defaults for forward()
    n_step: int = 2
    readout: int = 1  # read out (and put in the loss) in the last `readout` steps
    pos_offset: bool = False  # random start offset into the position table while training
    read_steps: int = 0  # 0: the input stays in memory; r >= 1: only steps s < r see it (then latents only, readout included)
    latent_readout: bool = False  # the readout sees the stored latents only, whatever n_step (= read_steps = n_step)

    def __post_init__(self):
        if self.d % self.n_head or self.d % 2:
            raise ValueError(f"d={self.d} must be even and divisible by n_head={self.n_head}")
        if not 1 <= self.n_latent <= self.max_latent or min(self.n_step, self.readout, self.out_len, self.n_layer) < 1:
            raise ValueError("need 1 <= n_latent <= max_latent and n_step, readout, out_len, n_layer >= 1")
        if self.read_steps < 0:
            raise ValueError(f"read_steps must be >= 0, got {self.read_steps}")

    @property
    def name(self) -> str:
        return f"thinker-d{self.d}-m{self.n_latent}-s{self.n_step}"


class Thinker(nn.Module):
    def __init__(self, cfg: ThinkerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d)
        self.register_buffer("pos", sinusoidal(cfg.max_len, cfg.d), persistent=False)
        self.latents = nn.Parameter(torch.empty(cfg.max_latent, cfg.d).uniform_(-0.1, 0.1))
        self.queries = nn.Parameter(torch.empty(cfg.out_len, cfg.d).uniform_(-0.1, 0.1))
        self.block = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(cfg.d, cfg.n_head, 4 * cfg.d, dropout=0.0, activation="gelu", batch_first=True),
            cfg.n_layer,
        )
        self.head = nn.Linear(cfg.d, cfg.vocab)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.head.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, n_latent: int | None = None, n_step: int | None = None) -> torch.Tensor:
        """x (B, L) -> logits (R, B, O, vocab) of the last R = min(readout, n_step) steps (R = 1: (B, O, vocab))."""
        cfg = self.cfg
        M, S = n_latent or cfg.n_latent, n_step or cfg.n_step
        if not 1 <= M <= cfg.max_latent:
            raise ValueError(f"n_latent={M} must be in [1, {cfg.max_latent}]")
        B, L = x.shape
        offset = torch.randint(0, cfg.max_len - L + 1, (B, 1), device=x.device) if self.training and cfg.pos_offset else 0
        inp = self.embed(x) * math.sqrt(cfg.d) + self.pos[torch.arange(L, device=x.device) + offset]  # (B, L, d)
        z = self.latents[:M].expand(B, M, cfg.d)
        queries = self.queries.expand(B, cfg.out_len, cfg.d)
        r = S if cfg.latent_readout else cfg.read_steps
        sees_input = lambda s: not r or s < r  # step s (readout after step s: s + 1)
        stored, outs = [], []  # FIFO of every stored latent set
        for s in range(S):
            z = self.block(z, torch.cat(([inp] if sees_input(s) else []) + stored, dim=1))  # (B, M, d)
            stored.append(z)
            if s >= S - cfg.readout:
                memory = torch.cat(([inp] if sees_input(s + 1) else []) + stored, dim=1)
                outs.append(self.head(self.block(queries, memory)))  # (B, O, vocab)
        return outs[0] if len(outs) == 1 else torch.stack(outs)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
