"""The findings of selective copy, the latent thinker and the small LMs (lib/analysis) on hand-made
tables: the classifications (labels, values, intervals), not the sentences."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lib.analysis import labels, reference
from lib.analysis import lm as lm_findings
from lib.analysis import selective_copy as sc
from lib.analysis import thinker
from lib.analysis.stats import seed_interval
from lib.analysis.thinker import NO_FALL

# --- selective copy ---

# (run, layers, kernel_size, dilation, radius, params): configurations the reference ran (reference.SELECTIVE_COPY)
SC_CONFIGS = [("l6", 6, "9", "1", 24, 237_952), ("l12", 12, "9", "1", 48, 459_520), ("dil", 6, "9", "1-2-3-4-5-1", 64, 237_952)]


def sc_history(final_loss: dict, seeds=(0,), params: dict | None = None) -> pd.DataFrame:
    """Two evaluations per run and seed: loss 5.0 at step 0, then final_loss[run] (error % = 100 x loss) at step 100."""
    rows = []
    for run, layers, ks, dil, radius, n in SC_CONFIGS:
        if run not in final_loss:
            continue
        for seed in seeds:
            for step, loss in ((0, 5.0), (100, final_loss[run])):
                rows.append({"run": run, "layers": layers, "kernel_size": ks, "dilation": dil, "radius": radius,
                             "params": (params or {}).get(run, n), "seed": seed, "step": step, "samples": step * 64, "val_loss": loss,
                             "val_error_pct": 100 * loss, "stop_reason": "max_steps", "train_minutes": step / 100, "samples_per_s": 100.0})
    return pd.DataFrame(rows)


def test_selective_copy_ordering_is_judged_against_the_reference_order():
    # the reference: dil (0.00027) < l12 (0.00128) < l6 (0.2035)
    same = sc.findings(sc_history({"l6": 0.3, "l12": 0.002, "dil": 0.0005}), seq_len=52)
    assert same.ordering == sc.MATCHES and same.reference_ranking == ("dil", "l12", "l6")
    assert [r for r, _ in same.ranking] == ["dil", "l12", "l6"] and same.samples == 6400
    swapped = sc.findings(sc_history({"l6": 0.3, "l12": 0.0001, "dil": 0.0005}), seq_len=52)
    assert swapped.ordering == sc.DIFFERS and [r for r, _ in swapped.ranking] == ["l12", "dil", "l6"]
    assert sc.findings(sc_history({"l6": 0.3}), seq_len=52).ordering is None  # one configuration: no ordering to compare
    v = {x.run: x for x in same.versus}
    assert v["l6"].ratio == pytest.approx(0.3 / 0.203547) and math.isnan(v["dil"].ref_val_error_pct)  # no published curve for dil
    assert v["l12"].ref_val_error_pct == reference.SELECTIVE_COPY_ERROR_PCT[(12, 9, "1")]


def test_selective_copy_radius_split_and_parameter_counts():
    f = sc.findings(sc_history({"l6": 0.3, "l12": 0.002, "dil": 0.0005}), seq_len=52)
    # radius >= 51 spans the sequence: only dil (64); l6 (24) and l12 (48) do not
    assert f.reach == 51 and f.covers_error == pytest.approx(0.05) and f.short_error == pytest.approx((30 + 0.2) / 2)
    assert (f.params, f.params_compared) == (sc.EQUAL, 3)
    off = sc.findings(sc_history({"l6": 0.3, "l12": 0.002}, params={"l12": 459_521}), seq_len=52)
    assert off.params == sc.DIFFER and math.isnan(off.covers_error)  # no run spans the sequence: no split
    none = sc.findings(sc_history({"l6": 0.3}).assign(dilation="7"), seq_len=52)
    assert (none.params, none.params_compared, none.versus) == (sc.NONE, 0, ())


def test_selective_copy_ranking_is_descriptive_below_five_seeds():
    one = sc.findings(sc_history({"l6": 0.3, "dil": 0.0005}), seq_len=52)
    five = sc.findings(sc_history({"l6": 0.3, "dil": 0.0005}, seeds=range(5)), seq_len=52)
    assert one.descriptive and one.seeds == 1 and not five.descriptive and five.seeds == 5
    assert "descriptive" in sc.render(one, 64, 0) and "descriptive" not in sc.render(five, 64, 0)


def test_selective_copy_training_check_and_budget_table():
    h = sc_history({"l6": 0.3, "dil": 0.0005})
    assert sc.loss_fell(h)
    assert not sc.loss_fell(pd.concat([h, h.iloc[[0]].assign(step=200, val_loss=6.0)]))  # l6 seed 0 ends above its start
    cfg = SimpleNamespace(name="l6", columns=lambda: {"layers": 6}, n_params=lambda: 10)
    row = sc.sweep_table([cfg], steps=100, batch_size=64, seeds=[0, 1]).iloc[0]
    assert (row.samples, row.params, row.seeds) == (6400, 10, "0, 1")


# --- latent thinker ---

def copy_history(acc: dict, stop: str = "converged", seeds: int = 5) -> pd.DataFrame:
    """Per curriculum and seed: accuracy 0.1 at step 0, then acc[curriculum][seed] at step 100."""
    rows = []
    for cur, values in acc.items():
        for seed in range(seeds):
            for step, a in ((0, 0.1), (100, values[seed])):
                rows.append({"curriculum": cur, "run": f"thinker-{cur}", "seed": seed, "step": step, "val_token_acc": a,
                             "val_exact": a, "model": "Thinker", "params": 100, "stop_reason": stop, "train_minutes": step / 100})
    return pd.DataFrame(rows)


def test_copy_claim_labels_the_curriculum_gain_from_five_finished_seeds():
    h = copy_history({"none": [0.50, 0.55, 0.60, 0.52, 0.58], "uniform": [1.0] * 5, "adaptive": [0.995, 0.99, 0.97, 0.96, 0.98]})
    c = thinker.copy_claim(h, ["none", "uniform", "adaptive"], length=20, steps=100, batch=64)
    assert [r.name for r in c.curricula] == ["none", "uniform", "adaptive"]
    assert c.of("uniform").solved == 5 and c.of("adaptive").reached == 2 and c.of("adaptive").first_step == 100
    assert c.of("none").reached == 0 and math.isnan(c.of("none").first_step)
    assert c.of("none").accuracy == pytest.approx(seed_interval([0.50, 0.55, 0.60, 0.52, 0.58]))
    gains = {g.curriculum: g for g in c.gains}
    assert gains["uniform"].verdict.label == labels.REPRODUCED and gains["uniform"].comparison.verdict == "higher"
    assert (c.best, c.target) == ("uniform", thinker.MET)


def test_copy_claim_against_the_reference_is_contradicted_only_by_finished_runs():
    acc = {"none": [1.0, 0.99, 1.0, 0.98, 1.0], "uniform": [0.6, 0.62, 0.58, 0.61, 0.6]}
    finished = thinker.copy_claim(copy_history(acc), ["none", "uniform"], 20, 100, 64)
    capped = thinker.copy_claim(copy_history(acc, stop="max_steps"), ["none", "uniform"], 20, 100, 64)
    assert finished.gains[0].verdict.label == labels.CONTRADICTED and capped.gains[0].verdict.label == labels.NOT_AT_BUDGET
    assert finished.target == thinker.MISSED and finished.best == "uniform"


def test_copy_claim_with_three_seeds_is_descriptive():
    h = copy_history({"none": [0.90, 0.95, 1.0], "uniform": [0.92, 0.97, 1.0]}, seeds=3)
    c = thinker.copy_claim(h, ["none", "uniform"], length=20, steps=100, batch=64)
    assert c.gains[0].comparison.verdict == "descriptive" and c.gains[0].verdict.label == labels.NOT_AT_BUDGET
    assert c.target == thinker.MISSED  # 1/3 uniform seeds at 1.000
    assert not thinker.copy_claim(h[h.curriculum == "uniform"], ["uniform"], 20, 100, 64).gains  # no `none`: no gain to judge


def test_addition_claim_meets_its_target_only_within_the_minutes():
    rows = [{"run": run, "seed": 0, "step": s, "val_exact": e, "val_token_acc": e, "model": "Thinker", "params": 100,
             "stop_reason": "max_steps", "train_minutes": m}
            for run, curve in (("main", ((0, 0.1, 0.0), (50, 0.96, 3.0), (100, 0.98, 6.0))), ("small", ((0, 0.1, 0.0), (100, 0.5, 6.0))))
            for s, e, m in curve]
    h = pd.DataFrame(rows)
    met = thinker.addition_claim(h, 16, 1000, 100, 64, target=0.95, minutes=5.0, seed=0)
    assert (met.label, met.reached_at, met.main.run) == (thinker.MET, 3.0, "main")
    assert thinker.addition_claim(h, 16, 1000, 100, 64, target=0.95, minutes=2.0, seed=0).label == thinker.MISSED
    never = thinker.addition_claim(h, 16, 1000, 100, 64, target=0.99, minutes=60.0, seed=0)
    assert never.label == thinker.MISSED and math.isnan(never.reached_at)


def test_compute_claim_counts_cells_that_do_not_fall():
    latents, steps = [1, 2, 4], [1, 2, 3]
    acc = {(m, s): 0.1 * m + 0.05 * s for m in latents for s in steps}
    acc[4, 3] = 0.2  # one drop below its neighbours (4, 2) 0.5 and (2, 3) 0.35
    acc[2, 1] = acc[1, 1]  # equal neighbours: no fall
    acc[1, 3] = acc[1, 2] - NO_FALL / 2  # a fall within the tolerance: no fall
    grid = pd.DataFrame([{"n_latent": m, "n_step": s, "seed": 0, "val_token_acc": a, "trained": m <= 2 and s <= 2}
                         for (m, s), a in acc.items()])
    c = thinker.compute_claim(grid, "copy", 10, latents=[1, 2], n_steps=[1, 2])
    assert c.rising == pytest.approx(10 / 12) and c.trained == (2, 2)  # of 12 neighbour pairs only the two into (4, 3) fall
    assert c.best == ((4, 2), pytest.approx(0.5))
    assert c.inside == pytest.approx(np.mean([acc[m, s] for m in (1, 2) for s in (1, 2)]))


def test_length_claim_splits_trained_and_longer_kept_lengths():
    by_len = pd.DataFrame([{"kept length": k, "seed": s, "trained": k <= 2, "kept_token_acc": 1.0 if k <= 2 else 0.5 - 0.1 * s}
                           for k in range(1, 5) for s in (0, 1)])
    c = thinker.length_claim(by_len, max_keep=2, length=4)
    assert c.seen == (1.0, 1.0, 1.0) and c.unseen[0] == pytest.approx(0.45) and c.unseen[1] < 0.45 < c.unseen[2]
    assert c.full == pytest.approx(seed_interval([0.5, 0.4]))


def test_thinker_reference_numbers_come_from_the_reference_module():
    h = copy_history({"none": [0.5] * 5, "uniform": [1.0] * 5})
    c = thinker.copy_claim(h, ["none", "uniform"], 20, 100, 64)
    none_acc, uniform_acc = reference.THINKER_COPY["none"][0], reference.THINKER_COPY["uniform"][0]
    assert c.gains[0].verdict.ref_value == f"{uniform_acc:.2f} with the uniform curriculum vs {none_acc:.2f} without"
    table = reference.thinker_copy_table()
    assert table.set_index("curriculum").iloc[:, 0].to_dict() == {"none": none_acc, "uniform": uniform_acc}


# --- small language models ---

class LMTask:
    floor_bpc = 0.1

    def stats(self):
        return {"unigram_bpc": 2.0}


def lm_history(finals: dict, d_model: int = 64, stop: str = "budget") -> pd.DataFrame:
    """arch -> per-seed final bits/char; three evaluations per run (tokens 0, 100, 200; the mixer's twice as many tokens)."""
    rows = []
    for arch, seeds_bpc in finals.items():
        slope = 1.0 if arch == "mixer" else 0.5
        for seed, final in enumerate(seeds_bpc):
            for step, tokens in ((0, 0), (10, 100), (20, 200)):
                bpc = {0: 2.0, 10: 2.0 - slope, 20: final}[step]
                rows.append({"run": f"{arch}-x", "arch": arch, "d_model": d_model, "params": 1000, "seed": seed, "step": step,
                             "tokens": tokens * 2 if arch == "mixer" else tokens, "val_bpc": bpc, "val_loss": bpc,
                             "train_minutes": step / 10, "stop_reason": stop})
    return pd.DataFrame(rows)


MEM = pd.DataFrame({"context": [8, 16, 16], "run": ["mixer-x", "mixer-x", "gpt-x"], "memory_mb": [1.0, 2.0, 3.0]})


def test_small_lm_results_interpolate_equal_tokens():
    res = lm_findings.results(lm_history({"mixer": (0.50, 0.52), "gpt": (0.40, 0.41)}), LMTask()).set_index("arch")
    # common tokens = 200 (gpt's final); the mixer reached 200 tokens at its step 10: bpc 1.0, read by interpolation
    assert res.loc["mixer", "bpc_equal_tokens"] == 1.0 and res.loc["gpt", "bpc_equal_tokens"] == 0.405
    assert res.loc["gpt", "excess_bpc"] == pytest.approx(0.305) and res.loc["mixer", "minutes_to_leave_unigram"] == 1.0


def test_small_lm_reference_rows_are_judged_only_at_their_width():
    two = lambda d: lm_findings.findings(lm_history({"mixer": (0.50, 0.52), "gpt": (0.40, 0.41)}, d), LMTask(), MEM)
    f = two(64)
    # our d = 64 has neither row's width: the d = 512 row is untested, the nearer d = 256 row not comparable
    assert [(d, v.label) for d, v in f.reference] == [(512, labels.UNTESTED), (256, labels.NOT_COMPARABLE)]
    assert f.best == "gpt" and {(a, b): c.verdict for a, b, c in f.pairwise} == {("mixer", "gpt"): "descriptive"}
    assert f.equal_tokens.verdict == "descriptive" and (f.memory_context, f.memory) == (16, {"mixer-x": 2.0, "gpt-x": 3.0})
    assert dict(two(256).reference)[256].label == labels.NOT_AT_BUDGET  # the same width, but 2 seeds: descriptive
    assert dict(two(512).reference)[256].label == labels.UNTESTED  # the farther row: no model of its width


def test_small_lm_reference_row_with_five_seeds():
    mixer_worse = {"mixer": (0.50, 0.52, 0.51, 0.53, 0.50), "gpt": (0.40, 0.41, 0.42, 0.40, 0.41)}
    f = lm_findings.findings(lm_history(mixer_worse, 256), LMTask(), MEM)
    assert dict(f.reference)[256].label == labels.REPRODUCED  # the reference's d = 256: the transformer ahead
    assert dict(f.reference)[512].label == labels.UNTESTED
    mixer_better = {"mixer": mixer_worse["gpt"], "gpt": mixer_worse["mixer"]}
    for stop, label in (("budget", labels.NOT_AT_BUDGET), ("converged", labels.CONTRADICTED)):
        f = lm_findings.findings(lm_history(mixer_better, 256, stop=stop), LMTask(), MEM)
        assert dict(f.reference)[256].label == label


def test_small_lm_findings_without_a_transformer_judge_no_reference_row():
    f = lm_findings.findings(lm_history({"mixer": (0.5, 0.52), "ssd": (0.45, 0.46)}), LMTask(), MEM)
    assert f.reference == () and f.equal_tokens is None and [(a, b) for a, b, _ in f.pairwise] == [("mixer", "ssd")]
    assert "Reference" not in lm_findings.render(f)


class ShiftModel(torch.nn.Module):
    """Logits at t from the tokens up to t (causal) or, when `leak`, also from token t + 1."""

    def __init__(self, leak: bool):
        super().__init__()
        self.emb, self.leak = torch.nn.Embedding(5, 5), leak

    def forward(self, x):
        out = self.emb(x)
        return out + self.emb(torch.roll(x, -1, dims=1)) if self.leak else out


def test_causality_check_finds_a_model_that_reads_ahead():
    torch.manual_seed(0)
    cfgs = [SimpleNamespace(name="causal", vocab=5), SimpleNamespace(name="leaky", vocab=5)]
    models = {("causal", 0): ShiftModel(False), ("leaky", 0): ShiftModel(True)}
    table = lm_findings.causality(models, cfgs, torch.randint(0, 5, (2, 9)), seed=0).set_index(["run", "j"])
    assert list(table.loc["causal"].index) == [2, 4, 7]  # ctx // 4, ctx // 2, ctx - 1 for ctx = 8
    assert (table.loc["causal", "max change before j"] == 0).all() and (table.loc["causal", "max change at/after j"] > 0).all()
    assert (table.loc["leaky", "max change before j"] > 0).all()
