"""Numerical analysis behind the reports: intervals, tests and comparisons over seeds (stats.py), the
reference-first labels (labels.py), the references' published numbers and our thresholds, each with
its source (reference.py), the looped family's stability and learning verdicts (looped.py),
loss-surface maths (loss_surface.py), the grid's shortcut ceilings (ceilings.py),
samples-to-solve (solve.py) and verdicts (grid.py)."""
