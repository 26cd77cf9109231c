"""Memory of one forward+backward pass, the same measure on any device.

On CUDA: the peak of torch.cuda.max_memory_allocated during the pass, minus what was allocated
before it (parameters, inputs). On CPU, where torch keeps no allocator statistics, the bytes of
every tensor autograd saves for the backward pass, counted once per storage: the activations
(what grows with context) and the weights the backward needs (e.g. a masked mixer's W ⊙ M,
a T x T matrix per layer), the dominant term of the true peak.
"""
from __future__ import annotations

from typing import Callable

import torch


def saved_activation_bytes(loss_fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct storages autograd saves while computing loss_fn() (then backward)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        except (RuntimeError, NotImplementedError):  # e.g. a tensor without storage
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss.backward()
    return sum(seen.values())


def fwd_bwd_memory_mb(loss_fn: Callable[[], torch.Tensor], device: torch.device | str = "cpu") -> float:
    """MiB used by one forward+backward of loss_fn (see the module docstring for the measure per device)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        loss_fn().backward()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    return saved_activation_bytes(loss_fn) / 2**20
