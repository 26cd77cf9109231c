"""Curricula: values that change with the training step.

`Ramp` is the step schedule of the looped-transformer paper (arXiv 2311.12424, section 3 of
shared/reference/looped_transformers.md): every `every` steps the value grows by `inc`,
capped at `end` (dims 5 -> 20 +1/5k, points 11 -> 41 +2/5k, loops T -> b +2/500).
`every = 0` means no curriculum: the value is `end` from the first step.
"""
from __future__ import annotations

from dataclasses import dataclass

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
