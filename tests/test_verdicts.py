"""The findings helpers on hand-made tables: seed intervals, the reference-first labels, the looped family's verdicts."""
import numpy as np
import pandas as pd
import pytest

from lib.analysis import labels, reference
from lib.analysis import looped as verdicts
from lib.analysis.stats import bootstrap, compare, seed_interval


def test_seed_interval_covers_the_mean_and_has_no_spread_with_one_seed():
    m, lo, hi = seed_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2  # t(0.975, 3) * sd / sqrt(4)
    assert m == 2.5 and (lo, hi) == pytest.approx((2.5 - half, 2.5 + half))
    assert seed_interval([0.3]) == (0.3, 0.3, 0.3)
    assert seed_interval([0.3, float("nan")]) == (0.3, 0.3, 0.3)  # NaNs dropped
    mean, lo, hi = bootstrap(np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]]))  # per column
    assert mean.tolist() == [2.0, 10.0] and lo[1] == hi[1] == 10.0 and lo[0] < 2.0 < hi[0]


def test_label_follows_from_the_evidence():
    d = labels.derive
    assert d(True, 0, True, True)[0] == labels.UNTESTED  # no runs
    assert d(False, 5, True, False)[0] == labels.NOT_COMPARABLE  # another metric or setup
    assert d(False, 3, True, True)[0] == labels.NOT_AT_BUDGET  # fewer than 5 seeds: descriptive
    assert d(True, 3, True, True)[0] == labels.NOT_AT_BUDGET
    assert d(True, 5, False, True)[0] == labels.REPRODUCED
    assert d(None, 5, True, True)[0] == labels.NOT_AT_BUDGET  # undecided
    assert d(False, 5, False, True)[0] == labels.NOT_AT_BUDGET  # against, but unfinished
    assert d(False, 5, True, True)[0] == labels.CONTRADICTED  # only here
    for holds in (True, False, None):
        for n in (0, 1, 4, 5, 10):
            for done in (True, False):
                for comparable in (True, False):
                    label, reason = d(holds, n, done, comparable)
                    assert label in labels.LABELS and reason
                    assert (label == labels.CONTRADICTED) == (holds is False and n >= 5 and done and comparable)


def test_an_absolute_threshold_is_judged_on_the_interval():
    t = labels.Threshold("error past b, at most", 0.01, "SE/d²", "looped_transformers.md §5a")
    assert "looped_transformers.md §5a" in str(t) and "0.01 SE/d²" in str(t)
    assert labels.against((0.005, 0.004, 0.006), t, "below") is True
    assert labels.against((0.05, 0.04, 0.06), t, "below") is False
    assert labels.against((0.01, 0.005, 0.02), t, "below") is None  # straddles
    assert labels.against((0.05, 0.04, 0.06), t, "above") is True
    low = [0.004, 0.005, 0.006, 0.005, 0.0045]
    kw = dict(ref_metric="worst SE/d² past b", ref_horizon="past b")
    assert labels.threshold_verdict("stays low", low, t, "below", finished=False, **kw).label == labels.REPRODUCED
    high = [0.04, 0.05, 0.06, 0.05, 0.045]
    assert labels.threshold_verdict("stays low", high, t, "below", finished=False, **kw).label == labels.NOT_AT_BUDGET
    v = labels.threshold_verdict("stays low", high, t, "below", finished=True, **kw)
    assert v.label == labels.CONTRADICTED and v.n_seeds == 5 and v.ref_value == "≤ 0.01 SE/d²"
    assert v.interval[0] < v.ours < v.interval[1] and v.ours == pytest.approx(seed_interval(high, log=True)[0])
    assert labels.threshold_verdict("stays low", high[:3], t, "below", finished=True, **kw).label == labels.NOT_AT_BUDGET
    assert labels.threshold_verdict("stays low", [], t, "below", finished=True, **kw).label == labels.UNTESTED
    assert labels.sentence(v).startswith("**contradicted**")


def test_a_comparison_claim_needs_five_seeds_and_p_below_005():
    low, high = [0.10, 0.11, 0.12, 0.13, 0.14], [0.20, 0.21, 0.22, 0.23, 0.24]
    kw = dict(ref_metric="error", ref_horizon="at b", ref_value="0.0014 vs 0.0067")
    judge = lambda a, b, done=True: labels.comparison_verdict("a below b", compare(a, b), "lower", finished=done, **kw).label
    assert judge(low, high) == labels.REPRODUCED
    assert judge(high, low) == labels.CONTRADICTED
    assert judge(high, low, done=False) == labels.NOT_AT_BUDGET
    assert judge(low, [0.10, 0.14, 0.12, 0.11, 0.15]) == labels.NOT_AT_BUDGET  # not apart
    assert judge(high[:3], low[:3]) == labels.NOT_AT_BUDGET  # 3 seeds a side: descriptive
    assert judge([0.1], low) == labels.NOT_AT_BUDGET  # one seed on a side: runs exist, no interval


def test_finished_means_every_seed_stopped_on_its_plateau_rule():
    h = pd.DataFrame({"run": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "step": [10, 10, 10, 10],
                      "stop_reason": ["converged", "converged", "converged", "max_steps"]})
    assert labels.finished(h, ["a"]) and not labels.finished(h) and not labels.finished(h, ["c"])
    assert not labels.finished(h.drop(columns="stop_reason"))


def test_the_looped_thresholds_are_defined_once_with_sources():
    assert verdicts.LEARNED_MAX == reference.LEARNED.value and verdicts.FLAT_MAX == reference.FLAT.value
    assert verdicts.DIVERGES_MIN == reference.DIVERGES.value and verdicts.RISE == reference.RISE.value
    assert reference.PAST_B_STAYS.value == 0.01 and reference.PAST_B_STAYS.unit == "SE/d²"
    for t in vars(reference).values():
        if isinstance(t, labels.Threshold):
            assert t.source.startswith(("project", "looped_transformers.md §")), t


def errors_table(run, b, per_seed_at_b, per_seed_worst, iters_max=None):
    """A hand-made error table: error at b and one worse point past b, at k = 3."""
    rows = []
    for seed, (e_b, e_w) in enumerate(zip(per_seed_at_b, per_seed_worst)):
        rows.append({"run": run, "seed": seed, "b": b, "iters": b, "k": 3, "error": e_b})
        if b > 1:
            rows.append({"run": run, "seed": seed, "b": b, "iters": iters_max or 10 * b, "k": 3, "error": e_w})
    return pd.DataFrame(rows)


def test_stability_table_judges_only_models_that_learned():
    errors = pd.concat([
        errors_table("flat", 10, [0.01, 0.012, 0.011], [0.011, 0.012, 0.012]),
        errors_table("diverges", 5, [0.02, 0.03, 0.025], [0.2, 0.25, 0.3]),
        errors_table("unlearned", 5, [0.27, 0.3, 0.35], [0.28, 0.3, 0.36]),  # ratio ~1 but never learned
        errors_table("tf", 1, [0.02, 0.02, 0.03], [0, 0, 0]),
    ], ignore_index=True)
    t = verdicts.stability_table(errors, k=3).set_index("run")
    assert t.loc["flat", "verdict"] == "stays flat" and t.loc["diverges", "verdict"] == "diverges"
    assert t.loc["unlearned", "verdict"] == "did not learn" and not t.loc["unlearned", "learned"]
    assert t.loc["tf", "verdict"] == "not looped"
    assert t.loc["diverges", "ratio"] == pytest.approx((10 * 25 / 3 * 12) ** (1 / 3))  # geometric mean over seeds
    assert t.loc["flat", "error at b"] == pytest.approx((0.01 * 0.012 * 0.011) ** (1 / 3))
    assert verdicts.reference_word("did not learn", "stays flat", 5, True) == labels.NOT_AT_BUDGET
    assert verdicts.reference_word("not looped", "stays flat", 5, True) == labels.UNTESTED
    assert verdicts.reference_word("diverges", "stays flat", 5, True) == labels.CONTRADICTED
    assert verdicts.reference_word("diverges", "stays flat", 5, False) == labels.NOT_AT_BUDGET  # unfinished
    assert verdicts.reference_word("diverges", "stays flat", 3, True) == labels.NOT_AT_BUDGET  # 3 seeds
    assert verdicts.reference_word("drifts", "diverges", 5, True) == labels.NOT_AT_BUDGET
    assert verdicts.reference_word("stays flat", "stays flat", 5, False) == labels.REPRODUCED
    line = verdicts.target_line(t.reset_index())
    assert "met by 2/2" in line  # flat (b = 10) and tf, both <= 0.03


def test_the_past_b_criterion_is_absolute_not_a_ratio():
    # a large ratio over a tiny error at b still stays below the card's 0.01 SE/d²: reproduced, not contradicted
    at_b, worst = [2e-4, 3e-4, 2.5e-4, 2e-4, 3e-4], [0.04, 0.06, 0.05, 0.03, 0.05]  # SE/E[y²], d = 10
    seeds = verdicts.stability_seeds(errors_table("b10", 10, at_b, worst), k=3)
    assert verdicts.stability_table(errors_table("b10", 10, at_b, worst), k=3)["verdict"].item() == "diverges"
    v = verdicts.past_b_verdict(seeds, "b10", n_dims=10, finished=True)
    assert v.label == labels.REPRODUCED and v.ours == pytest.approx(np.exp(np.mean(np.log(np.array(worst) / 10))))
    assert verdicts.past_b_verdict(seeds, "b10", n_dims=1, finished=True).label == labels.CONTRADICTED  # 0.05 > 0.01
    assert verdicts.past_b_verdict(seeds, "b10", n_dims=1, finished=False).label == labels.NOT_AT_BUDGET


def test_curve_shape_finds_a_rise_after_the_minimum():
    n = pd.Series(range(8))
    assert verdicts.curve_shape(n, pd.Series([1.0, 0.5, 0.3, 0.2, 0.1, 0.08, 0.05, 0.05]))["shape"] == "monotone"
    bumpy = verdicts.curve_shape(n, pd.Series([1.0, 0.5, 0.1, 0.08, 0.2, 0.3, 0.1, 0.05]))
    assert bumpy["shape"] == "non-monotone" and bumpy["rise at N"] == 5 and bumpy["largest rise"] == pytest.approx(0.3 / 0.08)


def test_a_missed_target_says_whether_the_cap_or_a_plateau_stopped_it():
    stab = pd.DataFrame([{"run": "falling", "b": 10, "error at b": 0.07}, {"run": "flat", "b": 1, "error at b": 0.2}])
    rows = [{"run": "falling", "seed": 0, "step": s, "val_error": 0.5 * 0.8 ** i, "stop_reason": "max_steps"} for i, s in enumerate(range(0, 1000, 100))]
    rows += [{"run": "flat", "seed": 0, "step": s, "val_error": 0.2, "stop_reason": "converged"} for s in range(0, 1000, 100)]
    line = verdicts.target_line(stab, history=pd.DataFrame(rows))
    assert "met by 0/2" in line and "the step cap, not a plateau" in line and "stopped by converged: on a plateau" in line
    assert "the model, not the training" not in line  # no peer with the same b met the target
    stab.loc[2] = {"run": "deep", "b": 1, "error at b": 0.01}
    rows += [{"run": "deep", "seed": 0, "step": s, "val_error": 0.01, "stop_reason": "converged"} for s in range(0, 1000, 100)]
    line = verdicts.target_line(stab, history=pd.DataFrame(rows))
    assert "met by 1/3" in line and "on a plateau, where `deep` (0.01) reached the target with the same training" in line


def test_unfinished_runs_are_those_the_cap_stopped_while_still_falling():
    rows = [{"run": "falling", "seed": 0, "step": s, "val_error": 0.5 * 0.8 ** i, "stop_reason": "max_steps"}
            for i, s in enumerate(range(0, 1000, 100))]
    rows += [{"run": "flat", "seed": 0, "step": s, "val_error": 0.2, "stop_reason": "max_steps"} for s in range(0, 1000, 100)]
    rows += [{"run": "conv", "seed": 0, "step": s, "val_error": 0.5 * 0.8 ** i, "stop_reason": "converged"}
             for i, s in enumerate(range(0, 1000, 100))]
    line = verdicts.unfinished_line(pd.DataFrame(rows))
    assert "`falling` (−67% at step 900)" in line and "`flat`" not in line and "`conv`" not in line
    assert verdicts.unfinished_line(pd.DataFrame(rows), runs=["flat"]) is None
