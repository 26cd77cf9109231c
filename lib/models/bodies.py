"""Every sequence-mixing body, by name, for the block x task grid (lib/models/seq.py).

A body maps (B, N, e) -> (B, N, e). Each entry says how to build it from a `BodyConfig`, whether
it is causal (a later token never changes an earlier output), and its state size: how many numbers
a model must keep after reading n tokens to predict the next one (zoology's "state size"):

    attention  2 L e n                                  keys and values of every layer
    mamba      L (E N + E (k-1))                        SSM state and conv buffer, E = 2e
    ssd        L (H P N + (E + 2 N)(k-1))               SSM state and conv buffer, H P = E = 2e
    conv       e sum_i (k_i - 1) d_i                    each layer's last (k_i - 1) d_i inputs
    mixer      e min(n, ctx)                            the window of embedded inputs
    hybrid     ssd's for L - 1 layers + 2 e n           plus one attention layer's KV cache

Adding a body is one file (its module) and one entry in BODIES.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from lib.config import Config
from lib.models.causal_conv import CausalConvBackbone, CausalConvConfig
from lib.models.gpt import GPTBackbone, GPTConfig
from lib.models.hybrid import HybridBackbone, HybridConfig
from lib.models.mamba import MambaBackbone, MambaConfig
from lib.models.masked_mixer import MixerBackbone, MixerConfig
from lib.models.ssd import SSDBackbone, SSDConfig


@dataclass(frozen=True)
class BodyConfig(Config):
    kind: str = "attention"  # a key of BODIES
    d_model: int = 64  # e
    n_layer: int = 2  # L
    n_head: int = 4  # attention, hybrid
    d_state: int = 16  # N: mamba, ssd, hybrid
    d_head: int = 16  # P: ssd, hybrid
    kernel_size: int = 3  # conv
    ctx: int = 256  # attention and hybrid positions, the mixer's window

    def __post_init__(self):
        if self.kind not in BODIES:
            raise ValueError(f"kind must be one of {sorted(BODIES)}, got {self.kind!r}")
        BODIES[self.kind].config(self)  # validates the body's own sizes


@dataclass(frozen=True)
class Body:
    config: Callable[[BodyConfig], Config]  # the body's own config
    module: type  # its module class, built from that config
    causal: bool
    state_size: Callable[[BodyConfig, int], int]  # numbers kept after n tokens

    def build(self, cfg: BodyConfig) -> nn.Module:
        return self.module(self.config(cfg))


def _conv(c: BodyConfig) -> CausalConvConfig:  # dilations 1, 2, 4, ...: the window doubles per layer
    return CausalConvConfig(d_model=c.d_model, n_layer=c.n_layer, kernel_size=c.kernel_size,
                            dilation=tuple(2**i for i in range(c.n_layer)))


def _ssd(c: BodyConfig) -> SSDConfig:
    return SSDConfig(d_model=c.d_model, n_layer=c.n_layer, d_state=c.d_state, d_head=c.d_head)


def _ssd_state(c: BodyConfig, layers: int) -> int:
    s = _ssd(c)
    return layers * (s.n_heads * s.d_head * s.d_state + (s.d_inner + 2 * s.n_groups * s.d_state) * (s.d_conv - 1))


BODIES: dict[str, Body] = {
    "attention": Body(lambda c: GPTConfig(n_layer=c.n_layer, n_embd=c.d_model, n_head=c.n_head, n_positions=c.ctx),
                      GPTBackbone, True, lambda c, n: 2 * c.n_layer * c.d_model * n),
    "mamba": Body(lambda c: MambaConfig(d_model=c.d_model, n_layer=c.n_layer, d_state=c.d_state), MambaBackbone, True,
                  lambda c, n: c.n_layer * (2 * c.d_model * c.d_state + 2 * c.d_model * (MambaConfig().d_conv - 1))),
    "ssd": Body(_ssd, SSDBackbone, True, lambda c, n: _ssd_state(c, c.n_layer)),
    "conv": Body(_conv, CausalConvBackbone, True, lambda c, n: c.d_model * (_conv(c).window - 1)),
    "mixer": Body(lambda c: MixerConfig(n_layer=c.n_layer, d_model=c.d_model, ctx=c.ctx, heads=1), MixerBackbone, True,
                  lambda c, n: c.d_model * min(n, c.ctx)),
    "hybrid": Body(lambda c: HybridConfig(d_model=c.d_model, n_layer=c.n_layer, n_head=c.n_head, d_state=c.d_state,
                                          d_head=c.d_head, n_positions=c.ctx),
                   HybridBackbone, True, lambda c, n: _ssd_state(c, c.n_layer - 1) + 2 * c.d_model * n),
}


def state_size(cfg: BodyConfig, n: int) -> int:
    return BODIES[cfg.kind].state_size(cfg, n)
