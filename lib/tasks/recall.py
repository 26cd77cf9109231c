"""Token-recall tasks for the block x task grid: multi-query associative recall, induction heads, selective copying.

MQAR (Arora et al. 2023, "Zoology"; the layout of HazyResearch/zoology's `multiquery_ar`):

    input   k_1 v_1 k_2 v_2 ... k_P v_P | f f k_i f f f k_j f ...
    label   -   -   -   -   ... -   -   | - - v_i - - - v_j - ...

    Keys are drawn from 1 .. V/2 - 1 and values from V/2 .. V - 1, distinct within a sequence. Every
    key is asked once after the context, in a random order, at even offsets drawn with power-law gaps
    (zoology's power_a), and the model outputs its value at the query key's position. Labels are -100
    (ignored) everywhere else. Every other position holds filler f: a random token that is not one of
    the sequence's values, so the cell after a query never shows its answer and no query reveals the
    answer of another (no elimination over revealed values). Filler may repeat a key, as in zoology;
    a vocabulary larger than the sequence length (zoology's condition) keeps such stray copies rare.

Induction heads: random tokens with a trigger token t at a random position p; the last token is t
again and the target there is the token that followed the first t (labels -100 elsewhere).

Selective copying in the Mamba paper's form (Gu & Dao 2023, section 4.1.1): P data tokens
(1 .. V - 2) at random positions of a noise area (token 0), then P marker tokens (V - 1); at the
markers the model outputs the data tokens in order. (Seed 000's form, letters in a blank area with
the answer masked, is lib/tasks/selective_copy.py.)

All draw on the generator's device; the validation set is fixed and held out (lib.tasks.heldout).
Difficulty knobs: vocabulary V, sequence length N, pairs P (MQAR).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lib.config import Config
from lib.tasks.heldout import HeldOut

IGNORE = -100
# Part of an MQAR task's checkpoint key: the layout with filler after each query (not its answer).
MQAR_LAYOUT = "mqar: filler after each query"


class TokenBatch(NamedTuple):
    x: torch.Tensor  # (B, N) input ids
    y: torch.Tensor  # (B, N) target ids, IGNORE where there is nothing to predict


@dataclass(frozen=True)
class RecallConfig(Config):
    kind: str = "mqar"  # 'mqar', 'induction' or 'selective'
    vocab: int = 128  # V (mqar: > seq_len)
    seq_len: int = 64  # N
    pairs: int = 8  # P (mqar)
    power_a: float = 0.01  # mqar: query gaps ~ power law (zoology's default)
    val_size: int = 1000
    val_seed: int = 4321

    def __post_init__(self):
        if self.kind not in SAMPLERS:
            raise ValueError(f"kind must be one of {sorted(SAMPLERS)}, got {self.kind!r}")
        if self.kind == "mqar":
            if self.vocab <= self.seq_len:
                raise ValueError(f"mqar needs vocab > seq_len (zoology's condition), got vocab={self.vocab}, seq_len={self.seq_len}")
            if self.pairs < 1 or self.pairs > self.vocab // 2 - 1:
                raise ValueError(f"pairs must be in [1, vocab / 2 - 1 = {self.vocab // 2 - 1}], got {self.pairs}")
            if (self.seq_len - 2 * self.pairs) // 2 < self.pairs:
                raise ValueError(f"seq_len={self.seq_len} leaves no room for {self.pairs} queries after the context")
        elif self.kind == "selective":
            if self.pairs < 1 or self.seq_len < 2 * self.pairs or self.vocab < 3:
                raise ValueError(f"selective copying needs pairs >= 1, seq_len >= 2 pairs, vocab >= 3; got {self.pairs}, {self.seq_len}, {self.vocab}")
        elif self.seq_len < 4 or self.vocab < 3:
            raise ValueError(f"induction needs seq_len >= 4 and vocab >= 3, got {self.seq_len}, {self.vocab}")


def sample_mqar(cfg: RecallConfig, n: int, gen: torch.Generator) -> TokenBatch:
    dev, V, P, N = gen.device, cfg.vocab, cfg.pairs, cfg.seq_len
    half = V // 2
    keys = torch.rand(n, half - 1, generator=gen, device=dev).argsort(1)[:, :P] + 1  # (n, P) distinct in 1..half-1
    values = torch.rand(n, V - half, generator=gen, device=dev).argsort(1)[:, :P] + half  # (n, P) distinct in half..V-1
    allowed = torch.ones(n, V, device=dev).scatter_(1, values, 0.0)  # filler: any token but this sequence's values
    x = torch.multinomial(allowed, N, replacement=True, generator=gen)  # (n, N)
    x[:, 0 : 2 * P : 2], x[:, 1 : 2 * P : 2] = keys, values
    space = (N - 2 * P) // 2  # query slots: pairs of cells after the context, the second one filler
    gaps = torch.arange(1, space + 1, device=dev, dtype=torch.float)
    p = cfg.power_a * gaps ** (cfg.power_a - 1)
    slots = torch.multinomial((p / p.sum()).expand(n, -1), P, replacement=False, generator=gen)  # (n, P)
    pos = 2 * P + 2 * slots  # query key positions
    order = torch.rand(n, P, generator=gen, device=dev).argsort(1)  # which pair each query asks
    x.scatter_(1, pos, keys.gather(1, order))
    y = torch.full((n, N), IGNORE, dtype=torch.long, device=dev)
    y.scatter_(1, pos, values.gather(1, order))  # at a query key, predict its value
    return TokenBatch(x, y)


def sample_induction(cfg: RecallConfig, n: int, gen: torch.Generator) -> TokenBatch:
    dev, V, N = gen.device, cfg.vocab, cfg.seq_len
    trigger = V - 1
    x = torch.randint(0, V - 1, (n, N), generator=gen, device=dev)  # ordinary tokens exclude the trigger
    p = torch.randint(0, N - 2, (n, 1), generator=gen, device=dev)  # the first trigger, with its answer at p + 1 < N - 1
    x.scatter_(1, p, trigger)
    x[:, -1] = trigger
    y = torch.full((n, N), IGNORE, dtype=torch.long, device=dev)
    y[:, -1] = x.gather(1, p + 1).squeeze(1)
    return TokenBatch(x, y)


def sample_selective(cfg: RecallConfig, n: int, gen: torch.Generator) -> TokenBatch:
    dev, V, P, N = gen.device, cfg.vocab, cfg.pairs, cfg.seq_len
    area = N - P
    cells = torch.rand(n, area, generator=gen, device=dev).argsort(1)[:, :P].sort(1).values  # (n, P) in order
    data = torch.randint(1, V - 1, (n, P), generator=gen, device=dev)
    x = torch.zeros(n, N, dtype=torch.long, device=dev).scatter_(1, cells, data)
    x[:, area:] = V - 1
    y = torch.full((n, N), IGNORE, dtype=torch.long, device=dev)
    y[:, area:] = data
    return TokenBatch(x, y)


SAMPLERS = {"mqar": sample_mqar, "induction": sample_induction, "selective": sample_selective}


class TokenTask:
    """Loss and evaluation of any task whose batches are TokenBatch (labels at some positions)."""

    val: TokenBatch
    heldout: HeldOut

    @staticmethod
    def loss(model, batch: TokenBatch) -> torch.Tensor:
        """Cross-entropy at the labelled positions (of the last iteration, for a looped model)."""
        logits = model(batch.x)  # (B, N, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch.y.flatten(), ignore_index=IGNORE)

    @torch.no_grad()
    def evaluate(self, model, batch_size: int = 500, *, iters: int | None = None, val: TokenBatch | None = None) -> dict[str, float]:
        """Accuracy at the labelled positions, and the fraction of sequences with all of them right."""
        self.heldout.check()
        val = self.val if val is None else val
        device = next(model.parameters()).device
        right = total = exact = 0
        for i in range(0, len(val.x), batch_size):
            x, y = val.x[i : i + batch_size].to(device), val.y[i : i + batch_size].to(device)
            pred = model(x, iters=iters).argmax(-1)
            asked = y != IGNORE
            right += int(((pred == y) & asked).sum())
            total += int(asked.sum())
            exact += int(((pred == y) | ~asked).all(1).sum())
        return {"val_acc": right / total, "val_exact": exact / len(val.x)}


class Recall(TokenTask):
    """The task object for the training loop (plain or looped SeqModel with n_out = vocab)."""

    def __init__(self, cfg: RecallConfig):
        self.cfg = cfg
        self.spec = (cfg, MQAR_LAYOUT) if cfg.kind == "mqar" else (cfg,)
        self.vocab, self.seq_len = cfg.vocab, cfg.seq_len
        self.val = SAMPLERS[cfg.kind](cfg, cfg.val_size, torch.Generator().manual_seed(cfg.val_seed))
        self.heldout = HeldOut(self.val.x)

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> TokenBatch:
        draw = lambda m: SAMPLERS[self.cfg.kind](self.cfg, m, gen)
        return TokenBatch(*self.heldout.fill(draw, batch_size, on_device=gen.device.type != "cpu"))

    def at_length(self, seq_len: int, n: int = 500, seed: int = 777) -> TokenBatch:
        """A fixed evaluation set at a longer sequence length (length extrapolation). The vocabulary
        stays the model's, so MQAR at 2n or 4n may have vocab <= seq_len: more stray key copies."""
        if seq_len < self.cfg.seq_len:
            raise ValueError(f"at_length extrapolates: seq_len must be >= {self.cfg.seq_len}, got {seq_len}")
        longer = SimpleNamespace(**{**dataclasses.asdict(self.cfg), "seq_len": seq_len})
        return SAMPLERS[self.cfg.kind](longer, n, torch.Generator().manual_seed(seed))
