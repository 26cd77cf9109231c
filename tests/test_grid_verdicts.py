"""The block x task grid's verdicts (lib/analysis/grid.py) on hand-made per-seed tables: the ceiling
decides "not learned", censored samples-to-solve never reads as a value, looping is compared only
where a cell learned and only called apart at >= 5 seeds, parameter efficiency is per parameter or
samples-to-solve, and the zoology anchor's label follows the evidence."""
import math

import pandas as pd
import pytest

from lib.analysis import grid as verdicts
from lib.analysis import labels
from lib.analysis.solve import SolveTime


def rows(task, body, looped, scores, solved_at=None, ceiling=0.25, params=20_000, stop="converged", cap=10_000):
    """Per-seed rows of one cell; solved_at: per seed the samples-to-solve (None: censored at `cap`)."""
    solved_at = solved_at or [None] * len(scores)
    return [{"task": task, "difficulty": "easy", "body": body, "looped": looped, "seed": i, "score": s, "params": params, "lr": 1e-3,
             "ceiling": ceiling, "threshold": ceiling + 0.9 * (1 - ceiling), "solved": n is not None,
             "samples_to_solve": n if n is not None else math.nan, "censored_at": math.nan if n is not None else cap,
             "stop_reason": stop} for i, (s, n) in enumerate(zip(scores, solved_at))]


def test_a_cell_at_its_ceiling_is_not_learned_and_its_censored_solve_time_is_a_bound():
    table = pd.DataFrame(rows("mqar", "conv", False, [0.25, 0.24, 0.26]))
    (v,) = verdicts.cells(table)
    assert v.label == verdicts.NOT_LEARNED and not v.learned  # mean 0.25 = the ceiling
    assert str(v.solve) == "> 10,000" and v.solve.solved == 0
    frame = verdicts.cell_frame([v])
    assert frame.loc[0, "samples-to-solve"] == "> 10,000" and frame.loc[0, "learned"] == "not learned"
    above = verdicts.cells(pd.DataFrame(rows("mqar", "conv", False, [0.3, 0.31, 0.29])))[0]
    assert above.label == verdicts.LEARNING and above.learned


def test_solved_cell_with_one_censored_seed_keeps_the_censoring():
    table = pd.DataFrame(rows("mqar", "attention", False, [1.0, 1.0, 0.9], solved_at=[3000, 5000, None], stop="max_steps"))
    (v,) = verdicts.cells(table)
    assert v.solve.solved == 2 and str(v.solve) == "5,000"  # the lower median of 3000, 5000, > 10000
    assert not v.finished and "max_steps ×3" == v.stops


def looped_vs_plain(looped_scores, plain_scores, **kw):
    table = pd.DataFrame(rows("flip", "ssd", True, looped_scores, **kw) + rows("flip", "ssd", False, plain_scores, **kw))
    return verdicts.looping(table, verdicts.cells(table))[0]


def test_looping_is_not_compared_when_neither_cell_learned():
    v = looped_vs_plain([0.2, 0.21, 0.22, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1, 0.1])
    assert v.label == "not compared" and v.comparison is None and "neither learned" in v.reason


def test_looping_helps_or_hurts_only_apart_at_five_seeds():
    helps = looped_vs_plain([0.8, 0.82, 0.84, 0.86, 0.88], [0.3, 0.32, 0.34, 0.36, 0.38])
    assert helps.label == "helps" and helps.comparison.p < 0.05 and helps.measure == "score"
    hurts = looped_vs_plain([0.3, 0.32, 0.34, 0.36, 0.38], [0.8, 0.82, 0.84, 0.86, 0.88])
    assert hurts.label == "hurts"
    few = looped_vs_plain([0.8, 0.82, 0.84], [0.3, 0.32, 0.34])
    assert few.label == "descriptive" and "descriptive only" in few.reason  # 3 vs 3: no exact test can say apart


def test_when_both_cells_solve_looping_is_judged_by_samples_to_solve():
    table = pd.DataFrame(rows("flip", "ssd", True, [1.0] * 5, solved_at=[1000, 1100, 1200, 1300, 1400])
                         + rows("flip", "ssd", False, [1.0] * 5, solved_at=[4000, 4400, 4800, 5200, 5600]))
    v = verdicts.looping(table, verdicts.cells(table))[0]
    assert v.measure == "samples-to-solve" and v.label == "helps"  # fewer samples: looping helps


def test_parameter_efficiency_is_samples_to_solve_where_cells_solved():
    table = pd.DataFrame(rows("mqar", "attention", False, [1.0] * 5, solved_at=[2000, 2100, 2200, 2300, 2400])
                         + rows("mqar", "hybrid", False, [1.0] * 5, solved_at=[8000, 8100, 8200, 8300, 8400])
                         + rows("mqar", "conv", False, [0.3] * 5))
    (e,) = verdicts.efficiency(table, verdicts.cells(table))
    assert e.measure == "samples-to-solve at equal parameters" and e.best == "attention" and e.value == 2200
    assert not e.descriptive and e.ties == () and "apart from every other cell" in e.reason


def test_parameter_efficiency_otherwise_is_the_gain_per_parameter_not_the_top_score():
    table = pd.DataFrame(rows("linear", "attention", False, [0.6] * 3, ceiling=0.0, params=21_000)
                         + rows("linear", "mamba", False, [0.58] * 3, ceiling=0.0, params=19_000))
    (e,) = verdicts.efficiency(table, verdicts.cells(table))
    assert e.measure == "score above the ceiling per 1k parameters" and e.best == "mamba"  # 0.58/19k > 0.6/21k
    assert e.value == pytest.approx(0.58 / 19) and e.descriptive
    none = pd.DataFrame(rows("linear", "attention", False, [0.0] * 3, ceiling=0.0))
    assert verdicts.efficiency(none, verdicts.cells(none))[0].best is None


def test_choose_lr_prefers_the_fastest_solver_then_the_best_score():
    solved = lambda n: SolveTime(True, n, None)
    censored = SolveTime(False, None, 5000)
    assert verdicts.choose_lr({1e-3: (1.0, solved(4000)), 1e-2: (0.99, solved(2000)), 1e-4: (0.3, censored)}) == 1e-2
    assert verdicts.choose_lr({1e-3: (0.5, censored), 1e-2: (0.7, censored), 1e-4: (0.3, censored)}) == 1e-2
    assert verdicts.choose_lr({1e-3: (0.5, censored), 1e-2: (0.5, censored)}) == 1e-3  # a tie: the smaller lr


@pytest.mark.parametrize("seeds,solved,stop,label", [
    (3, [1000] * 3, "converged", labels.NOT_AT_BUDGET),  # every seed solved, but fewer than 5 seeds: descriptive
    (5, [1000] * 5, "converged", labels.REPRODUCED),
    (5, [None] * 5, "converged", labels.CONTRADICTED),  # finished runs, none solved
    (5, [None] * 5, "max_steps", labels.NOT_AT_BUDGET),  # the cap stopped them: not a contradiction
    (5, [1000, 1000, 1000, None, None], "converged", labels.NOT_AT_BUDGET),  # mixed: undecided
])
def test_zoology_anchor_label_follows_the_evidence(seeds, solved, stop, label):
    scores = [1.0 if n else 0.3 for n in solved]
    table = pd.DataFrame(rows("mqar", "attention", False, scores, solved_at=solved, stop=stop))
    v = verdicts.zoology_mqar(verdicts.cells(table), "≤ 10,000 sequences per run")
    assert v.label == label and v.n_seeds == seeds and "zoology's: 6.4M sequences" in v.reason and "≤ 10,000" in v.reason


def test_zoology_anchor_is_untested_without_an_attention_mqar_cell():
    table = pd.DataFrame(rows("flip", "attention", False, [1.0] * 3))
    assert verdicts.zoology_mqar(verdicts.cells(table)).label == labels.UNTESTED


def test_stopping_separates_learned_plateau_and_capped_cells_and_render_names_them():
    table = pd.DataFrame(rows("mqar", "attention", False, [1.0] * 3, solved_at=[100] * 3)
                         + rows("mqar", "conv", False, [0.25] * 3)
                         + rows("mqar", "ssd", False, [0.5] * 3, stop="max_steps")
                         + rows("mqar", "ssd", True, [0.6] * 3, stop="max_steps"))
    cs = verdicts.cells(table)
    st = verdicts.stopping(cs)
    assert st.finished_learned == ("mqar: attention",) and st.plateau == ("mqar: conv",)
    assert st.capped == ("mqar: ssd", "mqar: ssd (looped)")
    text = verdicts.render(cs, verdicts.looping(table, cs), verdicts.efficiency(table, cs), verdicts.zoology_mqar(cs))
    assert "1/4 cells stopped on their plateau rule" in text and "lower bounds: mqar: ssd, mqar: ssd (looped)" in text
    assert "**not reproduced at this budget** — attention solves MQAR" in text
    assert "descriptive: ssd" in text  # 3 seeds a side


def test_anchors_put_their_budget_beside_ours():
    table = pd.DataFrame(rows("mqar", "attention", False, [1.0] * 3, solved_at=[100] * 3))
    frame = verdicts.anchors(verdicts.cells(table), {"mqar": "≤ 64,000 sequences, 4 lrs, 3 seeds"})
    row = frame[frame.task == "mqar"].iloc[0]
    assert "6.4M" in row["their budget"] and row["our budget"].startswith("≤ 64,000")
    assert frame[frame.task == "selective_copy"].iloc[0]["our budget"] == "not in this grid"
