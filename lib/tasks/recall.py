"""Token-recall tasks for the block x task grid: multi-query associative recall and induction heads.

MQAR (Arora et al. 2023, "Zoology"; the format of HazyResearch/zoology's `multiquery_ar`):

    k_1 v_1 k_2 v_2 ... k_P v_P | filler ... k_i v_i ... filler ... k_j v_j ...
    keys from 1 .. V/2 - 1, values from V/2 .. V - 1, distinct within a sequence; every key is asked
    once after the context, at a position drawn with power-law gaps (zoology's power_a), and the
    model must output its value at the query key's position. Filler tokens are random. Labels are
    -100 (ignored) everywhere but at the query positions.

Induction heads: random tokens with a trigger token t at a random position p; the last token is t
again and the target there is the token that followed the first t (labels -100 elsewhere).

Selective copying in the Mamba paper's form (Gu & Dao 2023, section 4.1.1): P data tokens
(1 .. V - 2) at random positions of a noise area (token 0), then P marker tokens (V - 1); at the
markers the model outputs the data tokens in order. (Seed 000's form, letters in a blank area with
the answer masked, is lib/tasks/selective_copy.py.)

Both draw on the generator's device; the validation set is fixed and held out (lib.tasks.heldout).
Difficulty knobs: vocabulary V, sequence length N, pairs P (MQAR).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lib.config import Config
from lib.tasks.heldout import HeldOut

IGNORE = -100


class TokenBatch(NamedTuple):
    x: torch.Tensor  # (B, N) input ids
    y: torch.Tensor  # (B, N) target ids, IGNORE where there is nothing to predict


@dataclass(frozen=True)
class RecallConfig(Config):
    kind: str = "mqar"  # 'mqar', 'induction' or 'selective'
    vocab: int = 64  # V
    seq_len: int = 64  # N
    pairs: int = 8  # P (mqar)
    power_a: float = 0.01  # mqar: query gaps ~ power law (zoology's default)
    val_size: int = 1000
    val_seed: int = 4321

    def __post_init__(self):
        if self.kind not in SAMPLERS:
            raise ValueError(f"kind must be one of {sorted(SAMPLERS)}, got {self.kind!r}")
        if self.kind == "mqar":
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
    seq = torch.randint(0, V, (n, N + 1), generator=gen, device=dev)  # filler (one extra: inputs and shifted labels)
    seq[:, 0 : 2 * P : 2], seq[:, 1 : 2 * P : 2] = keys, values
    space = (N + 1 - 2 * P) // 2  # query slots: pairs of cells after the context
    gaps = torch.arange(1, space + 1, device=dev, dtype=torch.float)
    p = cfg.power_a * gaps ** (cfg.power_a - 1)
    slots = torch.multinomial((p / p.sum()).expand(n, -1), P, replacement=False, generator=gen)  # (n, P)
    pos = 2 * P + 2 * slots  # query key positions
    order = torch.rand(n, P, generator=gen, device=dev).argsort(1)  # which pair each query asks
    seq.scatter_(1, pos, keys.gather(1, order))
    seq.scatter_(1, pos + 1, values.gather(1, order))
    x, y = seq[:, :-1], torch.full((n, N), IGNORE, dtype=torch.long, device=dev)
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
    def evaluate(self, model, batch_size: int = 500, iters: int | None = None, val: TokenBatch | None = None) -> dict[str, float]:
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
        self.spec = (cfg,)
        self.vocab = cfg.vocab
        self.val = SAMPLERS[cfg.kind](cfg, cfg.val_size, torch.Generator().manual_seed(cfg.val_seed))
        self.heldout = HeldOut(self.val.x)

    def train_batch(self, batch_size: int, gen: torch.Generator, step: int = 0) -> TokenBatch:
        draw = lambda m: SAMPLERS[self.cfg.kind](self.cfg, m, gen)
        return TokenBatch(*self.heldout.fill(draw, batch_size, on_device=gen.device.type != "cpu"))

    def at_length(self, seq_len: int, n: int = 500, seed: int = 777) -> TokenBatch:
        """A fixed evaluation set at another sequence length (length extrapolation)."""
        import dataclasses

        return SAMPLERS[self.cfg.kind](dataclasses.replace(self.cfg, seq_len=seq_len), n, torch.Generator().manual_seed(seed))
