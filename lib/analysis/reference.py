"""The references' numbers and the thresholds our verdicts use, each defined once with its source.

A source is the reference card's section (the cards: references/<name>.md, e.g.
"looped_transformers.md §5a") or "project" with the reason, when the card states no number and the
threshold is ours.

Units of the looped family: our error is SE / E[y²] at the last position (predicting 0 scores ~1);
the student report's unit is SE/d² (looped_transformers.md §1 "Report units"), i.e. our error / d
on linear regression, where E[y²] = d.
"""
from __future__ import annotations

from lib.analysis.labels import Threshold

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
