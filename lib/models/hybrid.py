"""A hybrid body: Mamba-2 SSD layers with one attention layer in the middle.

    n_layer residual layers; layer n_layer // 2 is a GPT block (causal SDPA attention + MLP, with
    learned positions added at the model's input), every other layer x + SSD(RMSNorm(x)); final RMSNorm.

The SSD layers carry O(1) state per token; the one attention layer keeps a KV cache (recall).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from lib.config import Config
from lib.models.gpt import Block, GPTConfig
from lib.models.ssd import SSDConfig, SSDMixer
from lib.models.ssm import RMSNorm


@dataclass(frozen=True)
class HybridConfig(Config):
    d_model: int = 64
    n_layer: int = 3  # one of them attention
    n_head: int = 4
    d_state: int = 16
    d_head: int = 16
    n_positions: int = 256

    def __post_init__(self):
        if self.n_layer < 2:
            raise ValueError(f"a hybrid needs n_layer >= 2 (SSD layers and one attention layer), got {self.n_layer}")
        self.ssd(), self.gpt()  # validate the parts' sizes

    def ssd(self) -> SSDConfig:
        return SSDConfig(d_model=self.d_model, n_layer=1, d_state=self.d_state, d_head=self.d_head)

    def gpt(self) -> GPTConfig:
        return GPTConfig(n_layer=1, n_embd=self.d_model, n_head=self.n_head, n_positions=self.n_positions)

    @property
    def attention_at(self) -> int:
        return self.n_layer // 2


class HybridBackbone(nn.Module):
    """(B, N, e) -> (B, N, e)."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.cfg = cfg
        self.wpe = nn.Embedding(cfg.n_positions, cfg.d_model)
        nn.init.normal_(self.wpe.weight, 0.0, 0.02)
        self.layers = nn.ModuleList(Block(cfg.gpt()) if i == cfg.attention_at else SSDMixer(cfg.ssd()) for i in range(cfg.n_layer))
        self.norms = nn.ModuleList(nn.Identity() if i == cfg.attention_at else RMSNorm(cfg.d_model) for i in range(cfg.n_layer))
        self.norm_f = RMSNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        if n > self.cfg.n_positions:
            raise ValueError(f"sequence of {n} tokens exceeds n_positions={self.cfg.n_positions}")
        x = x + self.wpe(torch.arange(n, device=x.device))
        for i, (norm, layer) in enumerate(zip(self.norms, self.layers)):
            x = layer(x) if i == self.cfg.attention_at else x + layer(norm(x))  # the GPT block is residual itself
        return self.norm_f(x)
