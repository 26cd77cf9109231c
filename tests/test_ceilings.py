"""Shortcut ceilings against exact enumeration and against their oracles on the validation set;
the solve threshold, the learned verdict, and samples-to-solve with censoring on scripted histories."""
import itertools
import math
import random
from collections import Counter

import pandas as pd
import pytest
import torch

from lib.analysis import ceilings
from lib.analysis.ceilings import CEILINGS, ORACLES, TRIVIAL, best_per_slot, expected_max_count, learned, solve_threshold
from lib.analysis.solve import SolveTime, samples_to_solve, summarize
from lib.studies.grid import TASKS
from lib.tasks.algo_sequence import AlgoSequence
from lib.tasks.algorithmic import AlgorithmicConfig, encode_addition, targets
from lib.tasks.recall import Recall, RecallConfig
from lib.tasks.regression import InContextRegression
from lib.tasks.selective_copy import SelectiveCopy, SelectiveCopyConfig


def near(estimate, exact, rows, sds=4.0):
    """|estimate - exact| within `sds` standard errors of a mean of `rows` Bernoulli(exact) rows."""
    return abs(estimate - exact) <= sds * math.sqrt(max(exact * (1 - exact), 0.01) / rows)


@pytest.mark.parametrize("n,k", [(1, 3), (4, 3), (5, 2), (3, 5), (6, 4), (7, 1)])
def test_expected_max_count_by_enumeration(n, k):
    exact = sum(max(Counter(s).values()) for s in itertools.product(range(k), repeat=n)) / k**n
    assert expected_max_count(n, k) == pytest.approx(exact, abs=1e-12)


def test_every_grid_task_has_a_ceiling_and_an_oracle():
    assert set(CEILINGS) == set(ORACLES) == set(TASKS)
    with pytest.raises(KeyError, match="known: "):
        ceilings.ceiling("parity", None)


def exact_per_slot(cases, strategies, constant_labels):
    """The exact per-slot best over equally likely (input, labels) cases."""
    slots = len(cases[0][1])
    best = 0.0
    for i in range(slots):
        scores = [sum(s(x)[i] == y[i] for x, y in cases) for s in strategies]
        scores += [sum(c == y[i] for _, y in cases) for c in constant_labels]
        best += max(scores) / len(cases)
    return best / slots


def test_mqar_ceiling_is_one_over_pairs_and_no_fixed_pair_beats_it():
    task = Recall(RecallConfig(kind="mqar", vocab=40, seq_len=32, pairs=4, val_size=4000))
    assert CEILINGS["mqar"](task) == 0.25
    assert near(ORACLES["mqar"](task), 0.25, 2000 * 4)


def test_induction_ceiling_by_enumeration_of_every_sequence():
    cfg = RecallConfig(kind="induction", vocab=4, seq_len=6)  # tokens 0..2, trigger 3
    N, trigger = cfg.seq_len, cfg.vocab - 1
    right = total = 0
    for p in range(N - 2):  # the first trigger, as sample_induction places it
        for ordinary in itertools.product(range(trigger), repeat=N - 1):
            x = list(ordinary) + [trigger]
            x[p] = trigger
            bag = [t for t in x if t != trigger]
            right += ceilings.mode(bag) == x[p + 1]
            total += 1
    # the token drawn at p is overwritten: every sequence is counted `trigger` times, so the ratio is exact
    assert CEILINGS["induction"](Recall(cfg)) == pytest.approx(right / total, abs=1e-12)
    task = Recall(RecallConfig(kind="induction", vocab=6, seq_len=8, val_size=4000))
    assert near(ORACLES["induction"](task), CEILINGS["induction"](task), 2000)


def test_selective_mamba_ceiling_against_its_oracle():
    task = Recall(RecallConfig(kind="selective", vocab=5, seq_len=12, pairs=3, val_size=4000))
    exact = ((2 * expected_max_count(3, 3) / 3) + 1) / 3  # order-free at slots 1, 2; copy-last at slot 3
    assert CEILINGS["selective_mamba"](task) == pytest.approx(exact)
    assert near(ORACLES["selective_mamba"](task), exact, 2000)


def test_selective_copy_ceiling_against_its_oracle():
    task = SelectiveCopy(SelectiveCopyConfig(n_items=3, area=8, alphabet="ABCD", val_size=4000))
    assert CEILINGS["selective_copy"](task) == pytest.approx((2 / 3 + 1) / 3)
    assert near(ORACLES["selective_copy"](task), (2 / 3 + 1) / 3, 2000)


def copy_family_cases(cfg):
    rows = [list(x) for x in itertools.product(range(1, cfg.V), repeat=cfg.length)]
    ys = targets(cfg.task, torch.tensor(rows), cfg.V).tolist()
    return list(zip(rows, ys))


@pytest.mark.parametrize("name", ["copy", "flip", "cumsum"])
def test_copy_family_ceiling_by_enumeration(name):
    cfg = AlgorithmicConfig(task=name, V=4, length=4, val_size=4000)
    cases = copy_family_cases(cfg)
    exact = exact_per_slot(cases, TRIVIAL[name](cfg), constant_labels=range(cfg.V))
    task = AlgoSequence(cfg)
    if name != "cumsum":
        assert CEILINGS[name](task) == pytest.approx(exact, abs=1e-12)
    assert near(ORACLES[name](task), exact, 2000)


def test_addition_ceiling_by_enumeration_and_its_pad_guess_is_never_wrong():
    cfg = AlgorithmicConfig(task="addition", base=2, limit=16, val_size=250)
    a, b = torch.arange(16).repeat_interleave(16), torch.arange(16).repeat(16)
    batch = encode_addition(cfg, a, b)
    cases = list(zip(batch.x.tolist(), batch.y.tolist()))
    guess = TRIVIAL["addition"](cfg)[0]
    assert all(y[i] == cfg.PAD for x, y in cases for i, g in enumerate(guess(x)) if g == cfg.PAD)
    exact = exact_per_slot(cases, TRIVIAL["addition"](cfg), constant_labels=range(cfg.vocab))
    assert abs(CEILINGS["addition"](AlgoSequence(cfg)) - exact) < 0.06


@pytest.mark.parametrize("kind,exact", [("linear", 0.0), ("noisy_linear", -0.25 / 4), ("sparse_linear", 0.0)])
def test_regression_ceiling_is_the_best_constant(kind, exact):
    extra = {"noise": 0.5} if kind == "noisy_linear" else {}
    task = InContextRegression.of(kind, n_dims=4, points=5, val_size=4000, **extra)
    assert CEILINGS[kind](task) == pytest.approx(exact)
    y2 = task.val.y[:, -1].double() ** 2 / task.cfg.normaliser(task.d)
    assert abs(ORACLES[kind](task) - exact) < 4 * float(y2.std()) / math.sqrt(4000)


def test_best_per_slot_scores_on_rows_it_did_not_choose_on():
    # labels are coin flips no strategy can predict: choosing the luckiest of many guesses on the
    # same rows would score well above 1/2; scored on the other half it stays near 1/2
    rng = random.Random(0)
    labels = [[rng.randrange(2)] for _ in range(2000)]
    inputs = [[rng.randrange(2) for _ in range(40)] for _ in range(2000)]
    strategies = [lambda x, j=j: [x[j]] for j in range(40)]
    assert abs(best_per_slot(inputs, labels, strategies) - 0.5) < 0.05


def test_solve_threshold_and_learned():
    assert solve_threshold(0.25) == pytest.approx(0.925) and solve_threshold(0.0, frac=0.5) == 0.5
    with pytest.raises(ValueError, match="frac"):
        solve_threshold(0.1, frac=0)
    assert learned(0.25, 0.25) == "not learned" and learned(0.2, 0.25) == "not learned"
    assert learned(0.5, 0.25) == "learning" and learned(0.93, 0.25) == "solved"
    assert learned(0.8, 0.25, threshold=0.8) == "solved"


HISTORY = [  # lib.train's rows: a training row without the metric, then evaluations
    {"step": 0, "samples": 0, "val_acc": 0.1},
    {"step": 5, "samples": 320, "train_loss": 2.0},
    {"step": 10, "samples": 640, "val_acc": 0.5},
    {"step": 20, "samples": 1280, "val_acc": 0.95},
    {"step": 30, "samples": 1920, "val_acc": 0.99},
]


def test_samples_to_solve_first_crossing_and_censoring():
    assert samples_to_solve(HISTORY, 0.9, "val_acc") == SolveTime(True, 1280, None)
    assert samples_to_solve(list(reversed(HISTORY)), 0.9, "val_acc").samples == 1280  # order by samples
    never = samples_to_solve(HISTORY, 0.999, "val_acc")
    assert never == SolveTime(False, None, 1920) and str(never) == "> 1,920"
    regression = [{"samples": s, "val_error": e} for s, e in [(0, 1.0), (100, 0.3), (200, 0.05)]]
    assert samples_to_solve(pd.DataFrame(regression), 0.9, lambda r: 1 - r["val_error"]).samples == 200
    with pytest.raises(ValueError, match="metric name"):
        samples_to_solve(HISTORY, 0.9, "val_error")
    with pytest.raises(ValueError):
        SolveTime(True, None, 100)


def test_summary_keeps_censoring():
    s = lambda n: SolveTime(True, n, None)
    c = lambda n: SolveTime(False, None, n)
    assert str(summarize([s(300), s(100), s(200)])) == "200"
    assert str(summarize([s(100), c(1000), c(1000)])) == "> 1,000"  # fewer than half solved
    assert str(summarize([s(100), s(200), c(1000), c(1000)])) == "200"  # half solved: the lower median
    # a run stopped unsolved at 150 could have solved anywhere above 150: the median is 150-400
    mixed = summarize([s(100), s(400), c(150)])
    assert (mixed.low, mixed.high, mixed.known, mixed.solved) == (150, 400, False, 2) and str(mixed) == "150–400"
