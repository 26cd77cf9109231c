"""A token language model around any body of lib/models/bodies.py (masked mixer, GPT, Mamba-2 SSD, ...).

    logits = head(backbone(embed(idx)))          idx (B, t) -> logits (B, t, V); head tied to embed

The backbone is the body named by `arch`, built from the registry like every other study's
(`mixer`: fixed window ctx, no positions; `gpt`: learned positions, causal SDPA; `ssd`: no
positions, pure SSD blocks, no MLP, as in Mamba-2). A language model needs a causal body, and one
with `step` to generate (lib.contracts.StepBackbone). Generation state, one token at a time:

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
from lib.contracts import StepBackbone
from lib.models import bodies
from lib.models.bodies import BodyConfig


@dataclass(frozen=True)
class Arch:
    """What a language model adds to a body: the run-name tag and the body sizes only a language
    model sets (LMConfig fields -> the body config's extra keys)."""

    tag: Callable[["LMConfig"], str] = lambda c: ""
    extra: Callable[["LMConfig"], dict] = lambda c: {}


# Language-model specifics per body; a body without an entry is used with no tag and no extras.
ARCHS: dict[str, Arch] = {
    "mixer": Arch(lambda c: f"-h{c.n_head}" + (f"-e{c.expand}" if c.expand else ""), lambda c: dict(heads=c.n_head, expand=c.expand)),
    "attention": Arch(lambda c: f"-h{c.n_head}"),
    "ssd": Arch(lambda c: f"-N{c.d_state}", lambda c: dict(chunk=c.chunk)),
}
# This config's spelling of a body where it differs from the registry name: the spelling is hashed
# into run ids and checkpoint names, so it stays the one the runs were trained under.
SPELLING = {"attention": "gpt"}


@dataclass(frozen=True)
class LMConfig(Config):
    arch: str = "mixer"  # a body of lib/models/bodies.py (name or alias)
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
        name = bodies.resolve(self.arch, "arch")
        object.__setattr__(self, "arch", SPELLING.get(name, name))
        if not bodies.BODIES[name].causal:
            raise ValueError(f"arch: a language model needs a causal body, and {name!r} is not")
        if min(self.vocab, self.ctx, self.d_model, self.n_layer) < 1:
            raise ValueError("vocab, ctx, d_model, n_layer must be >= 1")
        self.backbone()  # validates the backbone's own sizes

    @property
    def specifics(self) -> Arch:
        return ARCHS.get(bodies.resolve(self.arch), Arch())

    def body(self) -> BodyConfig:
        return BodyConfig(kind=self.arch, d_model=self.d_model, n_layer=self.n_layer, n_head=self.n_head, d_state=self.d_state,
                          d_head=self.d_head, ctx=self.ctx)

    def backbone(self) -> Config:
        return bodies.config(self.body(), **self.specifics.extra(self))

    @property
    def name(self) -> str:
        return f"{self.arch}-d{self.d_model}-L{self.n_layer}{self.specifics.tag(self)}"


class LanguageModel(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d_model)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)
        self.backbone = bodies.build(cfg.body(), **cfg.specifics.extra(cfg))
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
        if not isinstance(self.backbone, StepBackbone):
            raise TypeError(f"generating needs a body with step() (lib.contracts.StepBackbone); {self.cfg.arch!r} has none")
        h, state = self.backbone.step(self.embed(idx), state)
        return self.head(h[:, -1]), state
