"""The looping wrapper: any backbone, run b times with input injection.

Ref: Yang et al. 2023, "Looped Transformers are Better at Learning Learning Algorithms"
(arXiv 2311.12424), section 3; references/looped_transformers.md section 2.

Glossary: Z prompt tokens (B, N, d_in); E = read_in(Z) the injected embedding (B, N, e);
H_t the recurrent state; b loop iterations in training; T loss window (the last T
iterations are in the loss, the first b - T run without gradient); s the injection scale.

    H_0 = 0;   H_t = Backbone(mask * H_{t-1} + s_t * E);   y_t = read_out(H_t)

A standard (non-looped) transformer is the same model with b = T = 1 and an L-layer
backbone: y = read_out(Backbone(E)). At inference the loop runs any number of iterations.
The backbone is any module (B, N, e) -> (B, N, e): a body of lib/models/bodies.py named by `body`
(n_embd, n_layer, n_head, n_positions, d_state, d_head are its sizes), or a module passed in.
`inject`: 'none' (s = 1), 'scalar' (one learnable s ~ U[0,1), the reference's "lr"),
'iteration' (a learnable s_t per iteration t < b, reused for t >= b), or 'folded' (the control:
s = 1 and nothing extra to learn, but the read-in starts multiplied by the same s ~ U[0,1) that
'scalar' draws: read-in is affine, so at initialisation the two models compute the same function).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from lib.config import Config
from lib.models import bodies
from lib.models.bodies import BodyConfig

INJECT = ("none", "scalar", "iteration", "folded")
# This config's spelling of a body where it differs from the registry name: the spelling is hashed
# into run ids and checkpoint names, so it stays the one the runs were trained under.
SPELLING = {"attention": "gpt"}


@dataclass(frozen=True)
class LoopedConfig(Config):
    d_in: int = 20  # token width
    n_embd: int = 256
    n_head: int = 8
    n_layer: int = 1  # layers of the loop body (a standard TF: its depth, with b = T = 1)
    n_positions: int = 203
    b: int = 1  # loop iterations in training
    T: int = 1  # loss window: the last T iterations
    inject: str = "none"
    body: str = "gpt"  # a body of lib/models/bodies.py (name or alias)
    d_state: int = 16  # state-space bodies: state size N
    d_head: int = 16  # ssd body: head width P

    def __post_init__(self):
        if self.b < 1 or self.T < 1:
            raise ValueError(f"b and T must be >= 1, got b={self.b}, T={self.T}")
        if self.inject not in INJECT:
            raise ValueError(f"inject must be one of {list(INJECT)}, got {self.inject!r}")
        name = bodies.resolve(self.body)
        object.__setattr__(self, "body", SPELLING.get(name, name))
        self.body_config()  # validates the body's sizes

    def body_config(self) -> BodyConfig:
        return BodyConfig(kind=self.body, d_model=self.n_embd, n_layer=self.n_layer, n_head=self.n_head, d_state=self.d_state,
                          d_head=self.d_head, ctx=self.n_positions)

    @property
    def looped(self) -> bool:
        return self.b > 1

    @property
    def name(self) -> str:
        tag = {"none": "", "scalar": "-lr", "iteration": "-lrvec", "folded": "-folded"}[self.inject]
        kind = "" if self.body == LoopedConfig.body else f"{self.body}-"  # the default body's runs carry no prefix
        return f"{kind}looped-L{self.n_layer}-b{self.b}-T{self.T}{tag}" if self.looped else f"{kind or 'tf-'}L{self.n_layer}{tag}"

    def columns(self) -> dict:
        """This config in the results-table columns."""
        return {"layers": self.n_layer, "b": self.b, "T": min(self.T, self.b), "looped": self.looped, "inject": self.inject}


def keep_context(n_pairs: int, n_kept: int, where: str, query: bool = True) -> torch.Tensor:
    """(2 * n_pairs,) state mask for a prompt of n_pairs pairs whose last pair holds the query x_k.

    Keeps the recurrent state of the first or last `n_kept` of the n_pairs - 1 context pairs
    (2 tokens each) and zeroes the other context pairs; the query pair's state is always kept
    (`query=False` masks it instead, with every context pair kept: the "query only" control).
    The mask touches only what the hypothesis names: context memory, never the query itself.
    """
    if where not in ("first", "last"):
        raise ValueError(f"where must be one of ['first', 'last'], got {where!r}")
    n_context = n_pairs - 1
    if not 0 <= n_kept <= n_context:
        raise ValueError(f"n_kept must be in [0, {n_context}] (the context pairs), got {n_kept}")
    mask = torch.zeros(2 * n_pairs)
    if not query:
        mask[: 2 * n_context] = 1
        return mask
    kept = range(n_kept) if where == "first" else range(n_context - n_kept, n_context)
    for i in kept:
        mask[2 * i : 2 * i + 2] = 1
    mask[2 * n_context :] = 1  # the query pair
    return mask


def recur(backbone: nn.Module, E: torch.Tensor, scale, read_out, iters: int, keep: int = 1, grad_last: int | None = None,
          state_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The loop: H_0 = 0, H_t = backbone(mask * H_{t-1} + scale(t) * E); read_out(H_t) of the last
    `keep` of `iters` iterations, stacked (keep, ...). Iterations before the last `grad_last` run
    without gradient. Shared by Looped (regression) and SeqModel (any task)."""
    if not 1 <= keep <= iters:
        raise ValueError(f"keep={keep} must be in [1, iters={iters}]")
    H = torch.zeros_like(E)
    mask = None if state_mask is None else state_mask.to(E.dtype).view(1, -1, 1)
    outs = []
    grad = torch.is_grad_enabled()
    for t in range(iters):
        with torch.set_grad_enabled(grad and (grad_last is None or t >= iters - grad_last)):
            if mask is not None:
                H = H * mask
            H = backbone(H + scale(t) * E)
            if t >= iters - keep:
                outs.append(read_out(H))
    return torch.stack(outs)


class Looped(nn.Module):
    def __init__(self, cfg: LoopedConfig, backbone: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.read_in = nn.Linear(cfg.d_in, cfg.n_embd)
        self.backbone = bodies.build(cfg.body_config()) if backbone is None else backbone
        self.read_out = nn.Linear(cfg.n_embd, 1)
        if cfg.inject == "scalar":
            self.s = nn.Parameter(torch.rand(()))
        elif cfg.inject == "iteration":
            self.s = nn.Parameter(torch.rand(cfg.b))
        elif cfg.inject == "folded":
            with torch.no_grad():
                s = torch.rand(())
                self.read_in.weight.mul_(s)
                self.read_in.bias.mul_(s)

    def scale(self, t: int) -> torch.Tensor | float:
        if self.cfg.inject in ("none", "folded"):
            return 1.0
        return self.s if self.s.dim() == 0 else self.s[min(t, len(self.s) - 1)]

    def forward(
        self,
        z: torch.Tensor,
        iters: int | None = None,
        keep: int = 1,
        grad_last: int | None = None,
        state_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predictions (keep, B, N) of the last `keep` of `iters` iterations (default: b).

        Iterations before the last `grad_last` run without gradient (all have it when None).
        `state_mask` (N,) multiplies the recurrent state before every backbone call
        (the input injection E is never masked).
        """
        iters = self.cfg.b if iters is None else iters
        return recur(self.backbone, self.read_in(z), self.scale, lambda H: self.read_out(H).squeeze(-1), iters, keep, grad_last,
                     state_mask)

    def compile_parts(self) -> "Looped":
        """torch.compile the loop body in place (the Python loop around it stays eager: dynamo
        cannot trace a loop whose length is an argument); state_dict keys are unchanged."""
        self.backbone.compile()
        return self

    def n_params(self, positions: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        wpe = getattr(self.backbone, "wpe", None)
        return n if positions or wpe is None else n - wpe.weight.numel()

    @torch.no_grad()
    def folded(self) -> "Looped":
        """For inject='scalar': the equivalent plain model with s folded into the affine read-in."""
        if self.cfg.inject != "scalar":
            raise ValueError("only a scalar injection scale can be folded into the read-in")
        plain = Looped(LoopedConfig(**{**self.cfg.__dict__, "inject": "none"}), backbone=copy.deepcopy(self.backbone))
        plain.load_state_dict({k: v for k, v in self.state_dict().items() if k != "s"})
        plain.read_in.weight.mul_(self.s)
        plain.read_in.bias.mul_(self.s)
        return plain
