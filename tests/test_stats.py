"""lib.analysis.stats: t quantiles against a table, coverage of the seed interval, the tests and the comparison."""
import math
from itertools import combinations

import numpy as np
import pytest

from lib.analysis import stats


@pytest.mark.parametrize("df, q975", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (9, 2.262),
                                      (10, 2.228), (20, 2.086), (30, 2.042), (120, 1.980)])
def test_t_quantile_matches_the_printed_table(df, q975):
    assert stats.t_quantile(0.975, df) == pytest.approx(q975, abs=1e-3)
    assert stats.t_quantile(0.025, df) == pytest.approx(-q975, abs=1e-3)
    assert stats.t_cdf(stats.t_quantile(0.9, df + 0.5), df + 0.5) == pytest.approx(0.9, abs=1e-10)  # non-integer df (Welch)


def test_t_cdf_has_closed_forms_at_one_and_two_degrees_of_freedom():
    for t in (-3.0, -0.5, 0.0, 0.7, 4.0):
        assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
        assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def coverage(interval, n: int, draws: int = 2000, seed: int = 0) -> float:
    """Fraction of `draws` normal samples of size n (mean 3, sd 2) whose interval covers 3."""
    x = np.random.default_rng(seed).normal(3.0, 2.0, (draws, n))
    return float(np.mean([lo <= 3.0 <= hi for _, lo, hi in map(interval, x)]))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_seed_interval_covers_the_true_mean_95_percent_of_the_time(n):
    assert 0.93 <= coverage(stats.seed_interval, n) <= 0.97


def test_a_percentile_bootstrap_over_three_seeds_is_not_a_95_percent_interval():
    # why seed_interval is a t-interval: over 3 values the bootstrap covers ~75 %
    x = np.random.default_rng(0).normal(3.0, 2.0, (2000, 3))
    _, lo, hi = stats.bootstrap(x, axis=1)  # one interval per draw (the draws share resampling indices)
    assert np.mean((lo <= 3.0) & (3.0 <= hi)) < 0.85


def test_the_log_interval_is_the_back_transformed_interval_of_the_logs():
    v = np.array([0.01, 0.02, 0.05, 0.03])
    m, lo, hi = stats.seed_interval(v, log=True)
    lm, llo, lhi = stats.seed_interval(np.log(v))
    assert (m, lo, hi) == pytest.approx((math.exp(lm), math.exp(llo), math.exp(lhi)))
    assert m == pytest.approx(0.01 * 2 ** 0.25 * 5 ** 0.25 * 3 ** 0.25)  # the geometric mean
    assert m / lo == pytest.approx(hi / m)  # symmetric on the log scale
    assert 0 < lo < m < hi
    with pytest.raises(ValueError, match="> 0"):
        stats.seed_interval([0.1, 0.0], log=True)


def test_welch_t_and_df_match_a_hand_computation():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]
    # means 2.5 and 4; variances 5/3 and 4; squared standard errors 5/12 and 4/3
    se2a, se2b = 5 / 12, 4 / 3
    t, df, p = stats.welch(a, b)
    assert t == pytest.approx(-1.5 / math.sqrt(se2a + se2b))
    assert df == pytest.approx((se2a + se2b) ** 2 / (se2a ** 2 / 3 + se2b ** 2 / 2))
    assert p == pytest.approx(2 * stats.t_cdf(-abs(t), df))
    assert 0.2 < p < 0.4


def brute_force_p(a, b) -> float:
    """Two-sided permutation p by listing every relabelling of the pooled values, one at a time."""
    pooled, n = list(a) + list(b), len(a)
    obs = abs(np.mean(a) - np.mean(b))
    hits = total = 0
    for group in combinations(range(len(pooled)), n):
        x = [pooled[i] for i in group]
        y = [pooled[i] for i in range(len(pooled)) if i not in group]
        hits += abs(np.mean(x) - np.mean(y)) >= obs - 1e-12
        total += 1
    return hits / total


def test_the_permutation_test_equals_brute_force_enumeration():
    rng = np.random.default_rng(1)
    for na, nb in ((3, 4), (5, 5), (2, 6)):
        a, b = rng.normal(0, 1, na), rng.normal(0.8, 1, nb)
        assert stats.permutation_p(a, b) == pytest.approx(brute_force_p(a, b))
    assert stats.permutation_p([1, 2, 2], [2, 3, 3]) == pytest.approx(brute_force_p([1, 2, 2], [2, 3, 3]))  # ties


def test_three_seeds_a_side_can_never_be_apart():
    # the most extreme split of 3 vs 3 still has p = 2/20: 'apart' (p < 0.05) is impossible
    assert stats.permutation_p([1.0, 2.0, 3.0], [10.0, 11.0, 12.0]) == pytest.approx(0.1)
    c = stats.compare([1.0, 2.0, 3.0], [10.0, 11.0, 12.0])
    assert c.verdict == "descriptive" and not c.apart and c.p == pytest.approx(0.1) and c.direction == "lower"
    assert "descriptive only" in c.sentence("A", "B") and "fewer than 5" in c.sentence("A", "B")


def test_compare_says_apart_only_at_p_below_005_with_five_seeds_a_side():
    lo, hi = [0.10, 0.11, 0.12, 0.13, 0.14], [0.20, 0.21, 0.22, 0.23, 0.24]
    c = stats.compare(lo, hi)
    assert c.test == "exact permutation" and c.p == pytest.approx(2 / 252)
    assert c.verdict == "lower" and c.apart and c.n_a == c.n_b == 5
    assert c.effect < -5 and c.effect_name == "Hedges' g"
    assert stats.compare(hi, lo).verdict == "higher"
    assert "**better**" in c.sentence("A", "B") and "apart" in c.sentence("A", "B")
    mixed = stats.compare(lo, [0.10, 0.14, 0.12, 0.11, 0.15])
    assert mixed.verdict == "not apart" and mixed.p >= 0.05 and "**not apart**" in mixed.sentence("A", "B")
    assert stats.compare([0.1], hi).verdict == "untested"
    assert {c.verdict, mixed.verdict, stats.compare(lo[:3], hi[:3]).verdict} <= set(stats.VERDICTS)
    with pytest.raises(TypeError, match="per-seed values"):
        stats.compare("A", hi)


def test_compare_on_the_log_scale_reports_a_ratio_of_geometric_means():
    a, b = [0.01, 0.02, 0.04, 0.02, 0.01], [0.1, 0.2, 0.4, 0.2, 0.1]
    c = stats.compare(a, b, log=True)
    assert c.effect_name == "ratio of geometric means" and c.effect == pytest.approx(0.1)
    assert c.mean_a == pytest.approx(stats.seed_interval(a, log=True)[0])
    assert c.verdict == "lower" and "geometric mean" in c.sentence("A", "B")


def test_large_samples_use_welch():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 40), rng.normal(1, 1, 40)
    c = stats.compare(a, b)
    assert stats.n_splits(40, 40) > stats.MAX_SPLITS and c.test == "Welch t" and c.p == pytest.approx(stats.welch(a, b)[2])
    with pytest.raises(ValueError, match="MAX_SPLITS"):
        stats.permutation_p(a, b)


def test_hedges_g_matches_a_hand_computation():
    a, b = [1.0, 2.0, 3.0], [3.0, 4.0, 5.0]  # pooled sd 1, difference -2, correction 1 - 3/15
    assert stats.hedges_g(a, b) == pytest.approx(-2 * (1 - 3 / 15))
