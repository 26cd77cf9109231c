"""The findings helpers on hand-made tables: one bootstrap, one compare, the looped family's verdicts."""
import numpy as np
import pandas as pd
import pytest

from lib.analysis import looped as verdicts
from lib.analysis.stats import bootstrap, compare, reference_check, seed_interval, verdict
from lib.analysis.thinker import copy_claim


def test_seed_interval_covers_the_mean_and_has_no_spread_with_one_seed():
    m, lo, hi = seed_interval([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and lo < 2.5 < hi and lo >= 1.0 and hi <= 4.0
    assert seed_interval([0.3]) == (0.3, 0.3, 0.3)
    assert seed_interval([0.3, float("nan")]) == (0.3, 0.3, 0.3)  # NaNs dropped
    mean, lo, hi = bootstrap(np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]]))  # per column
    assert mean.tolist() == [2.0, 10.0] and lo[1] == hi[1] == 10.0 and lo[0] < 2.0 < hi[0]


def test_compare_says_apart_overlapping_or_untested():
    low, high, mid = (0.1, 0.05, 0.15), (0.5, 0.4, 0.6), (0.12, 0.08, 0.45)
    assert verdict(low, high) == "lower" and verdict(high, low) == "higher"
    assert verdict(low, mid) == "not distinguishable"
    assert verdict((0.1, 0.1, 0.1), high) == "untested"
    assert "**better**" in compare("A", low, "B", high) and "intervals apart" in compare("A", low, "B", high)
    assert "**not distinguishable**" in compare("A", low, "B", mid)
    assert "one seed" in compare("A", (0.1, 0.1, 0.1), "B", high)
    assert reference_check(low, high, expected="lower") == "reproduced"
    assert reference_check(high, low, expected="lower") == "contradicted"
    assert reference_check(low, mid, expected="lower") == "not reproduced (intervals overlap)"


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
    assert t.loc["diverges", "ratio"] == pytest.approx(np.mean([10, 25 / 3, 12]))
    assert verdicts.reference_word("did not learn", "stays flat") == "untested"
    assert verdicts.reference_word("diverges", "stays flat") == "contradicted"
    assert verdicts.reference_word("drifts", "diverges").startswith("inconclusive")
    line = verdicts.target_line(t.reset_index())
    assert "met by 2/2" in line  # flat (b = 10) and tf, both <= 0.03


def test_curve_shape_finds_a_rise_after_the_minimum():
    n = pd.Series(range(8))
    assert verdicts.curve_shape(n, pd.Series([1.0, 0.5, 0.3, 0.2, 0.1, 0.08, 0.05, 0.05]))["shape"] == "monotone"
    bumpy = verdicts.curve_shape(n, pd.Series([1.0, 0.5, 0.1, 0.08, 0.2, 0.3, 0.1, 0.05]))
    assert bumpy["shape"] == "non-monotone" and bumpy["rise at N"] == 5 and bumpy["largest rise"] == pytest.approx(0.3 / 0.08)


def test_copy_claim_reports_overlap_as_not_distinguishable():
    final = pd.DataFrame({"curriculum": ["none"] * 3 + ["uniform"] * 3, "seed": [0, 1, 2] * 2,
                          "val_token_acc": [0.90, 0.95, 1.0, 0.92, 0.97, 1.0]})
    history = final.assign(step=100)
    lines = copy_claim(final, history, ["none", "uniform"], length=20, steps=100, batch=64)
    text = "\n".join(lines)
    assert "not distinguishable" in text and "not reproduced (intervals overlap)" in text
    assert "**missed**" in text  # 1/3 uniform seeds at 1.000


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


def test_small_lm_results_interpolate_equal_tokens_and_check_both_reference_rows():
    import pandas as pd

    from lib.studies import lm

    rows = []
    for arch, slope, seeds_bpc in (("mixer", 1.0, (0.50, 0.52)), ("gpt", 0.5, (0.40, 0.41))):
        for seed, final in enumerate(seeds_bpc):
            for step, tokens in ((0, 0), (10, 100), (20, 200)):
                bpc = {0: 2.0, 10: 2.0 - slope, 20: final}[step]
                rows.append({"run": f"{arch}-x", "arch": arch, "d_model": 64, "params": 1000, "seed": seed, "step": step,
                             "tokens": tokens if arch == "gpt" else tokens * 2, "val_bpc": bpc, "val_loss": bpc,
                             "train_minutes": step / 10, "stop_reason": "budget"})
    history = pd.DataFrame(rows)

    class Task:
        floor_bpc = 0.1

        def stats(self):
            return {"unigram_bpc": 2.0}

    res = lm.results(history, Task()).set_index("arch")
    # common tokens = 200 (gpt's final); the mixer reached 200 tokens at its step 10: bpc 1.0, read by interpolation
    assert res.loc["mixer", "bpc_equal_tokens"] == 1.0 and res.loc["gpt", "bpc_equal_tokens"] == 0.405
    text = lm.findings(res.reset_index(), Task(), pd.DataFrame({"context": [8], "run": ["mixer-x"], "memory_mb": [1.0]}))
    assert "d = 512" in text and "**contradicted**" in text and "**reproduced**" in text  # gpt ahead: the d=256 row holds
    assert "mixer is **worse** than gpt" in text
