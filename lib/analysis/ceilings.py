"""Shortcut ceilings of the block x task grid: the best score a model reaches on a task without the
skill the task tests, in the grid's score units (a grid Entry.score: the fraction of labelled tokens
right; 1 - normalised error for regression). A cell at or below its task's ceiling has not learned.

A shortcut may be chosen per answer slot (a model knows which slot it fills), so a ceiling is the
mean over slots of the best shortcut at each slot:

    mqar             guess among the context values: 1/P (no query reveals an answer, and the
                     query order is independent of the context order)
    induction        the most frequent ordinary token (order-free): E[max count] / (N - 2)
    selective_mamba  the most frequent data token (order-free), and the last data token at the
                     last slot (copy-last)
    selective_copy   a guess among the distinct letters (order-free: 1/k), copy-last at the last slot
    copy, flip       the most frequent input value (order-free), the last input value (copy-last)
    cumsum, addition no closed form: the best of the task's trivial strategies per slot (TRIVIAL),
                     measured on the validation set
    linear, ...      the best constant prediction (zero): 1 - E[y^2] / normaliser

CEILINGS maps a grid task name to its ceiling; ORACLES maps it to the same quantity estimated by
playing the shortcuts on the task's validation set (tests compare the two; `best_per_slot` picks
each slot's shortcut on half of the set and scores it on the other half).
"""
from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import Callable, Sequence

from lib.tasks.recall import IGNORE

Strategy = Callable[[list[int]], list[int]]  # an input row -> a prediction per answer slot


@lru_cache(maxsize=None)
def expected_max_count(n: int, k: int) -> float:
    """E[max_a count(a)] of n independent uniform draws over k categories.

    P(max <= m) by dynamic programming over categories: the count of category c given the draws left
    is Binomial(left, 1 / (categories left)); E[max] = sum over m >= 0 of P(max > m)."""
    if n == 0:
        return 0.0
    total, m = 0.0, 0
    while True:
        within = [0.0] * n + [1.0]  # within[r]: P(the categories so far keep <= m, r draws left)
        for c in range(k - 1):
            p = 1 / (k - c)
            nxt = [0.0] * (n + 1)
            for r, q in enumerate(within):
                if q:
                    for j in range(min(m, r) + 1):
                        nxt[r - j] += q * math.comb(r, j) * p**j * (1 - p) ** (r - j)
            within = nxt
        below = sum(q for r, q in enumerate(within) if r <= m)  # the last category takes what is left
        total += 1 - below
        if 1 - below < 1e-12 or m >= n:
            return total
        m += 1


def solve_threshold(ceiling: float, frac: float = 0.9) -> float:
    """The score that counts as solved: `frac` of the way from the ceiling to a perfect 1."""
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    return ceiling + frac * (1 - ceiling)


LEARNED = ("not learned", "learning", "solved")


def learned(score: float, ceiling: float, threshold: float | None = None) -> str:
    """'not learned' at or below the task's shortcut ceiling, 'solved' at or above the solve
    threshold (default solve_threshold(ceiling)), 'learning' in between."""
    threshold = solve_threshold(ceiling) if threshold is None else threshold
    if score <= ceiling:
        return LEARNED[0]
    return LEARNED[2] if score >= threshold else LEARNED[1]


# ---- playing shortcuts on a validation set

def best_per_slot(inputs: Sequence[list[int]], labels: Sequence[list[int]], strategies: Sequence[Strategy]) -> float:
    """Mean over answer slots of the accuracy of the best guess at that slot: one of the strategies
    or the slot's most frequent label (a constant). The guess per slot is chosen on the even rows
    and scored on the odd ones, so picking the best of many does not inflate the estimate."""
    slots = len(labels[0])
    guesses = [[strategy(x) for strategy in strategies] for x in inputs]  # row -> strategy -> slot
    chosen, scored = range(0, len(labels), 2), range(1, len(labels), 2)
    total = 0
    for i in range(slots):
        constant = Counter(labels[r][i] for r in chosen).most_common(1)[0][0]
        right = lambda rows, s: sum((guesses[r][s][i] if s >= 0 else constant) == labels[r][i] for r in rows)
        best = max(range(-1, len(strategies)), key=lambda s: right(chosen, s))  # -1: the constant
        total += right(scored, best)
    return total / (slots * len(scored))


def mode(tokens: Sequence[int]) -> int:
    """The most frequent token (the smallest among ties)."""
    counts = Counter(tokens)
    return min(counts, key=lambda t: (-counts[t], t))


def broadcast(strategy: Callable[[list[int]], int], slots: int) -> Strategy:
    return lambda x: [strategy(x)] * slots


def labelled(val) -> tuple[list[list[int]], list[list[int]]]:
    """A TokenBatch -> (input rows, the labels at each row's labelled positions)."""
    xs, ys = val.x.tolist(), val.y.tolist()
    return xs, [[t for t in y if t != IGNORE] for y in ys]


# ---- the ceilings, in closed form where there is one

def mqar(task) -> float:
    return 1 / task.cfg.pairs


def mqar_oracle(task) -> float:
    """Each query answered with the value of one fixed context pair (the best pair per slot)."""
    xs, ys = labelled(task.val)
    P = task.cfg.pairs
    return best_per_slot(xs, ys, [broadcast(lambda x, j=j: x[2 * j + 1], P) for j in range(P)])


def induction(task) -> float:
    n = task.cfg.seq_len - 2  # ordinary tokens: all but the two triggers
    return expected_max_count(n, task.cfg.vocab - 1) / n


def induction_oracle(task) -> float:
    xs, ys = labelled(task.val)
    trigger = task.cfg.vocab - 1
    return best_per_slot(xs, ys, [broadcast(lambda x: mode([t for t in x if t != trigger]), 1)])


def bag_and_last(slots: int, bag_max: float) -> float:
    """Order-free guess at every slot but the last, where copy-last is right; bag_max is the
    expected count of the most frequent item among the `slots` items."""
    return ((slots - 1) * bag_max / slots + 1) / slots


def selective_mamba(task) -> float:
    P = task.cfg.pairs
    return bag_and_last(P, expected_max_count(P, task.cfg.vocab - 2))


def selective_mamba_oracle(task) -> float:
    xs, ys = labelled(task.val)
    P, area = task.cfg.pairs, task.cfg.seq_len - task.cfg.pairs
    data = lambda x: [t for t in x[:area] if t != 0]
    return best_per_slot(xs, ys, [broadcast(lambda x: mode(data(x)), P), broadcast(lambda x: data(x)[-1], P)])


def selective_copy(task) -> float:
    k = task.cfg.n_items
    return bag_and_last(k, 1.0)  # distinct letters: each is the most frequent, once


def selective_copy_oracle(task) -> float:
    cfg = task.cfg
    k, blank = cfg.n_items, ord(cfg.blank)
    xs = task.val.x.tolist()
    ys = [y[-k:] for y in task.val.y.tolist()]
    letters = lambda x: [t for t in x[: cfg.area] if t != blank]
    return best_per_slot(xs, ys, [broadcast(lambda x: mode(letters(x)), k), broadcast(lambda x: letters(x)[-1], k)])


def copy_family(task) -> float:
    """copy and flip: the order-free guess, and copy-last where the last input value is the answer."""
    cfg = task.cfg
    if cfg.task not in ("copy", "flip"):
        raise ValueError(f"copy_family has a closed form for copy and flip, not {cfg.task!r}")
    return bag_and_last(cfg.length, expected_max_count(cfg.length, cfg.V - 1))


def algorithmic_oracle(task) -> float:
    """The best per slot of the task's trivial strategies on the validation set (AlgoSequence)."""
    cfg = task.cfg
    xs, ys = task.algo.val.x.tolist(), task.algo.val.y.tolist()
    return best_per_slot(xs, ys, TRIVIAL[cfg.task](cfg))


def _addition_lengths(cfg) -> Strategy:
    """PAD where the sum cannot reach (past the longer operand and its carry), else the digit 0."""
    def guess(x: list[int]) -> list[int]:
        plus = x.index(cfg.PLUS)
        longest = max(plus - x.index(cfg.BASE) - 1, x.index(cfg.EQ) - plus - 1)
        return [cfg.PAD if i > longest else 0 for i in range(cfg.out_len)]
    return guess


# The trivial strategies of the algorithmic tasks (the slot's most frequent label is always tried).
TRIVIAL: dict[str, Callable] = {
    "copy": lambda cfg: [broadcast(mode, cfg.out_len), broadcast(lambda x: x[-1], cfg.out_len)],
    "flip": lambda cfg: [broadcast(mode, cfg.out_len), broadcast(lambda x: x[-1], cfg.out_len)],
    "cumsum": lambda cfg: [broadcast(mode, cfg.out_len), broadcast(lambda x: x[0], cfg.out_len), lambda x: list(x)],
    "addition": lambda cfg: [_addition_lengths(cfg)],
}


def regression(task) -> float:
    """The best constant, zero (targets have mean 0): 1 - E[y^2] / normaliser."""
    cfg, d = task.cfg, task.d
    second_moment = {"linear": d, "noisy_linear": d + cfg.noise**2, "sparse_linear": min(cfg.sparsity, d)}
    if cfg.kind not in second_moment:
        raise ValueError(f"regression ceiling: kind must be one of {sorted(second_moment)}, got {cfg.kind!r}")
    return 1 - second_moment[cfg.kind] / cfg.normaliser(d)


def regression_oracle(task) -> float:
    """The validation set's own mean target at the last position, as a constant prediction."""
    y = task.val.y[:, -1].double()
    return float(1 - ((y - y.mean()) ** 2).mean() / task.cfg.normaliser(task.d))


CEILINGS: dict[str, Callable] = {
    "mqar": mqar,
    "induction": induction,
    "selective_mamba": selective_mamba,
    "selective_copy": selective_copy,
    "copy": copy_family,
    "flip": copy_family,
    "cumsum": algorithmic_oracle,
    "addition": algorithmic_oracle,
    "linear": regression,
    "noisy_linear": regression,
    "sparse_linear": regression,
}

ORACLES: dict[str, Callable] = {
    "mqar": mqar_oracle,
    "induction": induction_oracle,
    "selective_mamba": selective_mamba_oracle,
    "selective_copy": selective_copy_oracle,
    "copy": algorithmic_oracle,
    "flip": algorithmic_oracle,
    "cumsum": algorithmic_oracle,
    "addition": algorithmic_oracle,
    "linear": regression_oracle,
    "noisy_linear": regression_oracle,
    "sparse_linear": regression_oracle,
}


def ceiling(name: str, task) -> float:
    """The shortcut ceiling of grid task `name` built as `task` (its grid Entry.build())."""
    if name not in CEILINGS:
        raise KeyError(f"no shortcut ceiling for task {name!r}; known: {sorted(CEILINGS)}")
    return CEILINGS[name](task)
