"""The references' numbers and the thresholds our verdicts use, each defined once with its source.

A source is the reference card's section (the cards: references/<name>.md, e.g.
"looped_transformers.md §5a"), the paper where no card holds the number, or "project" with the
reason, when the card states no number and the threshold is ours. Studies and notebooks set their
results beside these; nothing else in lib holds a published number.

Units of the looped family: our error is SE / E[y²] at the last position (predicting 0 scores ~1);
the student report's unit is SE/d² (looped_transformers.md §1 "Report units"), i.e. our error / d
on linear regression, where E[y²] = d.
"""
from __future__ import annotations

import pandas as pd

from lib.analysis.labels import Threshold
from lib.models.conv_text import label

# --- looped transformers (looped_transformers.md) ---

# §5a: "b = 10 and 20 stay ≤ 0.01" past b (evaluated up to 21 points): an absolute level, not a ratio.
PAST_B_STAYS = Threshold("error past b stays at most", 0.01, "SE/d²", "looped_transformers.md §5a")

# The project's own thresholds for the looped family (the card states none of these).
LEARNED = Threshold("error at b of a model that learned, at most", 0.2, "SE/E[y²]",
                    "project: well below the predict-zero level of 1")
FLAT = Threshold("stability ratio (worst past b / at b) of a model that stays flat, at most", 1.25, "",
                 "project: the card's criterion is absolute (§5a), this ratio is ours")
DIVERGES = Threshold("stability ratio of a model that diverges, above", 2.0, "",
                     "project: the card's criterion is absolute (§5a), this ratio is ours")
CONVERGED_TARGET = Threshold("error at b of a standard TF or looped b ≥ 10, at most", 0.03, "SE/E[y²]",
                             "project: the looped family's convergence target (configs/looped/cpu.yml)")
STILL_FALLING = Threshold("fall of the validation error over the last 5 evaluations of a run still learning, above",
                          0.05, "", "project")
RISE = Threshold("rise of the error after its minimum, as N grows, that makes a curve non-monotone, at least", 1.5, "×",
                 "project: the card gives no size for the first-N rise (§5b)")

# §5a, past b: "b = 5 rises after about 5 loops to ≈0.35; b = 10 and 20 stay ≤ 0.01". The smallest
# b it saw stay flat; its looped model below that b (b = 5) diverged.
STAYS_FLAT_FROM = Threshold("smallest b the student report saw stay flat past b", 10, "loops", "looped_transformers.md §5a")


def past_b_expected(b: int) -> str:
    """The student report's stability word past b (§5a) for a looped model trained with `b` loops."""
    return "stays flat" if b >= STAYS_FLAT_FROM.value else "diverges"


# §5b, N-token masking: the shape of the error-vs-N curve per mask side. Last-N falls from the
# predict-zero level to ≈0 at N = 31; first-N has a minimum of 0.03–0.05, then a rise at N ≈ 25–30.
MASKING_SHAPE = {"first": "non-monotone", "last": "monotone"}

# The project's tolerance for "the same predictions" in float32 (the learnable-lr model and its
# folded twin): far below any error we report.
FOLD_EXACT = Threshold("largest prediction gap between a model and its folded twin, below", 1e-4, "",
                       "project: float32 round-off of one computation done two ways")

# The student report, §5a: d = 10, k = 31, width 256, 20k steps. Its units: train loss / d,
# and SE / d^2 at the last position (= our val_error / d).
LOOPED_SEED_REPORT = pd.DataFrame([
    {"model": "TF L=12", "final train loss/d": "≈0.19", "SE/d² past b": "—"},
    {"model": "looped b=5", "final train loss/d": "≈0.38", "SE/d² past b": "rises after ~5 loops to ≈0.35"},
    {"model": "looped b=10", "final train loss/d": "≈0.28", "SE/d² past b": "stays ≤ 0.01"},
    {"model": "looped b≥15", "final train loss/d": "≈0.22–0.25", "SE/d² past b": "b=20 stays ≤ 0.01"},
])
# The paper's numbers, §4 (d = 20, Fig. 2, 500 loops): error / d at k in-context examples.
LOOPED_PAPER = pd.DataFrame([
    {"model": "TF L=12", "k=10": 0.519, "k=20": 0.0204, "k=30": 7.4e-4, "k=40": 4.8e-4},
    {"model": "looped L=1 (b=20, T=15)", "k=10": 0.519, "k=20": 0.0242, "k=30": 1.1e-3, "k=40": 7.8e-4},
    {"model": "least squares", "k=10": 0.515, "k=20": 1.5e-9, "k=30": 1e-13, "k=40": 1e-13},
])
# §5d, per-loop evaluation (d = 10, width 256, noiseless LR), SE/d².
LOOPED_MAMBA_REPORT = pd.DataFrame({
    "model (reference, d = 10, width 256)": ["looped TF, min over loops", "looped Mamba, min over loops",
                                             "looped TF b = 5 at 39 loops", "looped Mamba b = 5 at 39 loops"],
    "SE/d²": [0.001, 0.005, 0.15, 0.06]})
# §5e, the learnable "lr" (width 128, L = 1, noiseless LR, 15k steps, T = 20): SE/d² at exactly b loops.
LOOP_LR_REPORT = pd.DataFrame({"b": [5, 10, 15], "plain (SE/d²)": [0.0067499, 0.0069544, 0.0032838],
                               "lr (SE/d²)": [0.0013792, 0.0018558, 0.0008619]})

# §5f: the lowest contour of each 250 x 250 Hessian surface, keyed by our run names (its loss scale:
# d = 10, k = 31, width 256, noisy regression, the loss averaged over all b iterations, not divided by d).
LOSS_SURFACE_LOWEST_CONTOUR = {"looped-L1-b5-T10": 9, "looped-L1-b10-T10": 15, "looped-L1-b15-T10": 10, "tf-L2": 9,
                               "looped-L2-b5-T10": 12}
LOSS_SURFACE_FINDING = "looped landscapes are more uniform and sometimes steeper"  # §5f, the report's finding
CENTRE_MATCH = Threshold("relative gap between a surface's centre loss and its run's validation loss, at most", 0.02, "",
                         "project: a surface must describe the model its run reports")

# --- selective copying with dilated CNNs (selective_copy.md) ---

# §5, tables T1-T4 (1M samples, single runs; nitem 10, area 40, ch 64). `dilation` is an int
# (all layers) or a per-layer list.
SELECTIVE_COPY = [
    # layers, kernel_size, dilation, val_loss, params, train_min, samples_per_s
    (6, 9, 1, 0.203547, 237_952, 8.71, 1913),
    (8, 9, 1, 0.088512, 311_808, 11.75, 1418),
    (10, 9, 1, 0.0164525, 385_664, 14.51, 1148),
    (12, 9, 1, 0.00128227, 459_520, 16.5, 1009),
    (6, 11, 1, 0.12667, 287_104, 8.85, 1882),
    (6, 13, 1, 0.0355833, 336_256, 9.44, 1764),
    (6, 15, 1, 0.00105004, 385_408, 58.02, 286),
    (6, 17, 1, 0.000182635, 434_560, 49.15, 339),
    (6, 9, 2, 0.324, 237_952, 1.96, 8491),
    (6, 9, [2, 2, 2, 2, 2, 1], 0.0870354, 237_952, 3.28, 5085),
    (6, 9, [2, 2, 2, 2, 1, 1], 0.0676225, 237_952, 4.24, 3935),
    (6, 9, [2, 2, 2, 1, 1, 1], 0.0670086, 237_952, 5.26, 3171),
    (6, 9, [3, 3, 3, 1, 1, 1], 0.0514503, 237_952, 5.17, 3223),
    (6, 9, [4, 4, 4, 1, 1, 1], 0.0460037, 237_952, 5.37, 3101),
    (6, 9, [5, 5, 5, 1, 1, 1], 0.0423690, 237_952, 5.1, 3269),
    (6, 9, [6, 6, 6, 1, 1, 1], 0.0363355, 237_952, 5.28, 3158),
    (6, 9, [2, 4, 6, 3, 5, 1], 0.0323526, 237_952, 3.26, 5116),
    (6, 9, [2, 6, 4, 5, 3, 1], 0.0212173, 237_952, 3.07, 5428),
    (6, 9, [3, 5, 7, 9, 11, 1], 0.0096797, 237_952, 3.08, 5407),
    (6, 9, [5, 4, 3, 2, 1, 1], 0.0066358, 237_952, 4.2, 3967),
    (6, 9, [2, 3, 4, 5, 1, 1], 0.0021815, 237_952, 4.35, 3828),
    (6, 9, [2, 3, 4, 5, 6, 1], 0.0015734, 237_952, 3.15, 5292),
    (6, 9, [1, 2, 3, 4, 5, 1], 0.0002703, 237_952, 4.03, 4137),
]
# §4: mask error % at 1M samples, read off the error-curve plots.
SELECTIVE_COPY_ERROR_PCT = {
    (6, 9, "1"): 47.51, (8, 9, "1"): 22.22, (10, 9, "1"): 3.638, (12, 9, "1"): 0.1951,
    (6, 11, "1"): 30.15, (6, 13, "1"): 9.813, (6, 15, "1"): 0.1781, (6, 17, "1"): 0.02488,
    (6, 9, "2-3-4-5-6-1"): 0.2349, (6, 9, "2-3-4-5-1-1"): 0.3055,
    (6, 9, "5-4-3-2-1-1"): 1.14, (6, 9, "3-5-7-9-11-1"): 1.691,
}


def selective_copy_table() -> pd.DataFrame:
    """SELECTIVE_COPY with its error % as a DataFrame in the project's column names."""
    rows = []
    for layers, ks, dil, val_loss, params, minutes, sps in SELECTIVE_COPY:
        key = (layers, ks, label(tuple(dil) if isinstance(dil, list) else dil))
        rows.append({
            "layers": layers, "kernel_size": str(ks), "dilation": key[2], "params": params,
            "val_loss": val_loss, "val_error_pct": SELECTIVE_COPY_ERROR_PCT.get(key, float("nan")),
            "train_minutes": minutes, "samples_per_s": sps,
        })
    return pd.DataFrame(rows)


# --- masked mixer vs transformer on TinyStories (masked_mixer.md) ---

# §3, the summary tables (n = 8 layers; its 4096-token BPE, context 512, CE in nats per token):
# (row, body, d_model, train, val).
SMALL_LMS = [
    ("flat mixer d=512, 8 layers", "mixer", 512, 1.84, 1.89),
    ("transformer (Llama) d=512, 8 layers, 16 heads", "gpt", 512, 1.87, 1.91),
    ("flat mixer d=256", "mixer", 256, 2.11, 2.15),
    ("transformer d=256", "gpt", 256, 1.99, 2.02),
]


def small_lms_table() -> pd.DataFrame:
    """SMALL_LMS as the reference prints it."""
    return pd.DataFrame({"reference model (TinyStories)": [r[0] for r in SMALL_LMS], "train": [r[3] for r in SMALL_LMS],
                         "val": [r[4] for r in SMALL_LMS]})


def small_lm_val(arch: str, d_model: int) -> float:
    """The reference's validation CE of the `arch` model of width d_model."""
    return next(r[4] for r in SMALL_LMS if r[1:3] == (arch, d_model))


# --- the latent thinker (thinker.md) ---

# §5 "Curriculum" (d=16, 4 latents, 8 steps, L = 20): copy token accuracy on training batches, and
# the iterations of batch THINKER_COPY_BATCH it took, as the card states them.
THINKER_COPY_BATCH = 1024
THINKER_COPY = {  # curriculum: (token accuracy, iterations, iterations as stated)
    "none": (0.58, 65_000, "65k"),
    "uniform": (1.00, 9_500, "~9.5k"),
}
# §5 "Base-16 addition, < 1000": (model, accuracy as stated), and the same in one line.
THINKER_ADDITION = [
    ("d 32, 8 latents, 2 steps", "0.97 (~4k it.; ~0.95 at 3k, 2 min on a T4)"),
    ("d 16 (9k params), latents {4,8} x steps {1,4}", "0.96 / 0.97 / 0.97 / 0.98 (~10k it.)"),
]
THINKER_ADDITION_SUMMARY = "0.97 (width 32, ~4k iterations), 0.96–0.98 (width 16, 9k params, ~10k iterations)"
# §5 "Sep 2024", cumsum at L = 10 with compute randomisation, maps of training-batch accuracy.
THINKER_COMPUTE = "monotone rise 0.38 → 0.74 in phase 1, 0.97–1.00 everywhere in phase 2"


def thinker_copy_table() -> pd.DataFrame:
    """THINKER_COPY as the report prints it."""
    return pd.DataFrame({"curriculum": list(THINKER_COPY), "reference accuracy (training batches)": [v[0] for v in THINKER_COPY.values()],
                         f"reference iterations (batch {THINKER_COPY_BATCH})": [v[2] for v in THINKER_COPY.values()]})


def thinker_addition_table() -> pd.DataFrame:
    """THINKER_ADDITION as the report prints it."""
    return pd.DataFrame(THINKER_ADDITION, columns=["reference model", "reference accuracy"])


# --- the block x task grid's anchors ---

# Zoology (Arora et al. 2023), MQAR, the repository's iclr24_zoology_figure2 configs (no reference card):
# vocabulary 8,192; (length, pairs) of (64, 4), (128, 8), (256, 16); 2 layers, d_model 64-512, attention with 1 head
# and a position table of the sequence's length, no MLP; 100,000 training sequences x 64 epochs, batch 512 at
# length <= 128; lr np.logspace(-4, -2, 4); one seed per cell; the best lr per cell is plotted.
ZOOLOGY_MQAR = {
    "metric": "accuracy at the query positions", "horizon": "64 epochs of 100,000 sequences",
    "value": "attention solves MQAR (accuracy ~1) at every width and length tried; gated convolutions need a width growing with the pairs",
    "budget": "6.4M sequences per run (100,000 x 64 epochs, batch 512), 4 lrs (1e-4 .. 1e-2) per cell, 1 seed, vocabulary 8,192",
}

# Published findings beside the grid's cells of the same task, each with the budget it was trained at.
GRID_ANCHORS = [
    {"source": "Mamba paper, selective copying (Gu & Dao 2023, Table 1; ssd_language_model.md §C)", "task": "selective_mamba",
     "published": "S4 18.3 % vs Mamba 99.8 % accuracy (length 4096, vocabulary 16, 16 data tokens; 2 layers, D = 64)",
     "budget": "400k steps x batch 64 = 25.6M sequences, lr 1e-4 constant, 1 run per model"},
    {"source": "Zoology (Arora et al. 2023), MQAR (repository configs; no reference card)", "task": "mqar",
     "published": ZOOLOGY_MQAR["value"], "budget": ZOOLOGY_MQAR["budget"]},
    {"source": "seed 000, selective copying with dilated CNNs (selective_copy.md §5)", "task": "selective_copy",
     "published": "6 layers k=9: 0.2035 val loss (non-causal); dilated 1-2-3-4-5-1 solves it",
     "budget": "1M samples (15,630 steps x batch 64), 1 run per model"},
]
