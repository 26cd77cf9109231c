"""Curricula: what a task draws changes with the training step or with the model's progress.

`Ramp` is the step schedule of the looped-transformer paper (arXiv 2311.12424, section 3 of
references/looped_transformers.md): every `every` steps the value grows by `inc`,
capped at `end` (dims 5 -> 20 +1/5k, points 11 -> 41 +2/5k, loops T -> b +2/500).
`every = 0` means no curriculum: the value is `end` from the first step.
`UniformLength` and `AdaptiveLength` shorten samples (thinker.md, section 3); `ComputeRandom`
draws the latent model's compute per batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lib.config import Config


@dataclass(frozen=True)
class Ramp(Config):
    end: int
    start: int | None = None  # None: start at `end`
    inc: int = 1
    every: int = 0

    def __post_init__(self):
        if self.every < 0 or self.inc < 0:
            raise ValueError(f"every and inc must be >= 0, got every={self.every}, inc={self.inc}")
        if self.start is not None and self.start > self.end:
            raise ValueError(f"start={self.start} must be <= end={self.end}")

    def at(self, step: int) -> int:
        if self.every == 0 or self.start is None:
            return self.end
        return min(self.end, self.start + self.inc * (step // self.every))


class UniformLength:
    """Kept lengths uniform in [min_keep, max_keep] (the reference's first curriculum: m ~ U{0..L-4},
    positions 0..m blanked, i.e. min_keep = 3, max_keep = L - 1). A max_keep below L trains on short
    samples only, to test length generalisation."""

    def __init__(self, length: int, min_keep: int = 3, max_keep: int | None = None):
        max_keep = max(min_keep, length - 1) if max_keep is None else max_keep
        if not 1 <= min_keep <= max_keep <= length:
            raise ValueError(f"need 1 <= min_keep <= max_keep <= length={length}, got {min_keep}, {max_keep}")
        self.length, self.min_keep, self.max_keep = length, min_keep, max_keep

    def keep(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randint(self.min_keep, self.max_keep + 1, (n,), generator=gen, device=gen.device)

    def update(self, accuracy: float) -> None:
        pass


class AdaptiveLength:
    """A target length that grows while the model copes (the reference's adaptive curriculum).

    Before each batch: if the previous batch's accuracy exceeded `threshold`, target += inc
    (capped at L). Per sample: z ~ N(0, 1), min-max normalised within the batch, s = clip(2 z (L - target),
    0, L - 1); the first floor(s) positions are blanked, so the mean kept length is about `target`.
    """

    def __init__(self, length: int, start: float = 1.0, inc: float = 0.05, threshold: float = 0.85):
        if not 0 < start <= length or inc < 0 or not 0 <= threshold <= 1:
            raise ValueError(f"need 0 < start <= length, inc >= 0, 0 <= threshold <= 1; got {start}, {inc}, {threshold}")
        self.length, self.target, self.inc, self.threshold = length, float(start), inc, threshold

    @property
    def difficulty(self) -> float:
        return self.target / self.length

    def keep(self, n: int, gen: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, generator=gen, device=gen.device)
        z = (z - z.min()) / (z.max() - z.min()).clamp(min=1e-12)
        s = (2 * z * (self.length - self.target)).clamp(0, self.length - 1)
        return self.length - s.floor().long()

    def update(self, accuracy: float) -> None:
        if accuracy > self.threshold:
            self.target = min(float(self.length), self.target + self.inc)


class ComputeRandom:
    """Draw (n_latent, n_step) per batch from the given choices ('learned converging compute')."""

    def __init__(self, n_latent: list[int], n_step: list[int]):
        if not n_latent or not n_step or min(n_latent + n_step) < 1:
            raise ValueError("n_latent and n_step need non-empty lists of values >= 1")
        self.n_latent, self.n_step = list(n_latent), list(n_step)

    def draw(self, gen: torch.Generator) -> dict[str, int]:
        i = int(torch.randint(len(self.n_latent), (1,), generator=gen))
        j = int(torch.randint(len(self.n_step), (1,), generator=gen))
        return {"n_latent": self.n_latent[i], "n_step": self.n_step[j]}
