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


# Log-decays are clamped here: exp(-60) is 1e-26 of the diagonal's 1, far below float32 rounding. exp of the
# large negative sums long chunks reach (and of -inf) takes a many times slower path on CPUs and gives
# subnormal floats, which slow every product they touch.
LOG_FLOOR = -60.0


def _decays(log_decay: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """exp of log-decays (<= 0), clamped at LOG_FLOOR, in dtype."""
    return log_decay.clamp(min=LOG_FLOOR).exp().to(dtype)


class ChunkedSSD(torch.autograd.Function):
    """The chunked algorithm with the mixer's input scaling and skip, y = SSD(Δ x) + D x, in one function
    with its backward written out. x (B, K, Q, H, P) (any strides), Δ (B, K, Q, H) or None (1),
    cs = cumsum(a) within each chunk (B, K, H, Q) in float64 (or x's dtype), b c (B, K, Q, G, N) with G
    dividing H, D (H,) or None (0), h0 (B, H, P, N) or None (0) -> y (B, K, Q, H, P), contiguous ((B, T, H, P)
    in memory, as the mixer reads it on), and the state after the last chunk (B, H, P, N) if final_state.
    With X = Δ x:

    1. Inside each chunk, the quadratic form Y = (L ∘ C B^T) X, L_ts = exp(cs_t - cs_s) (s <= t). cs is
       split into x's dtype as hi + lo (hi the rounded sum, lo what rounding dropped): L = diag(e^lo) E
       diag(e^-lo) with E_ts = exp(hi_t - hi_s), so only E is (Q, Q) per head and the lo factors scale X
       before the product and Y after it: the differences of large sums lose nothing, and no (Q, Q) pass is
       spent on lo. The causal mask is applied to C B^T (once per group, not per head); above the diagonal E
       is exp(0) = 1, times 0. E's exponent is clamped to [LOG_FLOOR, 0].
    2. The state each chunk leaves (from zero): S_k = sum_q exp(cs_end - cs_q) X_q B_q^T, per group one
       (R P, Q) @ (Q, N) product (R = H / G heads).
    3. The state entering chunk k: h_k = exp(cs_end of chunk k-1) h_{k-1} + S_{k-1}, a scan over chunks.
    4. Y_q += exp(cs_q) h_k C_q, per group one (Q, N) @ (N, R P) product.

    Backward: with M = L ∘ C B^T and G = dL ∘ L = dM ∘ M, dLoss/dcs_t from step 1 is G's row sum minus its
    column sum, which are row-wise dot products of (Q, P) tensors, no (Q, Q) pass: sum_s G_ts =
    sum_p dY_tp (M X)_tp and sum_t G_ts = sum_p X_sp (M^T dY)_sp. dC B^T = sum over a group's heads of
    dM ∘ L (in which the lo factors cancel), masked. Steps 2-4 are products and a scan, run backwards."""

    @staticmethod
    def forward(ctx, x, dt, cs, b, c, D, h0, final_state: bool):
        Bsz, K, Q, H, P = x.shape
        G, N = b.shape[3], b.shape[4]
        R = H // G
        hi = cs.to(x.dtype)
        lo = (cs - hi.to(cs.dtype)).to(x.dtype)  # (B, K, H, Q)
        up, down = lo.exp()[..., None], lo.neg().exp()
        dtT = None if dt is None else dt.transpose(2, 3)  # (B, K, H, Q)
        scale = (down if dtT is None else dtT * down)[..., None]  # (B, K, H, Q, 1)
        bg, cg = b.transpose(2, 3), c.transpose(2, 3)  # (B, K, G, Q, N)
        # 1. the diagonal blocks
        E = (hi[..., :, None] - hi[..., None, :]).clamp_(LOG_FLOOR, 0.0).exp_()  # (B, K, H, Q, S)
        CB = torch.matmul(cg, bg.transpose(-1, -2)).tril_()  # (B, K, G, Q, S), 0 above the diagonal
        M = (E.view(Bsz, K, G, R, Q, Q) * CB[:, :, :, None]).view(Bsz, K, H, Q, Q)
        xs = torch.mul(x.transpose(2, 3), scale, out=x.new_empty(Bsz, K, H, Q, P))  # e^-lo X
        z = torch.matmul(M, xs)  # (B, K, H, Q, P)
        y = x.new_empty(Bsz, K, Q, H, P)
        if D is None:
            torch.mul(z, up, out=y.transpose(2, 3))
        else:
            torch.mul(x, D[:, None], out=y).transpose(2, 3).addcmul_(z, up)
        ctx.save_for_backward(E, M, bg, cg, xs, z, up, down, scale, x, dt, D)
        ctx.cs_dtype, ctx.has_h0, ctx.steps = cs.dtype, h0 is not None, False
        k_in = 0 if h0 is not None else 1  # the first chunk with an incoming state
        k_out = K if final_state else K - 1  # the chunks whose states are passed on
        if k_in >= K and k_out <= 0:
            return y, None
        ctx.steps = True
        # 2. the states the chunks leave: xv = exp(cs_end - cs) X, natural layout, (R P, Q) @ (Q, N) per group
        vv = _decays(cs[..., -1:] - cs, x.dtype)  # (B, K, H, Q)
        wgt = (vv if dtT is None else vv * dtT).transpose(2, 3)  # (B, K, Q, H)
        xv = torch.mul(x[:, :k_out], wgt[:, :k_out, ..., None], out=x.new_empty(Bsz, k_out, Q, H, P))
        xvg = xv.view(Bsz, k_out, Q, G, R * P).permute(0, 1, 3, 2, 4)  # (B, k_out, G, Q, R P)
        S = torch.matmul(xvg.transpose(-1, -2), bg[:, :k_out])  # (B, k_out, G, R P, N)
        # 3. the states entering the chunks
        ec = _decays(cs[..., -1], x.dtype).view(Bsz, K, G, R, 1, 1)
        h = x.new_zeros(Bsz, G, R * P, N) if h0 is None else h0.reshape(Bsz, G, R * P, N)
        h_in = x.new_empty(Bsz, K, G, R * P, N)
        for k in range(K):
            h_in[:, k] = h
            if k < k_out:
                h = torch.addcmul(S[:, k].view(Bsz, G, R, P, N), ec[:, k], h.view(Bsz, G, R, P, N)).view(Bsz, G, R * P, N)
        # 4. read them out: (Q, N) @ (N, R P) per group, times exp(cs_q), added to y
        ecs = _decays(cs[:, k_in:], x.dtype).transpose(2, 3)  # (B, K - k_in, Q, H)
        read = torch.matmul(cg[:, k_in:], h_in[:, k_in:].transpose(-1, -2))  # (B, K - k_in, G, Q, R P)
        read = read.view(Bsz, K - k_in, G, Q, R, P).permute(0, 1, 3, 2, 4, 5)  # (B, K - k_in, Q, G, R, P)
        y[:, k_in:].view(Bsz, K - k_in, Q, G, R, P).addcmul_(read, ecs.reshape(Bsz, K - k_in, Q, G, R, 1))
        ctx.step_tensors = (vv, wgt, xv, S, ec, h_in, ecs, read)
        return y, (h.view(Bsz, H, P, N) if final_state else None)

    @staticmethod
    def backward(ctx, gy, g_last):
        if torch.is_grad_enabled():
            raise RuntimeError("the chunked SSD has no second derivative (its backward is written out); "
                               "for double backward (Hessians) use SSDConfig(mode='quadratic') or mode='sequential'")
        E, M, bg, cg, xs, z, up, down, scale, x, dt, D = ctx.saved_tensors
        Bsz, K, H, Q, P = xs.shape
        G, N = bg.shape[2], bg.shape[4]
        R = H // G
        gys = torch.mul(gy.transpose(2, 3), up, out=xs.new_empty(xs.shape))  # e^lo dY
        # 1. the diagonal blocks
        gxs = torch.matmul(M.transpose(-1, -2), gys)  # (B, K, H, S, P)
        gM = torch.matmul(gys, xs.transpose(-1, -2)).mul_(E)  # dM ∘ L without the lo factors, which cancel
        gCB = gM.view(Bsz, K, G, R, Q, Q).sum(3).tril_()  # (B, K, G, Q, S)
        gc = torch.matmul(gCB, bg)  # (B, K, G, Q, N)
        gb = torch.matmul(gCB.transpose(-1, -2), cg)
        g_cs = (gys * z).addcmul_(xs, gxs, value=-1.0).sum(-1)  # (B, K, H, Q): G's row sums minus column sums
        gX = xs.new_empty(Bsz, K, Q, H, P)  # dLoss/dX, X = Δ x
        torch.mul(gxs, down[..., None], out=gX.transpose(2, 3))
        g_h0 = None
        if ctx.steps:
            vv, wgt, xv, S, ec, h_in, ecs, read = ctx.step_tensors
            k_in, k_out = K - ecs.shape[1], xv.shape[1]
            # 4. the read-out
            g_ecs = (gy[:, k_in:] * read.reshape(Bsz, K - k_in, Q, H, P)).sum(-1)  # (B, K - k_in, Q, H)
            g_cs[:, k_in:] += (g_ecs * ecs).transpose(2, 3)
            g_read = (gy[:, k_in:] * ecs[..., None]).view(Bsz, K - k_in, Q, G, R * P).permute(0, 1, 3, 2, 4)  # (B, ., G, Q, R P)
            gc[:, k_in:] += torch.matmul(g_read, h_in[:, k_in:])
            g_h_in = torch.matmul(cg[:, k_in:].transpose(-1, -2), g_read)  # (B, K - k_in, G, N, R P)
            # 3. the scan, backwards: h_{k+1} = ec_k h_k + S_k
            acc = xs.new_zeros(Bsz, G, R * P, N) if g_last is None else g_last.reshape(Bsz, G, R * P, N).clone()
            gS = xs.new_empty(S.shape)
            g_ec = xs.new_zeros(Bsz, K, G, R)
            for k in reversed(range(K)):
                if k < k_out:
                    gS[:, k] = acc
                    g_ec[:, k] = (acc * h_in[:, k]).view(Bsz, G, R, P * N).sum(-1)
                    acc = (acc.view(Bsz, G, R, P, N) * ec[:, k]).view(Bsz, G, R * P, N)
                if k >= k_in:
                    acc = acc + g_h_in[:, k - k_in].transpose(-1, -2)
            if ctx.has_h0:
                g_h0 = acc.view(Bsz, H, P, N)
            g_cs[..., -1] += (g_ec * ec.view(Bsz, K, G, R)).view(Bsz, K, H)
            # 2. the chunks' states
            gxv = torch.matmul(bg[:, :k_out], gS.transpose(-1, -2))  # (B, k_out, G, Q, R P)
            gxv = gxv.view(Bsz, k_out, G, Q, R, P).permute(0, 1, 3, 2, 4, 5).reshape(Bsz, k_out, Q, H, P)
            gb[:, :k_out] += torch.matmul(xv.view(Bsz, k_out, Q, G, R * P).permute(0, 1, 3, 2, 4), gS)
            g_wgt = (gxv * x[:, :k_out]).sum(-1)  # (B, k_out, Q, H)
            gX[:, :k_out].addcmul_(gxv, vv[:, :k_out].transpose(2, 3)[..., None])
            g_vv = (g_wgt if dt is None else g_wgt * dt[:, :k_out]).transpose(2, 3) * vv[:, :k_out]  # (B, k_out, H, Q)
            g_cs[:, :k_out] -= g_vv
            g_cs[:, :k_out, :, -1] += g_vv.sum(-1)
        g_dt = None if dt is None else (gX * x).sum(-1)
        gx = gX if dt is None else gX.mul_(dt[..., None])
        g_D = None
        if D is not None:
            gx.addcmul_(gy, D[:, None])
            g_D = (gy * x).sum((0, 1, 2, 4))
        return gx, g_dt, g_cs.to(ctx.cs_dtype), gb.transpose(2, 3), gc.transpose(2, 3), g_D, g_h0, None


def gated_rms_norm_ref(y: torch.Tensor, z: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm(y * SiLU(z)) * w over the last dim (Mamba-2's gated norm), by autograd's own ops."""
    g = y * F.silu(z)
    return g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + eps) * w


class GatedRMSNorm(torch.autograd.Function):
    """gated_rms_norm_ref with the backward written out: with g = y * SiLU(z), r = 1 / rms(g) and
    P = dout * g, dw = sum over rows of r P and dg = r (dout w - r^2 g mean(P w)): the row sums are
    matrix-vector products, no broadcast sums. A double backward goes through gated_rms_norm_ref."""

    @staticmethod
    def forward(ctx, y, z, w, eps: float):
        s = F.silu(z)
        g = y * s
        r = torch.linalg.vector_norm(g, dim=-1, keepdim=True).square_().div_(g.shape[-1]).add_(eps).rsqrt_()  # (..., 1)
        ctx.save_for_backward(y, z, s, g, r, w)
        ctx.eps = eps
        return (g * r).mul_(w)

    @staticmethod
    def backward(ctx, dout):
        y, z, s, g, r, w = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: differentiate the reference, recomputed on the saved inputs
            return (*torch.autograd.grad(gated_rms_norm_ref(y, z, w, ctx.eps), (y, z, w), dout, create_graph=True), None)
        E = g.shape[-1]
        P = (dout * g).view(-1, E)
        dw = P.t() @ r.view(-1)
        coef = (P @ w).view_as(r).mul_(r.pow(3)).div_(E)
        dg = (dout * w).mul_(r).addcmul_(g, coef, value=-1.0)
        dy = dg * s
        dz = torch.ops.aten.silu_backward(dg.mul_(y), z)
        return dy, dz, dw, None


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


def ssd_chunked(x, a, b, c, chunk: int, h0=None, final_state: bool = True, dt=None, D=None):
    """Listing 1 of the paper, with padding for lengths that chunk does not divide. Same shapes as ssd_ref,
    except that b and c may also come per group, (B, T, G, N) with G dividing H (heads h*G/H.. share
    group h // (H/G)), as the mixer makes them: then C_t . B_s is computed once per group.
    `final_state=False` returns (y, None) and, for one chunk without h0, skips the state passing.
    The mixer's scaling and skip come fused when given: dt (B, T, H) makes the inputs x * dt, and D (H,)
    adds D x to y."""
    Bsz, T, H, P = x.shape
    chunk = min(chunk, T)  # a sequence shorter than a chunk is one chunk (no padding work)
    pad = (-T) % chunk
    if pad:  # zero inputs and zero log-decay (exp = 1) change nothing
        x, a, b, c = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, a, b, c))
        dt = None if dt is None else F.pad(dt, (0, 0, 0, pad))
    xk = rearrange(x, "b (k q) h p -> b k q h p", q=chunk)  # views: no copies
    bk, ck = (rearrange(t, "b (k q) g n -> b k q g n", q=chunk) for t in (b, c))
    dtk = None if dt is None else rearrange(dt, "b (k q) h -> b k q h", q=chunk)
    # cumulative log-decays within each chunk, in float64 where the device has it: their differences
    # (decays between positions) stay exact however large the sums grow
    wide = torch.float64 if a.device.type in ("cpu", "cuda") else a.dtype
    cs = torch.cumsum(rearrange(a, "b (k q) h -> b k h q", q=chunk).to(wide), dim=-1)  # (B, K, H, Q)
    y, h_last = ChunkedSSD.apply(xk, dtk, cs, bk, ck, D, h0, final_state)  # (B, K, Q, H, P)
    return rearrange(y, "b k q h p -> b (k q) h p")[:, :T], h_last


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

    def _out(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """y (..., H, P) (with its D x skip) gated by SiLU(z), RMSNorm (self.norm's weight and eps), out_proj."""
        y = GatedRMSNorm.apply(rearrange(y, "... h p -> ... (h p)"), z, self.norm.weight, self.norm.eps)
        return self.out_proj(y)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        z, xbc, dt = self._split(self.in_proj(u))
        x, a, B, C, delta = self._heads(F.silu(self.conv1d(xbc)), dt)  # x (B, T, H, P)
        if self.cfg.mode == "chunked":  # x * delta and the skip D x inside
            y, _ = ssd_chunked(x, a, B, C, self.cfg.chunk, final_state=False, dt=delta, D=self.D)
        else:
            xd = x * delta[..., None]
            if self.cfg.mode == "sequential":
                y, _ = ssd_ref(xd, a, self._per_head(B), self._per_head(C))
            else:
                y = ssd_quadratic(xd, a, self._per_head(B), self._per_head(C))
            y = y + self.D[:, None] * x
        return self._out(y, z)

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
        y = torch.einsum("bhpn,bhn->bhp", h, C) + self.D[:, None] * x
        return self._out(y, z), (h, buf)


class SSDBackbone(SSMBackbone):
    def __init__(self, cfg: SSDConfig):
        super().__init__(cfg, SSDMixer)
