"""A token language model around any of three backbones: masked mixer, GPT, Mamba-2 SSD.

    logits = head(backbone(embed(idx)))          idx (B, t) -> logits (B, t, V); head tied to embed

Backbones (each in its own file): `masked_mixer.MixerBackbone` (fixed window ctx, no positions),
`gpt.GPTBackbone` (learned positions, causal SDPA), `ssd.SSDBackbone` (no positions; pure SSD
blocks, no MLP, as in Mamba-2). Generation state, one token at a time (`step`):

    gpt    the KV cache of every layer                                O(t) per token
    ssd    the recurrent state of every layer (SSM state, conv buffer)  O(1) per token
    mixer  the token window itself: each new token is written into the fixed window and the
           window is run forward again (the reference's in-place window filling)   O(ctx^2)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from lib.config import Config
from lib.models.gpt import GPTBackbone, GPTConfig
from lib.models.masked_mixer import MixerBackbone, MixerConfig
from lib.models.ssd import SSDBackbone, SSDConfig

ARCHS = ("mixer", "gpt", "ssd")


@dataclass(frozen=True)
class LMConfig(Config):
    arch: str = "mixer"  # one of ARCHS
    vocab: int = 4096
    ctx: int = 256  # the longest sequence (the mixer's fixed window; the transformer's positions)
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4  # gpt: attention heads; mixer: token-mixing heads (1 = flat)
    expand: int = 0  # mixer: 0 flat, e >= 1 expanded
    d_state: int = 64  # ssd: N
    d_head: int = 32  # ssd: P
    chunk: int = 64  # ssd: Q
    tie: bool = True  # head weight = embedding weight

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {list(ARCHS)}, got {self.arch!r}")
        if min(self.vocab, self.ctx, self.d_model, self.n_layer) < 1:
            raise ValueError("vocab, ctx, d_model, n_layer must be >= 1")
        self.backbone()  # validates the backbone's own sizes

    def backbone(self) -> Config:
        if self.arch == "mixer":
            return MixerConfig(n_layer=self.n_layer, d_model=self.d_model, ctx=self.ctx, heads=self.n_head, expand=self.expand)
        if self.arch == "gpt":
            return GPTConfig(n_layer=self.n_layer, n_embd=self.d_model, n_head=self.n_head, n_positions=self.ctx)
        return SSDConfig(d_model=self.d_model, n_layer=self.n_layer, d_state=self.d_state, d_head=self.d_head, chunk=self.chunk)

    @property
    def name(self) -> str:
        extra = {"mixer": f"-h{self.n_head}" + (f"-e{self.expand}" if self.expand else ""), "gpt": f"-h{self.n_head}", "ssd": f"-N{self.d_state}"}
        return f"{self.arch}-d{self.d_model}-L{self.n_layer}{extra[self.arch]}"


BACKBONES = {"mixer": MixerBackbone, "gpt": GPTBackbone, "ssd": SSDBackbone}


class LanguageModel(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d_model)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)
        self.backbone = BACKBONES[cfg.arch](cfg.backbone())
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        if cfg.tie:
            self.head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.embed(idx)))  # (B, t, V)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights counted once

    @torch.no_grad()
    def step(self, idx: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """Feed new tokens idx (B, n) after `state` (None at the start) -> (logits of the last new
        token (B, V), new state). Any n for the first call (the prompt); then one token at a time."""
        arch = self.cfg.arch
        if arch == "gpt":
            h, state = self.backbone.step(self.embed(idx), state)
            return self.head(h[:, -1]), state
        if arch == "ssd":
            for t in range(idx.shape[1]):
                h, state = self.backbone.step(self.embed(idx[:, t]), state)
            return self.head(h), state
        window = idx if state is None else torch.cat([state, idx], dim=1)
        window = window[:, -self.cfg.ctx :]  # the fixed window: the oldest token leaves when it is full
        return self(window)[:, -1], window
