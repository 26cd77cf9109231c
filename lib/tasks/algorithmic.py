"""Algorithmic sequence tasks on one vocabulary: the copy family and base-b addition.

Ref: the "Th1nker" experiment log (references/thinker.md, section 2); ideas only.

Vocabulary: ids 0..n_values-1 are values/digits (0 doubles as the blank of the copy family),
then PAD, BASE ('@'), PLUS ('+'), EQ ('='). Copy family (values in 1..V-1, length L):

    copy      y = x                      flip      y = x reversed
    roll      y = x rotated right by x[0] roll_num  y = (x + x[0]) mod V
    sort      y = x ascending            cumsum    y = running sum mod V

A curriculum shortens a sample by zeroing (blanking) a prefix of x *before* the target is
computed, so the kept suffix has the length the curriculum asks for.

Addition in base b with operands below `limit`, numbers little-endian (least significant
digit first, so a left-to-right reader meets carries in order), e.g. b = 16, 0x2A + 0x1F:

    x = [PAD.., 16, BASE, A, 2, PLUS, F, 1, EQ]      y = [9, 4, PAD..]     (0x49)

Inputs are left-padded, targets right-padded with PAD. Validation holds out a fixed set of
(a, b) pairs (or, for the copy family, of sequences) that training never draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lib.config import Config
from lib.tasks.heldout import HeldOut

COPY_FAMILY = ("copy", "flip", "roll", "roll_num", "sort", "cumsum")
TASKS = COPY_FAMILY + ("addition",)


@dataclass(frozen=True)
class AlgorithmicConfig(Config):
    task: str = "copy"
    n_values: int = 32  # value tokens in the vocabulary (>= V and >= base + 1)
    V: int = 16  # copy family: values 1..V-1 (0 is the blank)
    length: int = 20  # copy family: sequence length L
    base: int = 16  # addition
    limit: int = 1000  # addition: operands in [0, limit)
    val_size: int = 1000
    val_seed: int = 1234

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        if not 2 <= self.V <= self.n_values or not 2 <= self.base < self.n_values:
            raise ValueError(f"need 2 <= V <= n_values and 2 <= base < n_values; got V={self.V}, base={self.base}, n_values={self.n_values}")
        if self.length < 1 or self.limit < 1 or self.val_size < 1:
            raise ValueError("length, limit and val_size must be >= 1")
        if self.task == "addition" and self.val_size >= self.limit**2:
            raise ValueError(f"val_size={self.val_size} must be below the {self.limit ** 2} operand pairs")

    @property
    def PAD(self) -> int:
        return self.n_values

    @property
    def BASE(self) -> int:
        return self.n_values + 1

    @property
    def PLUS(self) -> int:
        return self.n_values + 2

    @property
    def EQ(self) -> int:
        return self.n_values + 3

    @property
    def vocab(self) -> int:
        return self.n_values + 4

    @property
    def digits(self) -> int:
        """Digits of the largest operand in `base`."""
        return len(to_digits(self.limit - 1, self.base))

    @property
    def out_len(self) -> int:
        return self.length if self.task in COPY_FAMILY else len(to_digits(2 * (self.limit - 1), self.base))

    @property
    def in_len(self) -> int:
        return self.length if self.task in COPY_FAMILY else 2 * self.digits + 4


class AlgoBatch(NamedTuple):
    x: torch.Tensor  # (B, in_len) token ids
    y: torch.Tensor  # (B, out_len) token ids (PAD past the answer)
    compute: dict | None = None  # keyword arguments for the model (e.g. n_latent, n_step drawn per batch)


def to_digits(n: int, base: int) -> list[int]:
    """Little-endian digits of n >= 0 (0 -> [0])."""
    out = [n % base]
    while n := n // base:
        out.append(n % base)
    return out


def targets(task: str, x: torch.Tensor, V: int) -> torch.Tensor:
    """Copy-family target of x (B, L), values in [0, V)."""
    if task == "copy":
        return x.clone()
    if task == "flip":
        return x.flip(1)
    if task == "roll":  # y[i] = x[(i - x[0]) mod L]
        L = x.shape[1]
        return x.gather(1, (torch.arange(L, device=x.device) - x[:, :1]) % L)
    if task == "roll_num":
        return (x + x[:, :1]) % V
    if task == "sort":
        return x.sort(dim=1).values
    if task == "cumsum":
        return x.cumsum(dim=1) % V
    raise ValueError(f"not a copy-family task: {task!r}")


def blank_prefix(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Zero all but the last keep[i] positions of row i (the curriculum's shortening)."""
    L = x.shape[1]
    return x.masked_fill(torch.arange(L, device=x.device) < (L - keep)[:, None], 0)


def sample_copy(cfg: AlgorithmicConfig, n: int, gen: torch.Generator, keep: torch.Tensor | None = None) -> AlgoBatch:
    x = torch.randint(1, cfg.V, (n, cfg.length), generator=gen, device=gen.device)
    if keep is not None:
        x = blank_prefix(x, keep)
    return AlgoBatch(x, targets(cfg.task, x, cfg.V))


def encode_addition(cfg: AlgorithmicConfig, a: torch.Tensor, b: torch.Tensor) -> AlgoBatch:
    """Operand pairs (n,) -> tokens, left-padded inputs and right-padded targets."""
    xs, ys = [], []
    for ai, bi in zip(a.tolist(), b.tolist()):
        tokens = [cfg.base, cfg.BASE, *to_digits(ai, cfg.base), cfg.PLUS, *to_digits(bi, cfg.base), cfg.EQ]
        xs.append([cfg.PAD] * (cfg.in_len - len(tokens)) + tokens)
        out = to_digits(ai + bi, cfg.base)
        ys.append(out + [cfg.PAD] * (cfg.out_len - len(out)))
    return AlgoBatch(torch.tensor(xs), torch.tensor(ys))


def decode_number(digits: list[int], cfg: AlgorithmicConfig) -> int:
    """Little-endian digits (PAD-terminated) -> integer."""
    n = 0
    for i, d in enumerate(digits):
        if d == cfg.PAD:
            break
        n += d * cfg.base**i
    return n


class Algorithmic:
    """The task object for the training loop.

    `lengths` (UniformLength or AdaptiveLength from lib.curriculum) shortens copy-family training
    samples and hears each batch's accuracy; `compute` (ComputeRandom) draws model keyword
    arguments per batch. Validation always uses full-length samples and the model's defaults.
    """

    def __init__(self, cfg: AlgorithmicConfig, lengths=None, compute=None):
        if lengths is not None and cfg.task == "addition":
            raise ValueError("a length curriculum applies to the copy family, not to addition")
        self.cfg, self.lengths, self.compute = cfg, lengths, compute
        self.spec = (cfg, type(lengths).__name__, dict(vars(lengths)) if lengths else None, dict(vars(compute)) if compute else None)
        gen = torch.Generator().manual_seed(cfg.val_seed)
        if cfg.task == "addition":
            pairs = torch.randperm(cfg.limit**2, generator=gen)[: cfg.val_size]
            self.val_pairs = torch.zeros(cfg.limit**2, dtype=torch.bool)
            self.val_pairs[pairs] = True
            self.val = encode_addition(cfg, pairs // cfg.limit, pairs % cfg.limit)
        else:
            self.val = sample_copy(cfg, cfg.val_size, gen)
        self.heldout = HeldOut(self.val.x)

    def state_dict(self) -> dict:
        """The curriculum's progress (the adaptive target length), for checkpoints."""
        return {"lengths": dict(vars(self.lengths)) if self.lengths else None}

    def load_state_dict(self, state: dict) -> None:
        if self.lengths is not None and state.get("lengths"):
            vars(self.lengths).update(state["lengths"])

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> AlgoBatch:
        cfg = self.cfg
        compute = self.compute.draw(gen) if self.compute else None
        if cfg.task == "addition":
            pairs = torch.empty(0, dtype=torch.long)
            while len(pairs) < batch_size:  # draw operand pairs outside the held-out set
                # encoded in Python on the CPU (one device read per batch on an accelerator)
                p = torch.randint(0, cfg.limit**2, (2 * batch_size,), generator=gen, device=gen.device).cpu()
                pairs = torch.cat([pairs, p[~self.val_pairs[p]]])
            pairs = pairs[:batch_size]
            return encode_addition(cfg, pairs // cfg.limit, pairs % cfg.limit)._replace(compute=compute)
        draw = lambda m: sample_copy(cfg, m, gen, self.lengths.keep(m, gen) if self.lengths else None)[:2]
        x, y = self.heldout.fill(draw, batch_size, on_device=gen.device.type != "cpu")
        return AlgoBatch(x, y, compute)

    def loss(self, model, batch: AlgoBatch) -> torch.Tensor | tuple[torch.Tensor, dict]:
        """Cross-entropy over every target token; (R, B, O, V) logits (several readout steps) are averaged over R.

        With a length curriculum it also returns the batch's token accuracy, which the training loop
        hands to `after_step` once the step is taken (the loss itself changes nothing)."""
        logits = model(batch.x, **(batch.compute or {}))
        steps = logits if logits.dim() == 4 else logits[None]
        loss = torch.stack([F.cross_entropy(s.flatten(0, 1).float(), batch.y.flatten()) for s in steps]).mean()
        if self.lengths is None:
            return loss
        return loss, {"accuracy": (steps[-1].detach().argmax(-1) == batch.y).float().mean()}

    def after_step(self, stats: dict) -> None:
        """The curriculum hook: the length curriculum hears the accuracy of the batch just trained on."""
        if self.lengths is not None:
            self.lengths.update(float(stats["accuracy"]))

    @torch.no_grad()
    def evaluate(self, model, batch_size: int = 500, val: AlgoBatch | None = None, **compute) -> dict[str, float]:
        """Per-token accuracy and exact match (every target token right) on the held-out set (or `val`)."""
        val = self.val if val is None else val
        self.heldout.check()  # no held-out row reached a device-drawn training batch
        device = next(model.parameters()).device
        right, exact = 0, 0
        for i in range(0, len(val.x), batch_size):
            x, y = val.x[i : i + batch_size].to(device), val.y[i : i + batch_size].to(device)
            logits = model(x, **compute)
            ok = (logits[-1] if logits.dim() == 4 else logits).argmax(-1) == y
            right += int(ok.sum())
            exact += int(ok.all(dim=1).sum())
        n = len(val.x)
        return {"val_token_acc": right / (n * self.cfg.out_len), "val_exact": exact / n}

    def at_length(self, keep: int, n: int = 500, seed: int = 99) -> AlgoBatch:
        """A fixed evaluation set of copy-family samples whose last `keep` positions are kept."""
        return sample_copy(self.cfg, n, torch.Generator().manual_seed(seed + keep), torch.full((n,), keep))
