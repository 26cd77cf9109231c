"""Device pick and description (for report headers and results tables)."""
from __future__ import annotations

import platform
from pathlib import Path

import torch


def pick(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else cpu. An explicit 'cuda' without a GPU is an error."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be one of ['auto', 'cpu', 'cuda'], got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False (use device: auto or cpu)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def describe(device: torch.device | str | None = None) -> str:
    """'NVIDIA H100 80GB HBM3' or 'CPU: <model name> (N threads)'."""
    device = torch.device(device) if device is not None else pick()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"CPU: {model} ({torch.get_num_threads()} threads)"


def keep_freed_memory() -> bool:
    """Ask glibc malloc to keep freed blocks (up to 32 MiB each) instead of returning them to the OS.

    Small models on CPU allocate and free the same few-MiB activations every step; by default
    glibc serves those with mmap/munmap, so every step page-faults its memory in again (the
    Mamba-1 block at width 64, length 24 spent ~40 % of its time in the kernel). Keeping the
    blocks halves its forward+backward time. Called once at `import lib`; a no-op off glibc,
    or when SEQLAB_DEFAULT_MALLOC=1. Returns whether the settings were applied.
    """
    import ctypes
    import os

    if os.environ.get("SEQLAB_DEFAULT_MALLOC") == "1" or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    return all(libc.mallopt(k, v) == 1 for k, v in ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20)))
