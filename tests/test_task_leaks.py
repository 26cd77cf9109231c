"""Every grid task against a plain-Python oracle: no input position at or before a labelled position
reveals that label beyond what the task intends (the context pair of MQAR, the token after the
first trigger of induction, the data tokens of selective copying, the operands of an algorithmic
task, the earlier pairs of a regression prompt)."""
from collections import Counter

import pytest
import torch

from lib.studies.grid import TASKS
from lib.tasks.algo_sequence import AlgoSequence
from lib.tasks.algorithmic import AlgorithmicConfig
from lib.tasks.recall import IGNORE, Recall, RecallConfig, sample_induction, sample_mqar, sample_selective
from lib.tasks.regression import InContextRegression
from lib.tasks.selective_copy import MASK, SelectiveCopy, SelectiveCopyConfig


def rows(batch):
    return zip(batch.x.tolist(), batch.y.tolist())


@pytest.mark.parametrize("vocab,seq_len,pairs", [(40, 32, 4), (128, 64, 8), (256, 128, 24)])
def test_mqar_answers_appear_only_in_their_context_pair(vocab, seq_len, pairs):
    cfg = RecallConfig(kind="mqar", vocab=vocab, seq_len=seq_len, pairs=pairs)
    for x, y in rows(sample_mqar(cfg, 300, torch.Generator().manual_seed(0))):
        context = {x[i]: (i + 1, x[i + 1]) for i in range(0, 2 * pairs, 2)}  # key -> (value position, value)
        values = {v for _, v in context.values()}
        asked = [j for j, t in enumerate(y) if t != IGNORE]
        assert len(asked) == pairs and sorted(x[j] for j in asked) == sorted(context)
        for j in asked:
            where, value = context[x[j]]
            assert y[j] == value and x[j] != value
            assert j + 1 >= len(x) or x[j + 1] != value  # the cell after the query is filler, not the answer
            assert [i for i, t in enumerate(x) if t == value] == [where]  # nowhere but in its pair
        # nothing after the context is a value: no earlier query reveals an answer to eliminate
        assert not values & set(x[2 * pairs :])


def test_mqar_query_order_is_independent_of_the_context_order():
    cfg = RecallConfig(kind="mqar", vocab=40, seq_len=32, pairs=4)
    counts = Counter()
    for x, y in rows(sample_mqar(cfg, 4000, torch.Generator().manual_seed(1))):
        keys = x[0 : 2 * cfg.pairs : 2]
        for rank, j in enumerate(j for j, t in enumerate(y) if t != IGNORE):
            counts[rank, keys.index(x[j])] += 1
    # the q-th query asks each context pair 1/P of the time (1000 per cell; 4.5 sd ~ 124)
    assert all(abs(counts[r, k] - 1000) < 130 for r in range(4) for k in range(4))


def test_mqar_needs_a_vocabulary_larger_than_the_length():
    with pytest.raises(ValueError, match="vocab=64, seq_len=64"):
        RecallConfig(kind="mqar", vocab=64, seq_len=64, pairs=8)
    RecallConfig(kind="induction", vocab=16, seq_len=32)  # only MQAR has the condition


def test_every_grid_mqar_level_has_vocab_above_length():
    for level in TASKS["mqar"].values():
        cfg = level.build().cfg
        assert cfg.vocab > cfg.seq_len


def test_mqar_checkpoint_key_names_the_layout_and_other_kinds_keep_theirs():
    mqar = Recall(RecallConfig(kind="mqar", vocab=40, seq_len=32, pairs=4, val_size=10))
    induction = Recall(RecallConfig(kind="induction", vocab=16, seq_len=32, val_size=10))
    assert len(mqar.spec) == 2 and induction.spec == (induction.cfg,)


def test_mqar_extrapolation_set_keeps_the_vocabulary():
    task = Recall(RecallConfig(kind="mqar", vocab=128, seq_len=64, pairs=8, val_size=10))
    b = task.at_length(256, n=20)
    assert b.x.shape == (20, 256) and int(b.x.max()) < 128 and int((b.y != IGNORE).sum(1).min()) == 8


def test_induction_reveals_its_answer_only_after_the_first_trigger():
    cfg = RecallConfig(kind="induction", vocab=12, seq_len=24)
    trigger, where = cfg.vocab - 1, Counter()
    for x, y in rows(sample_induction(cfg, 2000, torch.Generator().manual_seed(2))):
        asked = [j for j, t in enumerate(y) if t != IGNORE]
        assert asked == [len(x) - 1] and x[-1] == trigger != y[-1]  # the labelled input is the trigger, not the answer
        first = x.index(trigger)
        assert x.count(trigger) == 2 and y[-1] == x[first + 1]
        where[first + 1] += 1
    # the answer's position moves with the trigger: no fixed position holds it (22 positions, ~91 each)
    assert len(where) == cfg.seq_len - 2 and max(where.values()) < 160


def test_selective_copying_mamba_form_shows_only_markers_where_it_asks():
    cfg = RecallConfig(kind="selective", vocab=10, seq_len=40, pairs=5)
    area, marker = cfg.seq_len - cfg.pairs, cfg.vocab - 1
    for x, y in rows(sample_selective(cfg, 300, torch.Generator().manual_seed(3))):
        asked = [j for j, t in enumerate(y) if t != IGNORE]
        assert asked == list(range(area, cfg.seq_len)) and x[area:] == [marker] * cfg.pairs
        assert all(y[j] != marker for j in asked)  # the input at a labelled position is never its label
        assert [t for t in x[:area] if t] == [y[j] for j in asked]  # answers come from the noise area, in order


def test_selective_copying_seed_form_masks_every_answer_cell():
    cfg = SelectiveCopyConfig(n_items=4, area=14, alphabet="ABCDEF", val_size=10)
    task = SelectiveCopy(cfg)
    b = task.train_batch(300, torch.Generator().manual_seed(4))
    blank, k = ord(cfg.blank), cfg.n_items
    for x, y in rows(b):
        assert x[-k:] == [MASK] * k and MASK not in y  # the answer cells show the mask, never a letter
        assert y[-k:] == [t for t in y[: cfg.area] if t != blank]
        # the loss also covers the other cells, where the target is the input by design (the metric ignores them)
        assert x[:-k] == y[:-k]


@pytest.mark.parametrize("task", ["copy", "flip", "roll", "roll_num", "sort", "cumsum", "addition"])
def test_algorithmic_sequences_show_queries_where_they_ask(task):
    cfg = AlgorithmicConfig(task=task, V=8, length=6, limit=50, base=10, val_size=100)
    t = AlgoSequence(cfg)
    for b in (t.val, t.train_batch(200, torch.Generator().manual_seed(5))):
        for x, y in rows(b):
            asked = [j for j, v in enumerate(y) if v != IGNORE]
            assert asked == list(range(cfg.in_len, t.seq_len))  # labels only after the whole input
            assert all(x[j] == t.query != y[j] for j in asked)  # the input there is the query token, never a label


@pytest.mark.parametrize("kind", ["linear", "noisy_linear", "sparse_linear"])
def test_regression_prompt_hides_each_target_until_after_its_x(kind):
    task = InContextRegression.of(kind, n_dims=4, points=6, val_size=100)
    for b in (task.val, task.train_batch(100, torch.Generator().manual_seed(6))):
        z, y = b.z, b.y
        k = y.shape[1]
        assert torch.equal(z[:, 1::2, 0], y) and not z[:, 1::2, 1:].any()  # y_i sits only at token 2i + 1
        for i in range(k):  # the prediction of y_i is read at token 2i: its causal prefix holds y_j, j < i
            prefix = z[:, : 2 * i + 1]
            assert not (prefix == y[:, i, None, None]).any()
