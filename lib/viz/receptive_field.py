"""Receptive-field pictures: how far an impulse in one input cell travels through each layer.

Ref: references/selective_copy.md, section 4. A state (1, 3, S) of zeros holds a 1
at the centre cell (or cell 0, `from_left`). Every layer applies a bias-free Conv1d(3->3,
k_i, dilation d_i, same padding) with weights 0.5*U[0,1) drawn from a generator reseeded
with 23 for each layer; no activation, residual or norm (impulse propagation). Each state
(input, then after each layer) is one row: |state| clamped to [0, 1], channels as RGB,
upscaled x5, rows separated (and framed) by 2-pixel grey lines. The image sizes match the
reference: 6 layers at S=50 -> 254x51 px, 12 layers -> 254x93, S=100 -> 504x51.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from lib.models.conv_text import label, per_layer, receptive_radius


@torch.no_grad()
def impulse_states(kernel_size, dilation, layers: int, size: int = 50, from_left: bool = False, seed: int = 23) -> torch.Tensor:
    """(layers + 1, 3, size): the impulse state before the first layer and after each layer."""
    ks, ds = per_layer(kernel_size, layers, "kernel_size"), per_layer(dilation, layers, "dilation")
    state = torch.zeros(1, 3, size, dtype=torch.float64)
    state[0, :, 0 if from_left else size // 2] = 1.0
    states = [state[0]]
    for k, d in zip(ks, ds):
        gen = torch.Generator().manual_seed(seed)
        weight = 0.5 * torch.rand(3, 3, k, generator=gen, dtype=torch.float64)
        state = F.conv1d(state, weight, padding=k // 2 * d, dilation=d)
        states.append(state[0])
    return torch.stack(states)


def to_image(states: torch.Tensor, scale: int = 5, sep: int = 2, grey: float = 0.3) -> np.ndarray:
    """(rows, 3, S) states -> (H, W, 3) float image in [0, 1], framed and separated by grey lines."""
    rows, _, size = states.shape
    img = np.full((rows * scale + (rows + 1) * sep, size * scale + 2 * sep, 3), grey)
    cells = states.abs().clamp(0, 1).permute(0, 2, 1).numpy()  # (rows, S, 3)
    for r in range(rows):
        top = sep + r * (scale + sep)
        img[top : top + scale, sep : sep + size * scale] = np.repeat(np.repeat(cells[r][None], scale, 0), scale, 1)
    return img


def reach(states: torch.Tensor, eps: float = 0.0) -> list[tuple[int, int]]:
    """Per state, the (first, last) cell whose value exceeds eps: the impulse's spread."""
    out = []
    for s in states.abs().amax(dim=1):
        nz = torch.nonzero(s > eps).flatten()
        out.append((int(nz[0]), int(nz[-1])))
    return out


def plot(kernel_size=9, dilation=1, layers: int = 6, size: int = 50, from_left: bool = False) -> Figure:
    """The reference picture for one spec, drawn with labelled axes."""
    states = impulse_states(kernel_size, dilation, layers, size, from_left)
    ks, ds = per_layer(kernel_size, layers, "kernel_size"), per_layer(dilation, layers, "dilation")
    img = to_image(states)
    fig = Figure(figsize=(max(4.0, img.shape[1] / 40), max(1.6, img.shape[0] / 40 + 0.9)))
    ax = fig.subplots()
    ax.imshow(img, interpolation="nearest")
    ax.set_yticks([2 + 2.5 + r * 7 for r in range(layers + 1)], ["input"] + [f"layer {i + 1}" for i in range(layers)], fontsize=6)
    ax.set_xticks([2 + 2.5 + c * 5 for c in range(0, size, 10)], list(range(0, size, 10)), fontsize=6)
    ax.set_xlabel("cell (position in the sequence)")
    where = "from cell 0" if from_left else "from the centre"
    ax.set_title(
        f"l{layers}-ks{label(ks)}-dil{label(ds)}, impulse {where}: radius {receptive_radius(ks, ds)} cells", fontsize=8
    )
    fig.tight_layout()
    return fig
