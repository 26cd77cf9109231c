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


_MASKS: dict = {}


def causal_mask(T: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(T, T): 0 where s <= t, -inf above the diagonal (added before exp); built once per length, device, dtype."""
    key = (T, device, dtype)
    if key not in _MASKS:
        _MASKS[key] = torch.full((T, T), -torch.inf, dtype=dtype, device=device).triu(1)
    return _MASKS[key]


def segsum_fast(a: torch.Tensor) -> torch.Tensor:
    """The same as segsum, as differences of one cumsum, kept exact: the cumsum is taken in float64
    and split into a's dtype as hi + lo (hi = the rounded sum, lo = what rounding dropped), and
    (hi_t - hi_s) + (lo_t - lo_s) is within about one rounding of the exact difference, at least
    as exact as segsum's masked cumsum (which rounds at every step). No (T, T) cumsum, no flipped
    backward, no boolean masks: the -inf above the diagonal is added from a cached (T, T) matrix.
    Devices without float64 (MPS) take the cumsum in a's dtype (lo = 0)."""
    wide = torch.float64 if a.device.type in ("cpu", "cuda") else a.dtype
    cs = torch.cumsum(a.to(wide), dim=-1)
    hi = cs.to(a.dtype)
    lo = (cs - hi.to(wide)).to(a.dtype)
    out = hi[..., :, None] - hi[..., None, :]
    out += lo[..., :, None] - lo[..., None, :]
    return out.add_(causal_mask(a.shape[-1], a.device, a.dtype))


class DecayMatrix(torch.autograd.Function):
    """L = exp(segsum(a)): (..., T) -> (..., T, T), L_ts = exp(a_{s+1} + ... + a_t) for s <= t, else 0.

    Forward by segsum_fast. Backward written out: with G = dLoss/dL * L (zero above the diagonal),
    dLoss/dcs_j = sum_s G_js - sum_t G_tj (row sums minus column sums of one (T, T) tensor), and
    dLoss/da_k = sum_{j >= k} dLoss/dcs_j: two reductions instead of autograd's float64 broadcast
    backward (a negated (T, T) copy and its sums) and the cumsum's flips."""

    @staticmethod
    def forward(ctx, a):
        # entries below exp(-60) (1e-26 of the diagonal's 1: far below float32 rounding) are set to 0:
        # exp of the sums near -100 that long sequences reach would be subnormal floats, and every
        # CPU operation that touches subnormals (here, and in the products and gradients downstream)
        # runs many times slower
        L = F.threshold_(segsum_fast(a), -60.0, -torch.inf).exp_()
        ctx.save_for_backward(L)
        return L

    @staticmethod
    def backward(ctx, g):
        (L,) = ctx.saved_tensors
        G = g * L
        g_cs = G.sum(-1) - G.sum(-2)
        return g_cs.flip(-1).cumsum(-1).flip(-1)


def decay_matrix(a: torch.Tensor) -> torch.Tensor:
    """exp(segsum(a)) (the matrix L of the quadratic form), fast; see DecayMatrix."""
    return DecayMatrix.apply(a)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous: torch.bmm on a CPU falls back
    to one small matrix product per batch entry when an operand is strided (a permuted view)."""

    @staticmethod
    def forward(ctx, t):
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


def _bmm(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """p @ q on contiguous operands, with a contiguous gradient in backward."""
    return _ContiguousGrad.apply(p.contiguous() @ q.contiguous())


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


def ssd_chunked(x, a, b, c, chunk: int, h0=None, final_state: bool = True):
    """Listing 1 of the paper, with padding for lengths that chunk does not divide. Same shapes as ssd_ref,
    except that b and c may also come per group, (B, T, G, N) with G dividing H (heads h*G/H.. share
    group h // (H/G)), as the mixer makes them: then C_t . B_s is computed once per group.
    `final_state=False` returns (y, None) and, for one chunk without h0, skips the state passing."""
    Bsz, T, H, P = x.shape
    G = b.shape[2]
    chunk = min(chunk, T)  # a sequence shorter than a chunk is one chunk (no padding work)
    pad = (-T) % chunk
    if pad:  # zero inputs and zero log-decay (exp = 1) change nothing
        x, a, b, c = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, a, b, c))
    K = x.shape[1] // chunk
    xh = rearrange(x, "b (k q) h p -> b k h q p", q=chunk)
    bg, cg = (rearrange(t, "b (k q) g n -> b k g q n", q=chunk) for t in (b, c))
    a = rearrange(a, "b (k q) h -> b h k q", q=chunk)
    # 1. inside each chunk: the diagonal blocks of the quadratic form, (C B^T ∘ L) X per head
    L = decay_matrix(a)  # (B, H, K, Q, S)
    CB = _bmm(cg, bg.transpose(-1, -2))  # (B, K, G, Q, S), once per group
    M = CB[:, :, :, None] * rearrange(L, "b (g r) k q s -> b k g r q s", g=G)  # (B, K, G, H/G, Q, S)
    y = rearrange(_bmm(M.flatten(2, 3), xh), "b k h q p -> b k q h p")
    if K > 1 or h0 is not None or final_state:
        a_cum = torch.cumsum(a, dim=-1)  # (B, H, K, Q)
        bh, ch = (repeat(t, "b k g q n -> b k (g r) q n", r=H // G) for t in (bg, cg))
        # 2. the state each chunk leaves behind (from a zero state at its start)
        decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (B, H, K, Q)
        states = torch.einsum("bkhqn,bhkq,bkhqp->bkhpn", bh, decay_to_end, xh)
        # 3. pass states across chunks (a scan over K, as one small quadratic form)
        h0 = torch.zeros_like(states[:, :1]) if h0 is None else h0[:, None]
        states = torch.cat([h0, states], dim=1)  # (B, K+1, H, P, N)
        decay_chunk = decay_matrix(F.pad(a_cum[..., -1], (1, 0)))  # (B, H, K+1, K+1)
        states = torch.einsum("bhzk,bkhpn->bzhpn", decay_chunk, states)
        states, h_last = states[:, :-1], states[:, -1]
        # 4. read each chunk's incoming state out at every position
        y = y + torch.einsum("bkhqn,bkhpn,bhkq->bkqhp", ch, states, torch.exp(a_cum))
    y = rearrange(y, "b k q h p -> b (k q) h p")[:, :T]
    return y, (h_last if final_state else None)


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
        """(..., E + 2GN), (..., H) -> x (..., H, P), a (..., H), B and C per group (..., G, N), Δ (..., H)."""
        E, GN, G = self.cfg.d_inner, self.cfg.n_groups * self.cfg.d_state, self.cfg.n_groups
        x, B, C = xbc.split([E, GN, GN], dim=-1)
        x = rearrange(x, "... (h p) -> ... h p", p=self.cfg.d_head)
        B, C = (rearrange(t, "... (g n) -> ... g n", g=G) for t in (B, C))
        delta = F.softplus(dt + self.dt_bias)
        return x, delta * -torch.exp(self.A_log), B, C, delta

    def _per_head(self, t: torch.Tensor) -> torch.Tensor:
        """(..., G, N) -> (..., H, N): each group's B or C repeated for its H/G heads."""
        return repeat(t, "... g n -> ... (g r) n", r=self.cfg.n_heads // self.cfg.n_groups)

    def _out(self, y: torch.Tensor, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        y = rearrange(y + self.D[:, None] * x, "... h p -> ... (h p)")
        return self.out_proj(self.norm(y * F.silu(z)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        z, xbc, dt = self._split(self.in_proj(u))
        x, a, B, C, delta = self._heads(F.silu(self.conv1d(xbc)), dt)  # x (B, T, H, P)
        xd = x * delta[..., None]
        if self.cfg.mode == "chunked":
            y, _ = ssd_chunked(xd, a, B, C, self.cfg.chunk, final_state=False)
        elif self.cfg.mode == "sequential":
            y, _ = ssd_ref(xd, a, self._per_head(B), self._per_head(C))
        else:
            y = ssd_quadratic(xd, a, self._per_head(B), self._per_head(C))
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
        B, C = self._per_head(B), self._per_head(C)
        h = torch.exp(a)[..., None, None] * h + torch.einsum("bhp,bhn->bhpn", x * delta[..., None], B)
        y = torch.einsum("bhpn,bhn->bhp", h, C)
        return self._out(y, x, z), (h, buf)


class SSDBackbone(SSMBackbone):
    def __init__(self, cfg: SSDConfig):
        super().__init__(cfg, SSDMixer)
