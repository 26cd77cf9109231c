"""The pieces Mamba-1 (mamba.py) and Mamba-2 SSD (ssd.py) share: RMSNorm, the depthwise causal
convolution with its one-token step, and the residual backbone that stacks a mixer.

    x_{l+1} = x_l + mixer_l(RMSNorm(x_l)),   y = RMSNorm(x_L)

No position embeddings: the scan is ordered.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(F, "rms_norm"):  # torch >= 2.4: the same formula, fewer kernels
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ShiftedSum(torch.autograd.Function):
    """y_t = bias + sum_j w_j * x_{t-k+1+j} on (..., C) with time along `dim`, x_{<0} = 0: tap j is one
    fused multiply-add in place on the outputs it reaches (t >= k-1-j), so nothing is padded or copied;
    the backward is written out the same way (k multiply-adds for dx, one product per tap for dw)
    instead of autograd's two products, a sum and an add per tap."""

    @staticmethod
    def forward(ctx, x, w, bias, dim=1):  # x (B, L, C) (dim 1) or (L, B, C) (dim 0), w (C, k), bias (C,)
        k, L = w.shape[1], x.shape[dim]
        y = torch.addcmul(bias, x, w[:, k - 1])
        for j in range(k - 1):
            s = k - 1 - j  # tap j reads x_{t-s}
            if s < L:
                y.narrow(dim, s, L - s).addcmul_(x.narrow(dim, 0, L - s), w[:, j])
        ctx.save_for_backward(x, w)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dim, k = ctx.dim, w.shape[1]
        L = g.shape[dim]
        rows = tuple(range(g.dim() - 1))
        g_x = g * w[:, k - 1]
        g_w = torch.zeros_like(w)
        g_w[:, k - 1] = (g * x).sum(rows)
        for j in range(k - 1):
            s = k - 1 - j
            if s < L:
                g_late, x_early = g.narrow(dim, s, L - s), x.narrow(dim, 0, L - s)
                g_x.narrow(dim, 0, L - s).addcmul_(g_late, w[:, j])
                g_w[:, j] = (g_late * x_early).sum(rows)
        return g_x, g_w, g.sum(rows), None


class CausalConv(nn.Conv1d):
    """Depthwise causal conv over time on (B, L, C), with a step() over a buffer of the last k-1 inputs."""

    def __init__(self, channels: int, k: int):
        super().__init__(channels, channels, k, groups=channels, padding=k - 1)

    def forward(self, x: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
        """y_t = bias + sum_j w_j * x_{t-k+1+j}: k shifted multiply-adds (ShiftedSum; on a CPU far faster
        than the depthwise conv's backward for short sequences); shifted_ref is the same with autograd,
        conv_ref nn.Conv1d's own form. time_dim = 0 takes time-major (L, B, C) input."""
        return ShiftedSum.apply(x, self.weight[:, 0, :], self.bias, time_dim)

    def shifted_ref(self, x: torch.Tensor) -> torch.Tensor:
        k, L = self.kernel_size[0], x.shape[1]
        xp = F.pad(x, (0, 0, k - 1, 0))
        w = self.weight[:, 0, :]  # (C, k)
        y = self.bias + xp[:, :L] * w[:, 0]
        for j in range(1, k):
            y = y + xp[:, j : j + L] * w[:, j]
        return y

    def conv_ref(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(super().forward(rearrange(x, "b l c -> b c l"))[..., : x.shape[1]], "b c l -> b l c")

    def step(self, x: torch.Tensor, buf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C), buf (B, C, k-1) -> output (B, C), new buffer."""
        window = torch.cat([buf, x[..., None]], dim=-1)  # (B, C, k)
        y = (window * rearrange(self.weight, "c 1 k -> c k")).sum(-1) + self.bias
        return y, window[..., 1:]


class SSMBackbone(nn.Module):
    """(B, L, D) -> (B, L, D): n_layer residual blocks x + mixer(RMSNorm(x)), then RMSNorm.

    No position embeddings: the scan is ordered. `mixer` builds one mixer from the config.
    """

    def __init__(self, cfg, mixer: type[nn.Module]):
        super().__init__()
        self.cfg = cfg
        self.norms = nn.ModuleList(RMSNorm(cfg.d_model) for _ in range(cfg.n_layer))
        self.mixers = nn.ModuleList(mixer(cfg) for _ in range(cfg.n_layer))
        self.norm_f = RMSNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, mixer in zip(self.norms, self.mixers):
            x = x + mixer(norm(x))
        return self.norm_f(x)

    def step_token(self, x: torch.Tensor, states: list | None = None) -> tuple[torch.Tensor, list]:
        """One token x (B, D) through every layer, carrying each layer's state: O(1) per token."""
        states = states or [None] * len(self.mixers)
        new = []
        for norm, mixer, state in zip(self.norms, self.mixers, states):
            y, state = mixer.step(norm(x), state)
            x = x + y
            new.append(state)
        return self.norm_f(x), new

    def step(self, h: torch.Tensor, states: list | None = None) -> tuple[torch.Tensor, list]:
        """New positions h (B, n, D) after `states` (None at the start), one token at a time:
        (outputs (B, n, D), new states). The contract of lib.contracts.StepBackbone."""
        outs = []
        for t in range(h.shape[1]):
            y, states = self.step_token(h[:, t], states)
            outs.append(y)
        return torch.stack(outs, dim=1), states
