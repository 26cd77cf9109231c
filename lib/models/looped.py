"""The looping wrapper: any backbone, run b times with input injection.

Ref: Yang et al. 2023, "Looped Transformers are Better at Learning Learning Algorithms"
(arXiv 2311.12424), section 3; references/looped_transformers.md section 2.

Glossary: Z prompt tokens (B, N, d_in); E = read_in(Z) the injected embedding (B, N, e);
H_t the recurrent state; b loop iterations in training; T loss window (the last T
iterations are in the loss, the first b - T run without gradient); s the injection scale.

    H_0 = 0;   H_t = Backbone(mask * H_{t-1} + s_t * E);   y_t = read_out(H_t)

A standard (non-looped) transformer is the same model with b = T = 1 and an L-layer
backbone: y = read_out(Backbone(E)). At inference the loop runs any number of iterations.
The backbone is any module (B, N, e) -> (B, N, e): named by `body` from BODIES, or passed in.
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
from lib.models.gpt import GPTBackbone, GPTConfig
from lib.models.mamba import MambaBackbone, MambaConfig
from lib.models.ssd import SSDBackbone, SSDConfig

INJECT = ("none", "scalar", "iteration", "folded")


def gpt_body(cfg: "LoopedConfig") -> nn.Module:
    return GPTBackbone(cfg.gpt())


def mamba_body(cfg: "LoopedConfig") -> nn.Module:
    return MambaBackbone(MambaConfig(d_model=cfg.n_embd, n_layer=cfg.n_layer, d_state=cfg.d_state))


def ssd_body(cfg: "LoopedConfig") -> nn.Module:
    return SSDBackbone(SSDConfig(d_model=cfg.n_embd, n_layer=cfg.n_layer, d_state=cfg.d_state, d_head=cfg.d_head))


# Loop bodies by name: config -> module (B, N, e) -> (B, N, e).
BODIES = {"gpt": gpt_body, "mamba": mamba_body, "ssd": ssd_body}


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
    body: str = "gpt"  # a key of BODIES
    d_state: int = 16  # state-space bodies: state size N
    d_head: int = 16  # ssd body: head width P

    def __post_init__(self):
        if self.b < 1 or self.T < 1:
            raise ValueError(f"b and T must be >= 1, got b={self.b}, T={self.T}")
        if self.inject not in INJECT:
            raise ValueError(f"inject must be one of {list(INJECT)}, got {self.inject!r}")
        if self.body not in BODIES:
            raise ValueError(f"body must be one of {sorted(BODIES)}, got {self.body!r}")
        if self.body == "gpt":
            self.gpt()  # validates width/heads

    def gpt(self) -> GPTConfig:
        return GPTConfig(n_layer=self.n_layer, n_embd=self.n_embd, n_head=self.n_head, n_positions=self.n_positions)

    @property
    def looped(self) -> bool:
        return self.b > 1

    @property
    def name(self) -> str:
        tag = {"none": "", "scalar": "-lr", "iteration": "-lrvec", "folded": "-folded"}[self.inject]
        kind = "" if self.body == "gpt" else f"{self.body}-"
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


def train_predictions(model, z: torch.Tensor, b: int | None = None) -> torch.Tensor:
    """(T', B, N): the predictions in the training loss, T' = min(T, b); b from a curriculum or cfg.b.

    Uses only model.cfg and model(...), so it works on a compiled model and on a stand-in that
    evaluates the model at other weights (the loss-surface study).
    """
    b = model.cfg.b if b is None else b
    window = min(model.cfg.T, b)
    return model(z, iters=b, keep=window, grad_last=window)


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
        self.backbone = BODIES[cfg.body](cfg) if backbone is None else backbone
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

    def train_predictions(self, z: torch.Tensor, b: int | None = None) -> torch.Tensor:
        return train_predictions(self, z, b)

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
