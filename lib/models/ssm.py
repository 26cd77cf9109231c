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
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ShiftedSum(torch.autograd.Function):
    """y_t = bias + sum_j w_j * x_{t-k+1+j} on (B, L, C), with x_{<0} = 0: k fused multiply-adds in
    place forward, and a backward written out (k multiply-adds for dx, one product per tap for dw)
    instead of autograd's two products, a sum and an add per tap."""

    @staticmethod
    def forward(ctx, x, w, bias):  # x (B, L, C), w (C, k), bias (C,)
        k, L = w.shape[1], x.shape[1]
        xp = F.pad(x, (0, 0, k - 1, 0))  # (B, L + k - 1, C): k - 1 zeros in front
        y = torch.addcmul(bias, xp[:, :L], w[:, 0])
        for j in range(1, k):
            y.addcmul_(xp[:, j : j + L], w[:, j])
        ctx.save_for_backward(xp, w)
        return y

    @staticmethod
    def backward(ctx, g):
        xp, w = ctx.saved_tensors
        k, L = w.shape[1], g.shape[1]
        g_xp = torch.zeros_like(xp)
        g_w = torch.empty_like(w)
        for j in range(k):
            g_xp[:, j : j + L].addcmul_(g, w[:, j])
            g_w[:, j] = (g * xp[:, j : j + L]).sum((0, 1))
        return g_xp[:, k - 1 :], g_w, g.sum((0, 1))


class CausalConv(nn.Conv1d):
    """Depthwise causal conv over time on (B, L, C), with a step() over a buffer of the last k-1 inputs."""

    def __init__(self, channels: int, k: int):
        super().__init__(channels, channels, k, groups=channels, padding=k - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y_t = bias + sum_j w_j * x_{t-k+1+j}: k shifted multiply-adds (ShiftedSum; on a CPU far faster
        than the depthwise conv's backward for short sequences); shifted_ref is the same with autograd,
        conv_ref nn.Conv1d's own form."""
        return ShiftedSum.apply(x, self.weight[:, 0, :], self.bias)

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
