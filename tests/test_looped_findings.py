"""The five looped notebooks' findings on hand-made tables: the classifications (our word, the
reference-first label), not the sentences."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lib.analysis import labels, reference
from lib.analysis import looped as verdicts
from lib.analysis import looped_findings as findings
from lib.studies.looped import REPORT_FIRST
from lib.viz import looped as figs

SEEDS = range(5)
SETTINGS = SimpleNamespace(points=4, n_dims=10, steps=100)  # k = 3 at the last position


def errors_of(run, b, at_b, worst=None, *, factor=4, k=3, **cols):
    """An error table of one run: per seed its error at b and (looped) one worse point at factor * b."""
    cols = {"layers": 1, "body": "gpt", "kind": "linear", "inject": "none", "params": 1000} | cols
    rows = []
    for seed, e in zip(SEEDS, at_b):
        rows.append({"run": run, "label": run, "seed": seed, "b": b, "iters": b, "k": k, "error": e, "looped": b > 1, **cols})
        if b > 1:
            rows.append({"run": run, "label": run, "seed": seed, "b": b, "iters": factor * b, "k": k, "error": worst[seed],
                         "looped": True, **cols})
    return pd.DataFrame(rows)


def history_of(runs, stop="converged", left=None):
    """A training history: each run's validation error 1.0 until the step `left[run][seed]` (default 100), 0.1 after."""
    rows = []
    for run in runs:
        for seed in SEEDS:
            at = (left or {}).get(run, [100] * 5)[seed]
            rows += [{"run": run, "seed": seed, "step": s, "val_error": 1.0 if s < at else 0.1, "stop_reason": stop}
                     for s in range(0, 600, 100)]
    return pd.DataFrame(rows)


def jitter(value, spread=0.02):
    return [value * (1 + spread * i) for i in SEEDS]


def test_the_past_b_expectation_comes_from_the_reference(monkeypatch):
    assert reference.past_b_expected(5) == "diverges" and reference.past_b_expected(10) == "stays flat"
    errors = pd.concat([errors_of("tf", 1, jitter(0.02)), errors_of("b10", 10, jitter(0.01), jitter(0.2))])
    first = {f.subject: f for f in findings.vs_standard(history_of(["tf", "b10"]), errors, SETTINGS).of("stability")}
    assert first["b10"].verdict.ref_value == "stays flat"
    monkeypatch.setattr(reference, "STAYS_FLAT_FROM", labels.Threshold("b", 20, "loops", "looped_transformers.md §5a"))
    res = findings.vs_standard(history_of(["tf", "b10"]), errors, SETTINGS)
    assert res.of("stability")[0].verdict.ref_value == "diverges" and res.of("past b criterion") == []


def test_vs_standard_judges_each_looped_run_against_the_report():
    errors = pd.concat([errors_of("tf", 1, jitter(0.02)), errors_of("b5", 5, jitter(0.02), jitter(0.4)),
                        errors_of("b10", 10, jitter(0.01), jitter(0.011)), errors_of("b20", 20, jitter(0.01), jitter(0.3))])
    res = findings.vs_standard(history_of(["tf", "b5", "b10", "b20"]), errors, SETTINGS)
    assert res.of("learned")[0].ours == "all" and res.of("unfinished") == []
    stab = {f.subject: f for f in res.of("stability")}
    assert (stab["b5"].ours, stab["b5"].verdict.ref_value, stab["b5"].label) == ("diverges", "diverges", labels.REPRODUCED)
    assert (stab["b10"].ours, stab["b10"].verdict.ref_value, stab["b10"].label) == ("stays flat", "stays flat", labels.REPRODUCED)
    assert (stab["b20"].ours, stab["b20"].label) == ("diverges", labels.CONTRADICTED)  # finished runs, 5 seeds
    assert stab["b5"].verdict.ours == pytest.approx(20.0) and stab["b5"].verdict.interval[0] < 20 < stab["b5"].verdict.interval[1]
    past = {f.subject: f for f in res.of("past b criterion")}  # only b >= 10; worst / d against 0.01 SE/d²
    assert set(past) == {"b10", "b20"}
    assert (past["b10"].ours, past["b10"].label) == ("stays low", labels.REPRODUCED)
    assert (past["b20"].ours, past["b20"].label) == ("rises above", labels.CONTRADICTED)
    best = res.of("best pair")[0]
    assert best.facts["runs"] == ("b10", "tf") and best.ours == "lower"  # 5 seeds a side, fully apart
    assert res.of("target")[0].ours == "3/3"
    assert res.table.set_index("run").loc["b5", "ref units at b"] == pytest.approx(res.table.set_index("run").loc["b5", "error at b"] / 10)
    text = findings.render(res.findings)
    assert len(text.splitlines()) == len(res.findings) and text._repr_markdown_() == text


def test_unfinished_runs_are_not_contradicted():
    errors = pd.concat([errors_of("tf", 1, jitter(0.02)), errors_of("b20", 20, jitter(0.01), jitter(0.3))])
    res = findings.vs_standard(history_of(["tf", "b20"], stop="max_steps"), errors, SETTINGS)
    assert [f.label for f in res.of("stability")] == [labels.NOT_AT_BUDGET]
    assert res.of("past b criterion")[0].label == labels.NOT_AT_BUDGET


def masking_table(k=8, unmasked=0.01, report_curve=(0.9, 0.5, 0.4, 0.3, 0.3, 0.45, 0.5, 0.5)):
    """One looped run's masking errors at b (multiple 1): first-N and last-N fall monotonically to
    the unmasked error at N = k - 1 (first-N faster), the report's mask rises before its final drop
    at N = k, and masking only the query costs 0.5."""
    ctx = k - 1
    curves = {"first": [unmasked + (1 - unmasked) * (1 - n / ctx) ** 2 for n in range(k)],
              "last": [unmasked + (1 - unmasked) * (1 - n / ctx) for n in range(k)],
              REPORT_FIRST: [*report_curve, unmasked]}
    rows = []
    for seed in SEEDS:
        for where, errs in [*curves.items(), ("query only", {ctx: 0.5})]:
            for n, e in (errs.items() if isinstance(errs, dict) else enumerate(errs)):
                rows.append({"run": "m", "seed": seed, "b": 5, "where": where, "n_pairs": n, "multiple": 1, "iters": 5,
                             "error": e * (1 + 0.01 * seed)})
    return pd.DataFrame(rows)


def unmasked_of(error, k=8):
    return pd.DataFrame([{"run": "m", "seed": s, "b": 5, "iters": 5, "k": k - 1, "error": error} for s in SEEDS])


def test_masking_shapes_are_judged_against_the_reports_curves():
    res = findings.masking(history_of(["m"]), masking_table(), unmasked_of(0.01), k=8, steps=100)
    shapes = {f.facts["where"]: f for f in res.of("curve shape")}
    assert reference.MASKING_SHAPE == {"first": "non-monotone", "last": "monotone"}
    assert (shapes["first"].ours, shapes["first"].label) == ("monotone", labels.CONTRADICTED)
    assert (shapes["last"].ours, shapes["last"].label) == ("monotone", labels.REPRODUCED)
    assert (shapes[REPORT_FIRST].ours, shapes[REPORT_FIRST].label) == ("non-monotone", labels.REPRODUCED)  # judged as first-N
    assert shapes[REPORT_FIRST].facts["largest rise"] == pytest.approx(0.5 / 0.3)
    assert res.of("query control")[0].ours == "higher"
    assert len(res.of("rise from the query")) == 1  # ours monotone, the report's mask not: the query makes the rise
    drop = res.of("final drop")[0].facts
    assert drop["before"] == pytest.approx(0.5 * 1.02) and drop["after"] == pytest.approx(0.01 * 1.02)
    ends = res.of("equal ends")[0]  # keeping the first half is better than keeping the last: not "about equal"
    assert (ends.ours, ends.label, ends.facts["kept"]) == ("lower", labels.CONTRADICTED, 3)
    assert list(res.tables) == ["by N", "shapes"] and res.tables["by N"].shape == (8 + 1, 3)  # N = 0..8, one column per mask


def test_masking_of_a_model_that_did_not_learn_decides_nothing():
    res = findings.masking(history_of(["m"]), masking_table(), unmasked_of(0.5), k=8, steps=100)
    assert res.of("learned")[0].ours == "none"
    assert {f.label for f in res.of("curve shape")} == {labels.NOT_AT_BUDGET}


def test_equal_ends_reads_not_apart_as_the_reports_claim():
    table = masking_table()
    same = table["where"] == "last"
    table.loc[same, "error"] = table.loc[table["where"] == "first", "error"].to_numpy()  # last-N identical to first-N
    ends = findings.masking(history_of(["m"]), table, unmasked_of(0.01), k=8, steps=100).of("equal ends")[0]
    assert ends.ours == "not apart" and ends.label == labels.REPRODUCED


def test_deeper_bodies_are_judged_on_stability_and_the_plateau():
    errors = pd.concat([errors_of("L1", 5, jitter(0.02), jitter(0.4), layers=1), errors_of("L2", 5, jitter(0.02), jitter(0.022), layers=2)])
    left = {"L1": [100, 100, 200, 100, 200], "L2": [300, 400, 300, 400, 300]}
    res = findings.n_layers(history_of(["L1", "L2"], left=left), errors, SETTINGS, plateau_level=0.5)
    assert res.of("stability by depth")[0].facts["bodies"][0][:2] == (1, "diverges")
    stabler, later = res.of("deeper is stabler")[0], res.of("deeper leaves later")[0]
    assert (stabler.ours, stabler.label) == ("lower", labels.REPRODUCED)
    assert (later.ours, later.label) == ("higher", labels.REPRODUCED)
    table = res.table.set_index("run")
    assert table.loc["L2", "layers"] == 2 and table.loc["L1", "plateau left at step"] == pytest.approx(140)
    left["L2"][0] = 10_000  # one seed never left the plateau: no mean step for that run
    table = findings.n_layers(history_of(["L1", "L2"], left=left), errors, SETTINGS, plateau_level=0.5).table.set_index("run")
    assert np.isnan(table.loc["L2", "plateau left at step"])


def test_looped_ssms_are_compared_with_the_looped_transformer_only_when_both_learned():
    errors = pd.concat([errors_of("tf", 5, jitter(0.02), jitter(0.4)), errors_of("mamba", 5, jitter(0.05), jitter(0.06), body="mamba"),
                        errors_of("ssd", 5, jitter(0.5), jitter(0.6), body="ssd")])
    res = findings.mamba(history_of(["tf", "mamba", "ssd"]), errors, SETTINGS, iters_factor=4)
    ssm = res.of("ssm stability")[0]
    assert ssm.facts["body"] == "mamba" and (ssm.ours, ssm.label) == ("lower", labels.REPRODUCED)
    assert ssm.facts["error at b"].verdict == "higher"  # more stable, but worse at b
    assert [f.facts["body"] for f in res.of("ssm not compared")] == ["ssd"]
    assert res.table["ref units at b"].tolist() == pytest.approx((res.table["error at b"] / 10).tolist())


def lr_errors(plain, folded, lr):
    return pd.concat([errors_of(f"b5{s}", 5, at_b, [e * 10 for e in at_b], inject=i)
                      for s, i, at_b in (("", "none", plain), ("-folded", "folded", folded), ("-lr", "scalar", lr)) if at_b])


def test_the_lr_gain_is_judged_at_b_beside_the_folded_control():
    res = findings.loop_lr(history_of(["b5", "b5-folded", "b5-lr"]), lr_errors(jitter(0.03), jitter(0.025), jitter(0.015)),
                           SETTINGS, iters_factor=4, gaps=[1e-6])
    gain = res.of("lr gain")[0]
    assert (gain.ours, gain.label) == ("lower", labels.REPRODUCED)
    assert [(a, o, c.verdict) for a, o, c in gain.facts["also"]] == [("lr", "folded", "lower")]
    assert res.of("fold")[0].ours == "exact"
    assert res.table[["variant", "iters"]].values.tolist() == [["folded", "at b"], ["folded", "at 4b"], ["lr", "at b"], ["lr", "at 4b"],
                                                               ["plain", "at b"], ["plain", "at 4b"]]
    assert res.table.loc[(res.table.variant == "lr") & (res.table.iters == "at 4b"), "error"].item() == pytest.approx(
        np.exp(np.mean(np.log(np.array(jitter(0.15))))))


def test_learnable_lr_uses_the_one_learned_rule():
    # plain's geometric mean at b is below LEARNED_MAX, but one seed is above it: by the one rule
    # (every seed at most LEARNED_MAX) plain did not learn
    plain = [0.3, 0.1, 0.1, 0.1, 0.1]
    assert np.exp(np.mean(np.log(plain))) < verdicts.LEARNED_MAX < max(plain)
    res = findings.loop_lr(history_of(["b5", "b5-folded", "b5-lr"]), lr_errors(plain, jitter(0.02), jitter(0.015)), SETTINGS,
                           iters_factor=4, gaps=[1e-6])
    learned = res.of("learned")[0]
    assert learned.ours == "some" and learned.facts["not learned"] == ["b5"]


def test_learnable_lr_without_a_pair_and_with_an_inexact_fold():
    res = findings.loop_lr(history_of(["b5-folded", "b5-lr"]), lr_errors([], jitter(0.02), jitter(0.015)), SETTINGS, iters_factor=4,
                           gaps=[1e-6, 1e-3])
    assert [f.kind for f in res.findings[-2:]] == ["no pair", "fold"] and res.of("fold")[0].ours == "not exact"
    assert "not exact" in findings.render(res.of("fold"))


def test_state_findings_are_data():
    stab = pd.DataFrame([{"run": "a", "b": 10, "error at b": 0.07, "learned": True}, {"run": "t", "b": 1, "error at b": 0.01, "learned": False}])
    assert verdicts.learned(stab, 100).ours == "some" and verdicts.learned(stab, 100).facts["not learned"] == ["t"]
    rows = [{"run": "a", "seed": 0, "step": s, "val_error": 0.5 * 0.8 ** i, "stop_reason": "max_steps"} for i, s in enumerate(range(0, 1000, 100))]
    history = pd.DataFrame(rows)
    assert verdicts.unfinished(history).facts["runs"] == [("a", pytest.approx(1 - 0.8 ** 5), 900)]
    target = verdicts.target(stab, history=history)
    assert target.ours == "1/2" and target.facts["missed"][0]["run"] == "a" and not target.facts["missed"][0]["plateau"]
    assert verdicts.target(stab[stab.b == 5]).ours == "no such model"


def test_tidy_stacks_tables_under_their_names():
    out = findings.tidy(history=pd.DataFrame({"x": [1, 2]}), errors=pd.DataFrame({"y": [3]}))
    assert out["table"].tolist() == ["history", "history", "errors"] and out["y"].isna().sum() == 2


def test_standard_runs_are_levels_and_looped_runs_lines_past_b():
    errors = pd.concat([errors_of("tf", 1, jitter(0.02)), errors_of("b3", 3, jitter(0.02), jitter(0.1))])
    ax = figs.error_vs_iters(errors, k=3).axes[0]
    names = ax.get_legend_handles_labels()[1]
    assert "tf (no loop)" in names and "b3" in names and "tf" not in names
    assert any(list(line.get_xdata()) == [3, 3] for line in ax.get_lines())  # b = 3 dotted
