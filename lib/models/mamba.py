"""Mamba-1: the selective state-space block in plain PyTorch, with a chunked parallel scan.

Ref: Gu & Dao 2023, "Mamba" (arXiv 2312.00752), section 3 and Algorithm 2; the module layout
and parameter names follow johnma2006/mamba-minimal and alxndrTL/mamba.py (`mambapy`), whose
block is our test oracle. Facts: references/ssd_language_model.md.

Glossary: B batch, L length, D d_model, E d_inner = expand * D, N d_state, R dt_rank.

    x, z  = in_proj(u)                                   (B, L, E) each
    x     = SiLU(causal depthwise conv_k(x))             k = d_conv
    Δ     = softplus(dt_proj(x_proj_R(x)))               (B, L, E), input-dependent step
    B, C  = x_proj_N(x), x_proj_N'(x)                    (B, L, N)
    A     = -exp(A_log)                                  (E, N), diagonal
    h_t   = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t             (B, E, N)      <- the selective scan
    y_t   = C_t h_t + D x_t
    out   = out_proj(y * SiLU(z))

The scan h_t = a_t h_{t-1} + b_t is linear in h, so it is associative. `scan_ref` is the
sequential recurrence (the readable reference); `scan` is a two-level chunked scan: a
sequential pass inside all chunks at once (Q steps), one across chunk boundaries (L/Q steps),
then a correction; about 2 sqrt(L) small steps instead of L.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from lib.config import Config
from lib.models.ssm import CausalConv, SSMBackbone


def scan_ref(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t with h_{-1} = 0, one step at a time. a, b: (B, L, ...) -> h (B, L, ...)."""
    h = torch.zeros_like(b[:, 0])
    hs = []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        hs.append(h)
    return torch.stack(hs, dim=1)


def scan(a: torch.Tensor, b: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """The same recurrence as scan_ref, by a two-level chunked scan. chunk = 0: about sqrt(L)."""
    L = b.shape[1]
    Q = chunk or max(1, round(math.sqrt(L)))
    pad = (-L) % Q
    if pad:  # identity steps (a = 1, b = 0) at the end
        a = torch.cat([a, a.new_ones((a.shape[0], pad, *a.shape[2:]))], dim=1)
        b = torch.cat([b, b.new_zeros((b.shape[0], pad, *b.shape[2:]))], dim=1)
    a, b = (rearrange(t, "b (k q) ... -> q b k ...", q=Q) for t in (a, b))  # (Q, B, K, ...)
    # 1. inside every chunk at once: local state h (from 0) and cumulative decay p
    h, p = torch.zeros_like(b[0]), torch.ones_like(a[0])
    hs, ps = [], []
    for a_q, b_q in zip(a.unbind(0), b.unbind(0)):
        h, p = a_q * h + b_q, p * a_q
        hs.append(h)
        ps.append(p)
    hs, ps = torch.stack(hs), torch.stack(ps)  # (Q, B, K, ...)
    # 2. across chunks: the state entering chunk k
    carry, carries = torch.zeros_like(hs[0][:, 0]), []
    for p_end, h_end in zip(ps[-1].unbind(1), hs[-1].unbind(1)):
        carries.append(carry)
        carry = p_end * carry + h_end
    # 3. every position adds the carried-in state, decayed by the chunk's cumulative product
    h = hs + ps * torch.stack(carries, dim=1)
    return rearrange(h, "q b k ... -> b (k q) ...")[:, :L]


LOG2E = 1 / math.log(2)


def _scan_forward(x, delta, A, B, C, D):
    """The fused scan, time-major: x, Δ (L, B, E); A (E, N); B, C (L, B, N); D (E,) ->
    y (L, B, E), and the states h_t and decays exp(Δ_t A) (t >= 1), each (B, N, E), kept for backward.

    The state is held as (B, N, E), E innermost: the read-out C_t . h_t is then a (1, N) @ (N, E)
    product per batch row, added in place to the skip D x_t (one baddbmm); the update is one multiply
    plus one fused multiply-add. exp(Δ A) is computed as 2^(Δ A log2 e), one rounding apart and about
    twice as fast as exp on a CPU. Each step's tensors are new small blocks (no (B, L, E, N) tensor):
    blocks of 32 MiB and more would be fresh memory from the OS on every call."""
    L, Bsz, E = x.shape
    A2 = (A * LOG2E).t().contiguous()  # (N, E)
    u = delta * x
    y = x * D  # (L, B, E); every step adds C_t . h_t to its row
    # per-step views, cut once: Δ_t, u_t, y_t (B, 1, E); B_t (B, N, 1); C_t (B, 1, N)
    dts, us, Bs, Cs, ys = (t.unbind(0) for t in (delta[:, :, None], u[:, :, None], B[..., None], C[:, :, None],
                                                 y.view(L, Bsz, 1, E)))
    h = torch.mul(Bs[0], us[0])  # h_{-1} = 0: no decay at t = 0
    ys[0].baddbmm_(Cs[0], h)
    hs, dAs = [h], []
    for t in range(1, L):
        dA = torch.mul(dts[t], A2).exp2_()  # (B, N, E)
        h = torch.mul(dA, h).addcmul_(Bs[t], us[t])  # + B_t (Δ_t x_t)^T
        ys[t].baddbmm_(Cs[t], h)
        hs.append(h)
        dAs.append(dA)
    return y, hs, dAs


def _scan_backward(gy, x, delta, A, B, C, D, hs, dAs):
    """Gradients of (x, Δ, A, B, C, D) from dLoss/dy, time-major, by the reverse recurrence
    g_t = C_t gy_t^T + exp(Δ_{t+1} A) g_{t+1} (dLoss/dh_t), one step at a time. Each (1, K) @ (K, M)
    product keeps MKL's fast layout (a row vector on the left; (B, N, E) @ (B, E, 1) is several times slower)."""
    L, Bsz, E = x.shape
    N = A.shape[1]
    At = A.t().contiguous()  # (N, E)
    u = delta * x
    g_u, g_delta = x.new_empty(L, Bsz, E), x.new_empty(L, Bsz, E)
    g_B, g_C = B.new_empty(L, Bsz, N), C.new_empty(L, Bsz, N)
    g_us, g_Bs, g_Cs = (g.view(L, Bsz, 1, -1).unbind(0) for g in (g_u, g_B, g_C))  # (B, 1, E or N)
    g_deltas = g_delta.unbind(0)
    dts, us, gys, Bs, Cs, Ccols = (t.unbind(0) for t in (delta[:, :, None], u[:, :, None], gy[:, :, None], B[:, :, None],
                                                         C[:, :, None], C[..., None]))
    g_AD = x.new_zeros(Bsz, N, E)  # sum over t of g_a * Δ_t; summed over the batch at the end
    g_a = x.new_empty(Bsz, N, E)
    g_h = x.new_zeros(Bsz, N, E)
    for t in reversed(range(L)):
        g_h.addcmul_(Ccols[t], gys[t])  # dLoss/dh_t
        torch.bmm(gys[t], hs[t].transpose(1, 2), out=g_Cs[t])
        torch.bmm(Bs[t], g_h, out=g_us[t])
        torch.bmm(us[t], g_h.transpose(1, 2), out=g_Bs[t])
        if t == 0:
            break
        g_h.mul_(dAs[t - 1])  # dLoss/dh_{t-1}, without step t-1's own read-out
        torch.mul(g_h, hs[t - 1], out=g_a)  # dLoss/d(Δ_t A), as d exp(a)/da = exp(a)
        g_AD.addcmul_(g_a, dts[t])
        torch.sum(g_a.mul_(At), dim=1, out=g_deltas[t])  # sum over n of g_a A
    g_delta[0] = 0
    g_x = torch.addcmul(gy * D, g_u, delta)
    return g_x, g_delta.addcmul_(g_u, x), g_AD.sum(0).t(), g_B, g_C, (gy * x).sum((0, 1))


class SelectiveScan(torch.autograd.Function):
    """y_t = C_t . h_t + D x_t with h_t = exp(Δ_t A) * h_{t-1} + (Δ_t x_t) B_t, h_{-1} = 0, stepped in time.

    Time-major: x, Δ (L, B, E); A (E, N); B, C (L, B, N); D (E,) -> y (L, B, E). The same numbers as
    selective_scan_ref (up to float rounding), which builds dBx = Δ x B as a (B, L, E, N) tensor and
    scans it with autograd recording every op; here each step touches only (B, N, E) tensors, and the
    backward pass is written out (saving h_t and exp(Δ_t A) only). `compiled=True` runs both passes
    through torch.compile (one fused loop each). Speed: benchmarks/looped_training.py.
    """

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, compiled=False):
        fwd = _compiled("forward") if compiled else _scan_forward
        y, hs, dAs = fwd(x, delta, A, B, C, D)
        ctx.save_for_backward(x, delta, A, B, C, D)
        ctx.hs, ctx.dAs, ctx.compiled = hs, dAs, compiled  # intermediates, not inputs or outputs: kept on ctx
        return y

    @staticmethod
    def backward(ctx, gy):
        bwd = _compiled("backward") if ctx.compiled else _scan_backward
        return (*bwd(gy.contiguous(), *ctx.saved_tensors, ctx.hs, ctx.dAs), None)


_COMPILED: dict = {}


def _compiled(which: str):
    if which not in _COMPILED:
        _COMPILED[which] = torch.compile(_scan_forward if which == "forward" else _scan_backward, dynamic=False)
    return _COMPILED[which]


def selective_scan(x, delta, A, B, C, D=None, compiled: bool = False, time_major: bool = False):
    """The stepped form (SelectiveScan) of y = scan + D x (D = 0 when None); see selective_scan_ref for the
    reading of the maths. Batch-major (B, L, ...) tensors, or time-major (L, B, ...) with time_major=True."""
    D = x.new_zeros(x.shape[-1]) if D is None else D
    if time_major:
        return SelectiveScan.apply(x, delta, A, B, C, D, compiled)
    x, delta, B, C = (t.transpose(0, 1).contiguous() for t in (x, delta, B, C))
    return SelectiveScan.apply(x, delta, A, B, C, D, compiled).transpose(0, 1)


def selective_scan_ref(x, delta, A, B, C, chunk: int | None = None):
    """The paper's discretisation written out: dA = exp(Δ A), dBx = Δ x B as (B, L, E, N) tensors,
    then the recurrence (sequential scan_ref, or the chunked `scan` when `chunk` is given)."""
    dA = torch.exp(delta[..., None] * A)  # (B, L, E, N)
    dBx = (delta * x)[..., None] * B[:, :, None, :]  # (B, L, E, N)
    h = scan_ref(dA, dBx) if chunk is None else scan(dA, dBx, chunk)
    return (h @ C[..., None]).squeeze(-1)  # (B, L, E)


def _ref_time_major(x, delta, A, B, C, D, chunk=None):
    """selective_scan_ref + D x on time-major tensors (L, B, ...)."""
    x, delta, B, C = (t.transpose(0, 1) for t in (x, delta, B, C))
    return (selective_scan_ref(x, delta, A, B, C, chunk) + D * x).transpose(0, 1)


# The forms of the selective scan, equal up to float rounding (tested against each other), on time-major tensors:
# (x, Δ, A, B, C, D, chunk) -> y + D x, each (L, B, ...).
SCANS = {
    "fused": lambda x, delta, A, B, C, D, chunk: selective_scan(x, delta, A, B, C, D, time_major=True),
    "compiled": lambda x, delta, A, B, C, D, chunk: selective_scan(x, delta, A, B, C, D, compiled=True, time_major=True),
    "chunked": lambda x, delta, A, B, C, D, chunk: _ref_time_major(x, delta, A, B, C, D, chunk),
    "sequential": lambda x, delta, A, B, C, D, chunk: _ref_time_major(x, delta, A, B, C, D),
}


@dataclass(frozen=True)
class MambaConfig(Config):
    d_model: int = 64
    n_layer: int = 1
    d_state: int = 16  # N
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 0  # 0: ceil(d_model / 16)
    scan: str = "fused"  # 'fused' (SelectiveScan, per-step), 'chunked' (parallel) or 'sequential' (the reference)
    chunk: int = 0  # 0: about sqrt(L)

    def __post_init__(self):
        if min(self.d_model, self.n_layer, self.d_state, self.d_conv, self.expand) < 1 or self.dt_rank < 0 or self.chunk < 0:
            raise ValueError("d_model, n_layer, d_state, d_conv, expand must be >= 1; dt_rank, chunk >= 0")
        if self.scan not in SCANS:
            raise ValueError(f"scan must be one of {sorted(SCANS)}, got {self.scan!r}")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def rank(self) -> int:
        return self.dt_rank or math.ceil(self.d_model / 16)


class MambaMixer(nn.Module):
    """The selective SSM mixer; parameter names match mambapy's MambaBlock."""

    def __init__(self, cfg: MambaConfig, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4):
        super().__init__()
        self.cfg = cfg
        E, N, R = cfg.d_inner, cfg.d_state, cfg.rank
        self.in_proj = nn.Linear(cfg.d_model, 2 * E, bias=False)
        self.conv1d = CausalConv(E, cfg.d_conv)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=True)
        nn.init.uniform_(self.dt_proj.weight, -(R**-0.5), R**-0.5)
        dt = torch.exp(torch.rand(E) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_floor)
        with torch.no_grad():  # bias = softplus^-1(dt): initial steps in [dt_min, dt_max]
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32).repeat(E, 1)))  # S4D-real: A = -(1..N)
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, cfg.d_model, bias=False)

    def _ssm_inputs(self, x: torch.Tensor):
        """x (..., E) -> Δ (..., E), B (..., N), C (..., N)."""
        delta, B, C = self.x_proj(x).split([self.cfg.rank, self.cfg.d_state, self.cfg.d_state], dim=-1)
        return F.softplus(self.dt_proj(delta)), B, C

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (B, L, D) -> (B, L, D). Inside, tensors are time-major (L, B, ...): the scan steps
        through time, so each step's slice is then one contiguous block."""
        u, E = u.transpose(0, 1).contiguous(), self.cfg.d_inner
        x = F.linear(u, self.in_proj.weight[:E])  # (L, B, E): x and z as two products, each contiguous
        z = F.linear(u, self.in_proj.weight[E:])
        x = F.silu(self.conv1d(x, time_dim=0))
        delta, B, C = self._ssm_inputs(x)
        A = -torch.exp(self.A_log.float())  # (E, N)
        y = SCANS[self.cfg.scan](x, delta, A, B, C, self.D, self.cfg.chunk)  # (L, B, E), with the skip D x
        return self.out_proj(y * F.silu(z)).transpose(0, 1)

    def step(self, u: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        """One token: u (B, D), state (h (B, E, N), conv buffer (B, E, k-1)) -> (out (B, D), new state)."""
        E, N = self.cfg.d_inner, self.cfg.d_state
        if state is None:
            state = (u.new_zeros(u.shape[0], E, N), u.new_zeros(u.shape[0], E, self.cfg.d_conv - 1))
        h, buf = state
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x, buf = self.conv1d.step(x, buf)
        x = F.silu(x)
        delta, B, C = self._ssm_inputs(x)
        A = -torch.exp(self.A_log.float())
        h = torch.exp(delta[..., None] * A) * h + (delta * x)[..., None] * B[:, None, :]
        y = (h @ C[..., None]).squeeze(-1) + self.D * x
        return self.out_proj(y * F.silu(z)), (h, buf)


class MambaBackbone(SSMBackbone):
    def __init__(self, cfg: MambaConfig):
        super().__init__(cfg, MambaMixer)
