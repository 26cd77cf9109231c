"""One bootstrap, one comparison: every interval and every "A vs B" sentence in the reports.

    bootstrap(values, axis=0)  -> mean, lo, hi    95 % percentile bootstrap of the mean along `axis`
    seed_interval(values)      -> (mean, lo, hi)  the same over per-seed values (NaNs dropped)
    compare(a, b)              -> one verdict: 'lower' / 'higher' (intervals apart),
                                  'not distinguishable' (overlap), 'untested' (no interval)
"""
from __future__ import annotations

import numpy as np

LEVEL = 0.95  # every interval in the project
N_BOOT = 2000


def bootstrap(values, axis: int = 0, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0):
    """Mean along `axis` and a `level` percentile-bootstrap interval of that mean, per remaining
    entry. Returns (mean, lo, hi) as arrays (floats for 1-D input). One sample: lo = hi = mean."""
    v = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    n = v.shape[0]
    mean = v.mean(axis=0)
    if n <= 1:
        return mean, mean.copy() if isinstance(mean, np.ndarray) else mean, mean
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    means = v[idx].mean(axis=1)  # (n_boot, ...)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail], axis=0)
    return mean, lo, hi


def seed_interval(values, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi) over per-seed values; NaNs dropped; with one seed the interval is the value."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean, lo, hi = bootstrap(v, level=level, n_boot=n_boot, seed=seed)
    return float(mean), float(lo), float(hi)


def verdict(a: tuple[float, float, float], b: tuple[float, float, float]) -> str:
    """'lower' / 'higher' when a's interval lies wholly below / above b's, 'not distinguishable'
    when they overlap, 'untested' when either has no spread (one seed) or is NaN."""
    if any(np.isnan(x) for x in (*a, *b)) or a[1] == a[2] or b[1] == b[2]:
        return "untested"
    if a[2] < b[1]:
        return "lower"
    if b[2] < a[1]:
        return "higher"
    return "not distinguishable"


def compare(name_a: str, a: tuple[float, float, float], name_b: str, b: tuple[float, float, float], lower: str = "better") -> str:
    """A sentence comparing two (mean, lo, hi) intervals: apart (which is lower) or overlapping."""
    higher = {"better": "worse", "more stable": "less stable", "flatter": "sharper", "earlier": "later"}.get(lower, f"not {lower}")
    v = verdict(a, b)
    nums = f"{a[0]:.3g} [{a[1]:.3g}, {a[2]:.3g}] vs {b[0]:.3g} [{b[1]:.3g}, {b[2]:.3g}]"
    if v == "untested":
        return f"{name_a} {a[0]:.3g} vs {name_b} {b[0]:.3g} (one seed: no interval, not compared)"
    if v == "lower":
        return f"{name_a} is **{lower}** than {name_b} ({nums}, intervals apart)"
    if v == "higher":
        return f"{name_a} is **{higher}** than {name_b} ({nums}, intervals apart)"
    return f"{name_a} and {name_b} are **not distinguishable** ({nums}, intervals overlap)"


def fmt(ci: tuple[float, float, float]) -> str:
    """'0.0123 [0.0101, 0.0145]'"""
    return f"{ci[0]:.3g} [{ci[1]:.3g}, {ci[2]:.3g}]"


def reference_check(ours: tuple[float, float, float], other: tuple[float, float, float], expected: str) -> str:
    """Does our comparison of `ours` with `other` show the reference's direction (`expected`:
    'lower' or 'higher')? 'reproduced' (intervals apart that way), 'contradicted' (apart the other
    way), 'not reproduced (intervals overlap)', or 'untested' (no interval)."""
    v = verdict(ours, other)
    if v == "untested":
        return "untested"
    if v == "not distinguishable":
        return "not reproduced (intervals overlap)"
    return "reproduced" if v == expected else "contradicted"
