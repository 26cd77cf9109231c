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
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
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
