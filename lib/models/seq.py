"""One sequence model around any body, plain or looped (the block x task grid).

    tokens  (B, N) ids      -> Embedding(V, e)  -> body (plain: L layers once; looped: L layers, b times) -> Linear(e, V_out)
    vectors (B, N, d_in)    -> Linear(d_in, e)  -> body ...                                               -> Linear(e, 1)

Looping is the looped wrapper's recurrence (lib/models/looped.recur): H_0 = 0,
H_t = body(H_{t-1} + s_t E), with E the read-in and the injection `inject` as in LoopedConfig;
b = 1 is the plain model. The training loss sees the last T iterations.
The body is any entry of lib/models/bodies.BODIES.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from lib.config import Config
from lib.models import bodies
from lib.models.bodies import BodyConfig
from lib.models.looped import recur


@dataclass(frozen=True)
class SeqConfig(Config):
    body: BodyConfig = field(default_factory=BodyConfig)
    vocab: int = 0  # token input: vocabulary size (0: vector input of width d_in)
    d_in: int = 0  # vector input width
    n_out: int = 0  # output classes (0: one scalar per position)
    b: int = 1  # loop iterations in training (1: plain)
    T: int = 1  # loss window: the last T iterations
    inject: str = "none"  # 'none' (s = 1) or 'scalar' (a learnable s)

    def __post_init__(self):
        if isinstance(self.body, dict):
            object.__setattr__(self, "body", BodyConfig.load(self.body))
        if (self.vocab > 0) == (self.d_in > 0):
            raise ValueError(f"give exactly one of vocab (tokens) and d_in (vectors), got vocab={self.vocab}, d_in={self.d_in}")
        if self.b < 1 or self.T < 1:
            raise ValueError(f"b and T must be >= 1, got b={self.b}, T={self.T}")
        if self.inject not in ("none", "scalar"):
            raise ValueError(f"inject must be one of ['none', 'scalar'], got {self.inject!r}")

    @property
    def looped(self) -> bool:
        return self.b > 1

    @property
    def name(self) -> str:
        c = self.body
        return f"{c.kind}-e{c.d_model}-L{c.n_layer}" + (f"-b{self.b}-T{self.T}" if self.looped else "")


class SeqModel(nn.Module):
    def __init__(self, cfg: SeqConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.body.d_model
        self.read_in = nn.Embedding(cfg.vocab, e) if cfg.vocab else nn.Linear(cfg.d_in, e)
        self.backbone = bodies.build(cfg.body)
        self.read_out = nn.Linear(e, cfg.n_out or 1)
        self.s = nn.Parameter(torch.rand(())) if cfg.inject == "scalar" else None

    def scale(self, t: int):
        return 1.0 if self.s is None else self.s

    def head(self, H: torch.Tensor) -> torch.Tensor:
        y = self.read_out(H)
        return y if self.cfg.n_out else y.squeeze(-1)

    def forward(self, x: torch.Tensor, iters: int | None = None, keep: int | None = None, grad_last: int | None = None,
                state_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The last iteration's outputs (B, N, n_out) or (B, N); with `keep` given, the last `keep`
        iterations stacked (keep, B, N, ...), as Looped returns them (the regression task's calls).

        Training without `grad_last` back-propagates through the last T iterations only (truncated
        backprop, as the looped family trains), so a task whose loss calls model(x) trains a looped
        body the same way."""
        iters = self.cfg.b if iters is None else iters
        if grad_last is None and self.training and torch.is_grad_enabled():
            grad_last = min(self.cfg.T, iters)
        out = recur(self.backbone, self.read_in(x), self.scale, self.head, iters, keep or 1, grad_last, state_mask)
        return out[0] if keep is None else out

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
