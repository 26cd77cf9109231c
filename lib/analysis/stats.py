"""Every interval and every "A vs B" in the reports: Student-t intervals over seeds, Welch's t-test,
an exact permutation test, effect sizes, and one `compare`.

    seed_interval(values, log=False) -> (mean, lo, hi)   95 % Student-t interval of the mean over seeds;
                                        log=True: geometric mean and back-transformed bounds (errors, ratios)
    compare(a, b, log=False)         -> Comparison       means, intervals, p, the test used, an effect size,
                                        n per side and a verdict word; .sentence(name_a, name_b) for prose
    welch(a, b)                      -> (t, df, p)       Welch's unequal-variance t-test, two-sided
    permutation_p(a, b)              -> p                exact two-sided permutation test of the difference of means
    hedges_g(a, b)                   -> g                standardised difference of means, small-sample corrected
    bootstrap(values, axis=0)        -> mean, lo, hi     percentile bootstrap of the mean: for hundreds of prompts,
                                                         never for a handful of seeds (it covers ~73 % at n = 3)

"Apart" is said only at p < ALPHA. With fewer than MIN_SEEDS values on a side a comparison is
"descriptive": its means and intervals are shown, and no test result is called a difference.
With 3 vs 3 seeds no exact test can say apart at all: the smallest two-sided permutation p is 2/20.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

LEVEL = 0.95  # every interval in the project
ALPHA = 0.05  # "apart" only at p below this
MIN_SEEDS = 5  # fewer on a side: the comparison is descriptive
MAX_SPLITS = 200_000  # the exact permutation test enumerates up to this many splits; Welch's test beyond
N_BOOT = 2000


# --- Student's t distribution (no scipy: the regularised incomplete beta function, Numerical Recipes 6.4) ---

def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (> 0, not necessarily whole) degrees of freedom."""
    if not df > 0:
        raise ValueError(f"t_cdf: df must be > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


@lru_cache(maxsize=1024)
def t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q (0 < q < 1), by bisection on t_cdf to ~1e-12."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"t_quantile: q must be in (0, 1), got {q}")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# --- intervals ---

def _clean(values, log: bool) -> np.ndarray:
    """Finite float values (NaNs dropped); their logs when `log` (all must then be > 0)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if log:
        if (v <= 0).any():
            raise ValueError(f"log-scale statistics need values > 0, got {v[v <= 0][:3].tolist()}")
        v = np.log(v)
    return v


def seed_interval(values, level: float = LEVEL, log: bool = False) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean over per-seed values and its Student-t `level` interval, NaNs dropped.
    log=True (errors, ratios): the interval of the mean of log values, reported as the geometric mean
    and the back-transformed bounds. One value: lo = hi = the value (no interval; compare() calls a
    side with one value 'untested'). No values: NaNs."""
    v = _clean(values, log)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    half = 0.0 if v.size == 1 else t_quantile(0.5 + level / 2, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    out = (mean, mean - half, mean + half)
    return tuple(math.exp(x) for x in out) if log else out


def t_band(values, level: float = LEVEL) -> tuple[float, float]:
    """(lo, hi) of seed_interval: the error band of a curve over seeds (a seaborn `errorbar` callable)."""
    _, lo, hi = seed_interval(values, level)
    return lo, hi


def bootstrap(values, axis: int = 0, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0):
    """Mean along `axis` and a `level` percentile-bootstrap interval of that mean, per remaining entry.
    Returns (mean, lo, hi) as arrays (floats for 1-D input); one sample: lo = hi = mean. Only for many
    samples (hundreds of prompts): over a handful of seeds it is far narrower than `level`."""
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


def fmt(ci: tuple[float, float, float]) -> str:
    """'0.0123 [0.0101, 0.0145]'"""
    return f"{ci[0]:.3g} [{ci[1]:.3g}, {ci[2]:.3g}]"


# --- tests and effect sizes (on log values when log=True) ---

def welch(a, b, log: bool = False) -> tuple[float, float, float]:
    """Welch's t-test of mean(a) = mean(b): (t, Welch-Satterthwaite df, two-sided p). Needs >= 2
    values a side. Both sides without spread: p = 0 if the means differ, else 1 (df NaN)."""
    a, b = _clean(a, log), _clean(b, log)
    if min(a.size, b.size) < 2:
        raise ValueError(f"welch: needs >= 2 values a side, got {a.size} and {b.size}")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = float(a.mean() - b.mean())
    if va + vb == 0:
        return (math.copysign(math.inf, diff) if diff else 0.0), float("nan"), (0.0 if diff else 1.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return float(t), float(df), 2.0 * t_cdf(-abs(t), df)


def n_splits(n_a: int, n_b: int) -> int:
    """How many ways the pooled values split into groups of n_a and n_b."""
    return math.comb(n_a + n_b, n_a)


def permutation_p(a, b, log: bool = False) -> float:
    """Exact two-sided permutation test of the difference of means: the fraction of all
    C(n_a + n_b, n_a) splits of the pooled values whose |difference of means| is at least the
    observed one (the observed split included, so p >= 1 / C; at 3 vs 3 the smallest p is 2/20)."""
    a, b = _clean(a, log), _clean(b, log)
    if min(a.size, b.size) < 1:
        raise ValueError(f"permutation_p: needs >= 1 value a side, got {a.size} and {b.size}")
    if (c := n_splits(a.size, b.size)) > MAX_SPLITS:
        raise ValueError(f"permutation_p: {c} splits of {a.size} + {b.size} values exceed MAX_SPLITS = {MAX_SPLITS}; use welch()")
    pooled = np.concatenate([a, b])
    total, n_a, n_b = pooled.sum(), a.size, b.size
    idx = np.array(list(combinations(range(pooled.size), n_a)))  # (C, n_a): every group a
    sums = pooled[idx].sum(axis=1)
    diffs = np.abs(sums / n_a - (total - sums) / n_b)
    observed = abs(a.mean() - b.mean())
    return float((diffs >= observed - 1e-12 * max(1.0, observed)).mean())


def hedges_g(a, b, log: bool = False) -> float:
    """(mean(a) - mean(b)) / pooled sd, times the small-sample correction 1 - 3 / (4 (n_a + n_b) - 9)."""
    a, b = _clean(a, log), _clean(b, log)
    if min(a.size, b.size) < 2:
        raise ValueError(f"hedges_g: needs >= 2 values a side, got {a.size} and {b.size}")
    pooled = math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2))
    diff = float(a.mean() - b.mean())
    d = diff / pooled if pooled else (math.copysign(math.inf, diff) if diff else 0.0)
    return d * (1 - 3 / (4 * (a.size + b.size) - 9))


def geo_ratio(a, b) -> float:
    """Ratio of geometric means, exp(mean log a - mean log b): the effect size on the log scale."""
    return math.exp(float(_clean(a, True).mean() - _clean(b, True).mean()))


# --- one comparison ---

VERDICTS = ("lower", "higher", "not apart", "descriptive", "untested")
_OPPOSITE = {"better": "worse", "more stable": "less stable", "flatter": "sharper", "earlier": "later", "smaller": "larger", "worse": "better"}


@dataclass(frozen=True)
class Comparison:
    """A vs B over seeds. `verdict`: 'lower' / 'higher' (a's mean below / above b's at p < ALPHA,
    with >= MIN_SEEDS a side), 'not apart' (p >= ALPHA), 'descriptive' (fewer than MIN_SEEDS on a
    side: no test result is called a difference; `direction` still says where a's mean lies),
    'untested' (fewer than 2 values on a side: no interval)."""
    mean_a: float
    mean_b: float
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    n_a: int
    n_b: int
    p: float
    test: str  # 'exact permutation' | 'Welch t' | 'none'
    effect: float  # Hedges' g, or the ratio of geometric means when log
    effect_name: str
    log: bool
    direction: str  # 'lower' | 'higher' | 'equal': where a's mean lies, whatever the test says
    verdict: str

    @property
    def apart(self) -> bool:
        return self.verdict in ("lower", "higher")

    def sentence(self, name_a: str, name_b: str, lower: str = "better") -> str:
        """One clause of prose: which is `lower` (the word for a lower value, e.g. 'better',
        'more stable'), with means, intervals, seeds, the test and the effect size."""
        higher = _OPPOSITE.get(lower, f"not {lower}")
        mean = "geometric mean" if self.log else "mean"
        nums = (f"{fmt((self.mean_a, *self.ci_a))} vs {fmt((self.mean_b, *self.ci_b))}, {mean} [95 % t-interval] "
                f"over {self.n_a} and {self.n_b} seeds")
        if self.verdict == "untested":
            return f"{name_a} {self.mean_a:.3g} vs {name_b} {self.mean_b:.3g} (under 2 seeds on a side: no interval, not compared)"
        p, effect = f"{self.test} p = {self.p:.2g}", f"{self.effect_name} {self.effect:.3g}"
        word = {"lower": lower, "higher": higher}.get(self.direction)
        if self.verdict == "descriptive":
            where = f"{name_a}'s {mean} is {word} than {name_b}'s" if word else f"{name_a} and {name_b} have equal {mean}s"
            return (f"descriptive only ({min(self.n_a, self.n_b)} seeds on a side, fewer than {MIN_SEEDS}): {where} "
                    f"({nums}; {p}, {effect})")
        if self.verdict == "not apart":
            return f"{name_a} and {name_b} are **not apart** ({nums}; {p} ≥ {ALPHA}, {effect})"
        return f"{name_a} is **{word}** than {name_b} ({nums}; {p} < {ALPHA}: apart, {effect})"


def compare(a, b, log: bool = False, level: float = LEVEL) -> Comparison:
    """Compare per-seed values `a` and `b` (NaNs dropped). log=True for errors and ratios: intervals,
    test and effect on log values (geometric means, ratio of geometric means). The test is the exact
    permutation test while it has at most MAX_SPLITS splits, Welch's t-test beyond."""
    if isinstance(a, str) or isinstance(b, str):
        raise TypeError("compare(a, b) takes per-seed values; for a sentence use compare(a, b).sentence(name_a, name_b)")
    va, vb = _clean(a, log), _clean(b, log)
    ma, la, ha = seed_interval(a, level, log)
    mb, lb, hb = seed_interval(b, level, log)
    na, nb = int(va.size), int(vb.size)
    diff = float(va.mean() - vb.mean()) if na and nb else float("nan")
    direction = "lower" if diff < 0 else "higher" if diff > 0 else "equal"
    if min(na, nb) < 2:
        return Comparison(ma, mb, (la, ha), (lb, hb), na, nb, float("nan"), "none", float("nan"),
                          "ratio of geometric means" if log else "Hedges' g", log, direction, "untested")
    if n_splits(na, nb) <= MAX_SPLITS:
        p, test = permutation_p(va, vb), "exact permutation"
    else:
        p, test = welch(va, vb)[2], "Welch t"
    effect, effect_name = (geo_ratio(a, b), "ratio of geometric means") if log else (hedges_g(va, vb), "Hedges' g")
    if min(na, nb) < MIN_SEEDS:
        verdict = "descriptive"
    elif p < ALPHA and direction != "equal":
        verdict = direction
    else:
        verdict = "not apart"
    return Comparison(ma, mb, (la, ha), (lb, hb), na, nb, p, test, effect, effect_name, log, direction, verdict)

