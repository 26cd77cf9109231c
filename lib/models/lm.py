"""A token language model around any of three backbones: masked mixer, GPT, Mamba-2 SSD.

    logits = head(backbone(embed(idx)))          idx (B, t) -> logits (B, t, V); head tied to embed

Backbones (each in its own file): `masked_mixer.MixerBackbone` (fixed window ctx, no positions),
`gpt.GPTBackbone` (learned positions, causal SDPA), `ssd.SSDBackbone` (no positions; pure SSD
blocks, no MLP, as in Mamba-2). Generation state, one token at a time (`step`):

    gpt    the KV cache of every layer                                O(t) per token
    ssd    the recurrent state of every layer (SSM state, conv buffer)  O(1) per token
    mixer  the window of embedded tokens: each new token is written into the fixed window and the
           window is run forward again (the reference's in-place window filling)   O(ctx^2)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from lib.config import Config
from lib.models.gpt import GPTBackbone, GPTConfig
from lib.models.masked_mixer import MixerBackbone, MixerConfig
from lib.models.ssd import SSDBackbone, SSDConfig


@dataclass(frozen=True)
class Arch:
    """One language-model architecture: its backbone (a lib.contracts.StepBackbone), the backbone's
    config class, how LMConfig's shared fields map onto that config, and the run-name tag."""

    config: type
    backbone: type
    fields: Callable[["LMConfig"], dict]
    tag: Callable[["LMConfig"], str]


# The registry: adding an architecture is one file (its backbone) and one entry here.
ARCHS: dict[str, Arch] = {
    "mixer": Arch(MixerConfig, MixerBackbone,
                  lambda c: dict(n_layer=c.n_layer, d_model=c.d_model, ctx=c.ctx, heads=c.n_head, expand=c.expand),
                  lambda c: f"-h{c.n_head}" + (f"-e{c.expand}" if c.expand else "")),
    "gpt": Arch(GPTConfig, GPTBackbone,
                lambda c: dict(n_layer=c.n_layer, n_embd=c.d_model, n_head=c.n_head, n_positions=c.ctx),
                lambda c: f"-h{c.n_head}"),
    "ssd": Arch(SSDConfig, SSDBackbone,
                lambda c: dict(d_model=c.d_model, n_layer=c.n_layer, d_state=c.d_state, d_head=c.d_head, chunk=c.chunk),
                lambda c: f"-N{c.d_state}"),
}


@dataclass(frozen=True)
class LMConfig(Config):
    arch: str = "mixer"  # a key of ARCHS
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
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if min(self.vocab, self.ctx, self.d_model, self.n_layer) < 1:
            raise ValueError("vocab, ctx, d_model, n_layer must be >= 1")
        self.backbone()  # validates the backbone's own sizes

    def backbone(self) -> Config:
        arch = ARCHS[self.arch]
        return arch.config(**arch.fields(self))

    @property
    def name(self) -> str:
        return f"{self.arch}-d{self.d_model}-L{self.n_layer}{ARCHS[self.arch].tag(self)}"


class LanguageModel(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d_model)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)
        self.backbone = ARCHS[cfg.arch].backbone(cfg.backbone())
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        if cfg.tie:
            self.head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.embed(idx)))  # (B, t, V)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights counted once

    def room(self, state) -> int | None:
        """Positions the generation state can still take (None: unbounded)."""
        room = getattr(self.backbone, "room", None)
        return None if room is None else room(state)

    @torch.no_grad()
    def step(self, idx: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """Feed new tokens idx (B, n) after `state` (None at the start) -> (logits of the last new
        token (B, V), new state): the backbone's own step (KV cache, SSM state, mixer window)."""
        h, state = self.backbone.step(self.embed(idx), state)
        return self.head(h[:, -1]), state
