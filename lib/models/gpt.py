"""GPT-2-style pre-LN decoder backbone (nanoGPT layout), used plain or as a loop body.

Ref: Radford et al. 2019 (GPT-2); karpathy/nanoGPT model.py; Yang et al. 2023 (arXiv
2311.12424) use this backbone: references/looped_transformers.md section 2.

Glossary: B batch, N tokens, e width (n_embd), h heads.

    Block:    h = h + Attn(LN(h));  h = h + MLP(LN(h))       MLP: e -> 4e -> e, tanh-GELU
    Backbone: h = LN_f(Blocks(h + P[:N]))                    P: learned positions

Init (GPT-2): Linear and Embedding weights N(0, 0.02), biases 0, and the two residual
output projections of each block N(0, 0.02 / sqrt(2 * n_layer)).
Parameters per block 12e^2 + 13e; final LN 2e; positions n_positions * e.
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
class GPTConfig(Config):
    n_layer: int = 1
    n_embd: int = 256
    n_head: int = 8
    n_positions: int = 203
    causal: bool = True

    def __post_init__(self):
        if min(self.n_layer, self.n_embd, self.n_head, self.n_positions) < 1:
            raise ValueError("n_layer, n_embd, n_head, n_positions must be >= 1")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")

    def n_params(self, positions: bool = True) -> int:
        e = self.n_embd
        return self.n_layer * (12 * e * e + 13 * e) + 2 * e + (self.n_positions * e if positions else 0)


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v, written out: the oracle for scaled_dot_product_attention."""
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, h, N, N)
    if causal:
        n = q.shape[-2]
        att = att.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return att.softmax(dim=-1) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.causal = cfg.n_head, cfg.causal
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.n_head)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (B, h, N, d)
        return self.proj(rearrange(y, "b h n d -> b n (h d)"))

    def step(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None):
        """Generation with a KV cache: new tokens x (B, n, e) after the cached keys and values
        (B, h, past, d) -> (output (B, n, e), the cache extended by these n tokens)."""
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.n_head)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        n, total = q.shape[2], k.shape[2]
        # new query i (absolute position past + i) sees keys <= past + i; one new token sees all
        mask = torch.ones(n, total, dtype=torch.bool, device=x.device).tril(total - n) if n > 1 else None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(rearrange(y, "b h n d -> b n (h d)")), (k, v)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(cfg.n_embd), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = nn.LayerNorm(cfg.n_embd), MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def step(self, x: torch.Tensor, cache):
        y, cache = self.attn.step(self.ln_1(x), cache)
        x = x + y
        return x + self.mlp(self.ln_2(x)), cache


class GPTBackbone(nn.Module):
    """(B, N, e) -> (B, N, e): positions added, n_layer blocks, final LayerNorm."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # residual projections (attn.proj, mlp.proj)
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = h.shape[1]
        if n > self.cfg.n_positions:
            raise ValueError(f"sequence of {n} tokens exceeds n_positions={self.cfg.n_positions}")
        h = h + self.wpe(torch.arange(n, device=h.device))
        for block in self.blocks:
            h = block(h)
        return self.ln_f(h)

    def step(self, h: torch.Tensor, state: tuple[int, list] | None = None) -> tuple[torch.Tensor, tuple[int, list]]:
        """New tokens h (B, n, e) at positions pos..pos+n-1, with every layer's KV cache:
        state = (pos, caches). The same outputs as forward() on the whole sequence at those positions."""
        pos, caches = state or (0, [None] * len(self.blocks))
        n = h.shape[1]
        if pos + n > self.cfg.n_positions:
            raise ValueError(f"position {pos + n} exceeds n_positions={self.cfg.n_positions}")
        h = h + self.wpe(torch.arange(pos, pos + n, device=h.device))
        new = []
        for block, cache in zip(self.blocks, caches):
            h, cache = block.step(h, cache)
            new.append(cache)
        return self.ln_f(h), (pos + n, new)

    def room(self, state: tuple[int, list] | None) -> int:
        """Positions left before step() runs out of learned position embeddings."""
        return self.cfg.n_positions - (state[0] if state else 0)


@dataclass(frozen=True)
class ReaderConfig(Config):
    vocab: int = 36
    out_len: int = 20
    n_layer: int = 1
    n_embd: int = 32
    n_head: int = 8
    n_positions: int = 64

    def gpt(self) -> GPTConfig:
        return GPTConfig(n_layer=self.n_layer, n_embd=self.n_embd, n_head=self.n_head, n_positions=self.n_positions)

    @property
    def name(self) -> str:
        return f"causal-tf-L{self.n_layer}-d{self.n_embd}"


class GPTReader(nn.Module):
    """A standard causal transformer for input -> fixed-length output tasks (a baseline).

    Reads [x ; O query tokens] (the query token is an extra embedding row) and predicts the
    target at the O query positions, all in one causal pass: (B, L) -> (B, O, vocab).
    """

    def __init__(self, cfg: ReaderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab + 1, cfg.n_embd)  # the last row is the query token
        self.backbone = GPTBackbone(cfg.gpt())
        self.head = nn.Linear(cfg.n_embd, cfg.vocab)

    def forward(self, x: torch.Tensor, **_compute) -> torch.Tensor:
        q = torch.full((x.shape[0], self.cfg.out_len), self.cfg.vocab, dtype=x.dtype, device=x.device)
        h = self.backbone(self.embed(torch.cat([x, q], dim=1)))
        return self.head(h[:, -self.cfg.out_len :])

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
