"""Numerical analysis behind the reports: intervals and verdicts (stats.py), the looped family's
stability and learning verdicts (looped.py), loss-surface maths (loss_surface.py)."""
