"""Mamba-2 SSD (state-space duality) mixer. Ref: Dao & Gu 2024 (arXiv 2405.21060), sections 6-7;
the chunked algorithm follows Listing 1 (state-spaces/mamba `ssd_minimal.py`).
Facts: references/ssd_language_model.md.

Glossary: B batch, T time, H heads, P head dim (d_head), N state dim, G groups (B and C are
shared by the H/G heads of a group), Q chunk length. A is a scalar per head (A_h I), so with
a_t = Δ_t A_h (a log-decay, <= 0) and inputs x_t Δ_t:

    h_t = exp(a_t) h_{t-1} + x_t B_t^T          h: (P, N) per head
    y_t = h_t C_t                                (the recurrence: ssd_ref)

Unrolled, Y = (L ∘ C B^T) X with L_ts = exp(a_{s+1} + ... + a_t) for s <= t, else 0
(the quadratic, attention-like form: ssd_quadratic). The chunked algorithm (ssd_chunked)
computes the diagonal blocks of that matrix quadratically inside chunks of Q steps, passes
states between chunks by a short scan, and reads the states out: linear in T.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange, repeat

from lib.config import Config
from lib.models.ssm import CausalConv, RMSNorm, SSMBackbone


def segsum_unstable(a: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): sum_{k=s+1..t} a_k as a difference of cumsums (-inf above the diagonal)."""
    cs = torch.cumsum(a, dim=-1)
    out = cs[..., :, None] - cs[..., None, :]
    return out.masked_fill(~torch.ones_like(out, dtype=torch.bool).tril(), -torch.inf)


def segsum(a: torch.Tensor) -> torch.Tensor:
    """The same, by a masked cumsum of a (no difference of large sums: stable)."""
    T = a.shape[-1]
    x = repeat(a, "... t -> ... t s", s=T).masked_fill(~torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1), 0)
    out = torch.cumsum(x, dim=-2)
    return out.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=a.device).tril(), -torch.inf)


def ssd_ref(x, a, b, c, h0=None):
    """The recurrence, one step at a time. x (B,T,H,P), a (B,T,H), b c (B,T,H,N) -> y (B,T,H,P), h (B,H,P,N)."""
    h = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], b.shape[-1]) if h0 is None else h0
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(a[:, t])[..., None, None] * h + torch.einsum("bhp,bhn->bhpn", x[:, t], b[:, t])
        ys.append(torch.einsum("bhpn,bhn->bhp", h, c[:, t]))
    return torch.stack(ys, dim=1), h


def ssd_quadratic(x, a, b, c):
    """The attention-like form Y = (L ∘ C B^T) X; memory O(T^2). Same shapes as ssd_ref (y only)."""
    L = torch.exp(segsum(rearrange(a, "b t h -> b h t")))  # (B, H, T, S)
    return torch.einsum("bthn,bshn,bhts,bshp->bthp", c, b, L, x)


def ssd_chunked(x, a, b, c, chunk: int, h0=None):
    """Listing 1 of the paper, with padding for lengths that chunk does not divide. Same shapes as ssd_ref."""
    T = x.shape[1]
    chunk = min(chunk, T)  # a sequence shorter than a chunk is one chunk (no padding work)
    pad = (-T) % chunk
    if pad:  # zero inputs and zero log-decay (exp = 1) change nothing
        x, a, b, c = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, a, b, c))
    x, a, b, c = (rearrange(t, "b (k q) ... -> b k q ...", q=chunk) for t in (x, a, b, c))
    a = rearrange(a, "b k q h -> b h k q")
    a_cum = torch.cumsum(a, dim=-1)  # (B, H, K, Q)
    # 1. inside each chunk: the diagonal blocks of the quadratic form
    L = torch.exp(segsum(a))  # (B, H, K, Q, S)
    y_diag = torch.einsum("bkqhn,bkshn,bhkqs,bkshp->bkqhp", c, b, L, x)
    # 2. the state each chunk leaves behind (from a zero state at its start)
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (B, H, K, Q)
    states = torch.einsum("bkqhn,bhkq,bkqhp->bkhpn", b, decay_to_end, x)
    # 3. pass states across chunks (a scan over K, as one small quadratic form)
    h0 = torch.zeros_like(states[:, :1]) if h0 is None else h0[:, None]
    states = torch.cat([h0, states], dim=1)  # (B, K+1, H, P, N)
    decay_chunk = torch.exp(segsum(F.pad(a_cum[..., -1], (1, 0))))  # (B, H, K+1, K+1)
    states = torch.einsum("bhzk,bkhpn->bzhpn", decay_chunk, states)
    states, h_last = states[:, :-1], states[:, -1]
    # 4. read each chunk's incoming state out at every position
    y_off = torch.einsum("bkqhn,bkhpn,bhkq->bkqhp", c, states, torch.exp(a_cum))
    y = rearrange(y_diag + y_off, "b k q h p -> b (k q) h p")[:, :T]
    return y, h_last


@dataclass(frozen=True)
class SSDConfig(Config):
    d_model: int = 64
    n_layer: int = 1
    d_state: int = 16  # N
    d_head: int = 16  # P
    expand: int = 2
    n_groups: int = 1  # G
    d_conv: int = 4
    chunk: int = 64  # Q
    mode: str = "chunked"  # 'chunked', 'sequential' or 'quadratic'

    def __post_init__(self):
        if min(self.d_model, self.n_layer, self.d_state, self.d_head, self.expand, self.n_groups, self.d_conv, self.chunk) < 1:
            raise ValueError("all SSD sizes must be >= 1")
        if self.d_inner % self.d_head or self.n_heads % self.n_groups:
            raise ValueError(f"d_inner={self.d_inner} must split into heads of {self.d_head}, and heads={self.n_heads} into {self.n_groups} groups")
        if self.mode not in ("chunked", "sequential", "quadratic"):
            raise ValueError(f"mode must be one of ['chunked', 'quadratic', 'sequential'], got {self.mode!r}")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def n_heads(self) -> int:
        return self.d_inner // self.d_head


class SSDMixer(nn.Module):
    """in_proj -> [z, x, B, C, dt]; causal conv + SiLU on (x, B, C); SSD; gated RMSNorm; out_proj."""

    def __init__(self, cfg: SSDConfig, dt_min: float = 1e-3, dt_max: float = 0.1):
        super().__init__()
        self.cfg = cfg
        E, H, GN = cfg.d_inner, cfg.n_heads, cfg.n_groups * cfg.d_state
        self.in_proj = nn.Linear(cfg.d_model, 2 * E + 2 * GN + H, bias=False)
        self.conv1d = CausalConv(E + 2 * GN, cfg.d_conv)
        dt = torch.exp(torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(1, 16)))  # A_h = -exp(A_log) in [-16, -1]
        self.D = nn.Parameter(torch.ones(H))
        self.norm = RMSNorm(E)
        self.out_proj = nn.Linear(E, cfg.d_model, bias=False)

    def _split(self, zxbcdt: torch.Tensor):
        E, GN, H = self.cfg.d_inner, self.cfg.n_groups * self.cfg.d_state, self.cfg.n_heads
        return zxbcdt.split([E, E + 2 * GN, H], dim=-1)

    def _heads(self, xbc: torch.Tensor, dt: torch.Tensor):
        """(..., E + 2GN), (..., H) -> x (..., H, P), a (..., H), B and C (..., H, N), Δ (..., H)."""
        E, GN, G = self.cfg.d_inner, self.cfg.n_groups * self.cfg.d_state, self.cfg.n_groups
        x, B, C = xbc.split([E, GN, GN], dim=-1)
        x = rearrange(x, "... (h p) -> ... h p", p=self.cfg.d_head)
        B, C = (repeat(t, "... (g n) -> ... (g r) n", g=G, r=self.cfg.n_heads // G) for t in (B, C))
        delta = F.softplus(dt + self.dt_bias)
        return x, delta * -torch.exp(self.A_log), B, C, delta

    def _out(self, y: torch.Tensor, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        y = rearrange(y + self.D[:, None] * x, "... h p -> ... (h p)")
        return self.out_proj(self.norm(y * F.silu(z)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        z, xbc, dt = self._split(self.in_proj(u))
        x, a, B, C, delta = self._heads(F.silu(self.conv1d(xbc)), dt)  # x (B, T, H, P)
        xd = x * delta[..., None]
        if self.cfg.mode == "chunked":
            y, _ = ssd_chunked(xd, a, B, C, self.cfg.chunk)
        elif self.cfg.mode == "sequential":
            y, _ = ssd_ref(xd, a, B, C)
        else:
            y = ssd_quadratic(xd, a, B, C)
        return self._out(y, x, z)

    def step(self, u: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        """One token: u (B, D), state (h (B, H, P, N), conv buffer (B, E + 2GN, k-1))."""
        cfg = self.cfg
        if state is None:
            state = (u.new_zeros(u.shape[0], cfg.n_heads, cfg.d_head, cfg.d_state),
                     u.new_zeros(u.shape[0], cfg.d_inner + 2 * cfg.n_groups * cfg.d_state, cfg.d_conv - 1))
        h, buf = state
        z, xbc, dt = self._split(self.in_proj(u))
        xbc, buf = self.conv1d.step(xbc, buf)
        x, a, B, C, delta = self._heads(F.silu(xbc), dt)  # x (B, H, P)
        h = torch.exp(a)[..., None, None] * h + torch.einsum("bhp,bhn->bhpn", x * delta[..., None], B)
        y = torch.einsum("bhpn,bhn->bhp", h, C)
        return self._out(y, x, z), (h, buf)


class SSDBackbone(SSMBackbone):
    def __init__(self, cfg: SSDConfig):
        super().__init__(cfg, SSDMixer)
