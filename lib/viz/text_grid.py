"""Validation picture for byte-level tasks: original / masked input / model output per sample.

Output characters are tinted green where they match the original and red where not.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from lib.tasks.selective_copy import decode

GREEN, RED, DARK, BLANK = (0.1, 0.45, 0.1), (0.7, 0.1, 0.1), (0.12, 0.12, 0.12), (1.0, 1.0, 1.0)


def plot(original: torch.Tensor, masked: torch.Tensor, output: torch.Tensor, title: str = "") -> Figure:
    """original, masked, output: (n, T) byte ids. Rows per sample: original, input, output, gap."""
    n, t = original.shape
    rows = 4 * n - 1
    colours = np.ones((rows, t, 3))
    fig = Figure(figsize=(t * 0.14 + 0.8, rows * 0.16 + 0.7))
    ax = fig.subplots()
    for i in range(n):
        r = 4 * i
        colours[r] = colours[r + 1] = DARK
        correct = (output[i] == original[i]).numpy()
        colours[r + 2] = np.where(correct[:, None], GREEN, RED)
        for row, ids in ((r, original[i]), (r + 1, masked[i]), (r + 2, output[i])):
            for c, ch in enumerate(decode(ids)):
                ax.text(c, row, ch, ha="center", va="center", family="monospace", fontsize=7, color="white")
    ax.imshow(colours, aspect="auto", interpolation="nearest")
    ax.set_yticks([4 * i + j for i in range(n) for j in range(3)], [s for _ in range(n) for s in ("original", "input", "output")], fontsize=5)
    ax.set_xticks(range(0, t, 10))
    ax.set_xlabel("position (byte)")
    n_wrong = int((output != original).any(dim=1).sum())
    ax.set_title(title or f"{n} validation samples, {n_wrong} with an error (green = correct byte, red = wrong)", fontsize=8)
    fig.tight_layout()
    return fig
