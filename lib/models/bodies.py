"""Every sequence-mixing body, by name: the one registry the looping wrapper (lib/models/looped.py),
the grid's sequence model (lib/models/seq.py) and the language models (lib/models/lm.py) build from.

A body maps (B, N, e) -> (B, N, e). Each entry says how to build it from a `BodyConfig`, what it
costs to train (sweeps schedule the costliest runs first), and its constraints: whether it is
causal (a later token never changes an earlier output), its fewest layers, how `ctx` bounds the
length it reads, and its state size: how many numbers a model must keep after reading n tokens to
predict the next one (zoology's "state size"):

    attention  2 L e n                                  keys and values of every layer
    mamba      L (E N + E (k-1))                        SSM state and conv buffer, E = 2e
    ssd        L (H P N + (E + 2 N)(k-1))               SSM state and conv buffer, H P = E = 2e
    conv       e sum_i (k_i - 1) d_i                    each layer's last (k_i - 1) d_i inputs
    mixer      e min(n, ctx)                            the window of embedded inputs
    hybrid     ssd's for L - 1 layers + 2 e n           plus one attention layer's KV cache

Adding a body is one file (its module and config) and one entry in BODIES; every study can then
name it. Older spellings stay valid as aliases (`gpt` is `attention`).
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

WINDOWS = ("positions", "fixed", "none")


@dataclass(frozen=True)
class BodyConfig(Config):
    kind: str = "attention"  # a name (or alias) in BODIES; stored as the name
    d_model: int = 64  # e
    n_layer: int = 2  # L
    n_head: int = 4  # attention, hybrid
    d_state: int = 16  # N: mamba, ssd, hybrid
    d_head: int = 16  # P: ssd, hybrid
    kernel_size: int = 3  # conv
    ctx: int = 256  # attention and hybrid positions, the mixer's window

    def __post_init__(self):
        object.__setattr__(self, "kind", resolve(self.kind, "kind"))
        body = BODIES[self.kind]
        if self.n_layer < body.min_layers:
            raise ValueError(f"n_layer: body {self.kind!r} needs at least {body.min_layers} layers, got {self.n_layer}")
        body.config(self)  # validates the body's own sizes


@dataclass(frozen=True)
class Body:
    """One body: its config from a BodyConfig (plus `extra` sizes only some users set, such as a
    language model's mixer heads), its module class, and what a study may rely on."""

    config: Callable[..., Config]  # (BodyConfig, **extra) -> the module's own config
    module: type  # built from that config: (B, N, e) -> (B, N, e)
    state_size: Callable[[BodyConfig, int], int]  # numbers kept after n tokens
    cost: float  # training cost of one layer over one position, relative to attention (orders work only)
    causal: bool = True
    min_layers: int = 1
    window: str = "none"  # how ctx bounds the length: 'positions' (learned positions up to ctx), 'fixed' (weights
    #                       sized by ctx, so give it the task's length), 'none' (any length; ctx unused)
    aliases: tuple[str, ...] = ()

    def __post_init__(self):
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {list(WINDOWS)}, got {self.window!r}")

    def build(self, cfg: BodyConfig, **extra) -> nn.Module:
        return self.module(self.config(cfg, **extra))


def _conv(c: BodyConfig, **extra) -> CausalConvConfig:  # dilations 1, 2, 4, ...: the window doubles per layer
    return CausalConvConfig(d_model=c.d_model, n_layer=c.n_layer, kernel_size=c.kernel_size,
                            dilation=tuple(2**i for i in range(c.n_layer)), **extra)


def _ssd(c: BodyConfig, **extra) -> SSDConfig:
    return SSDConfig(d_model=c.d_model, n_layer=c.n_layer, d_state=c.d_state, d_head=c.d_head, **extra)


def _ssd_state(c: BodyConfig, layers: int) -> int:
    s = _ssd(c)
    return layers * (s.n_heads * s.d_head * s.d_state + (s.d_inner + 2 * s.n_groups * s.d_state) * (s.d_conv - 1))


def _mixer(c: BodyConfig, **extra) -> MixerConfig:  # one token-mixing matrix per block unless `heads` is given
    return MixerConfig(n_layer=c.n_layer, d_model=c.d_model, ctx=c.ctx, **{"heads": 1, **extra})


# cost: attention, mamba and ssd carry the relative step costs the looped family has scheduled by;
# conv, mixer and hybrid are estimates from their arithmetic, not measurements. Costs order work
# only (costliest first) and never change a result.
BODIES: dict[str, Body] = {
    "attention": Body(lambda c, **x: GPTConfig(n_layer=c.n_layer, n_embd=c.d_model, n_head=c.n_head, n_positions=c.ctx, **x),
                      GPTBackbone, lambda c, n: 2 * c.n_layer * c.d_model * n, cost=1.0, window="positions", aliases=("gpt",)),
    "mamba": Body(lambda c, **x: MambaConfig(d_model=c.d_model, n_layer=c.n_layer, d_state=c.d_state, **x), MambaBackbone,
                  lambda c, n: c.n_layer * (2 * c.d_model * c.d_state + 2 * c.d_model * (MambaConfig().d_conv - 1)), cost=2.5),
    "ssd": Body(_ssd, SSDBackbone, lambda c, n: _ssd_state(c, c.n_layer), cost=1.7),
    "conv": Body(_conv, CausalConvBackbone, lambda c, n: c.d_model * (_conv(c).window - 1), cost=0.5),
    "mixer": Body(_mixer, MixerBackbone, lambda c, n: c.d_model * min(n, c.ctx), cost=0.7, window="fixed"),
    "hybrid": Body(lambda c, **x: HybridConfig(d_model=c.d_model, n_layer=c.n_layer, n_head=c.n_head, d_state=c.d_state,
                                               d_head=c.d_head, n_positions=c.ctx, **x),
                   HybridBackbone, lambda c, n: _ssd_state(c, c.n_layer - 1) + 2 * c.d_model * n, cost=1.7, min_layers=2,
                   window="positions"),
}


def resolve(name: str, key: str = "body") -> str:
    """The registry name of `name` (itself, or the body it is an alias of); `key` names the setting
    in the error."""
    if name in BODIES:
        return name
    aliases = {a: registered for registered, body in BODIES.items() for a in body.aliases}
    if name in aliases:
        return aliases[name]
    raise ValueError(f"{key} must be one of {sorted(BODIES)} (aliases {aliases}), got {name!r}")


def get(name: str) -> Body:
    """The body registered as `name` or under it as an alias."""
    return BODIES[resolve(name)]


def build(cfg: BodyConfig, **extra) -> nn.Module:
    return BODIES[cfg.kind].build(cfg, **extra)


def config(cfg: BodyConfig, **extra) -> Config:
    """The body's own config (e.g. GPTConfig) for these sizes."""
    return BODIES[cfg.kind].config(cfg, **extra)


def state_size(cfg: BodyConfig, n: int) -> int:
    return BODIES[cfg.kind].state_size(cfg, n)
