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


PRECISIONS = ("auto", "bf16", "fp16", "off")


def capability(device: torch.device) -> tuple[int, int] | None:
    """CUDA compute capability (major, minor), None off CUDA."""
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None


def _key(value, allowed: tuple, name: str) -> str:
    v = {True: "auto" if name == "amp" else "true", False: "off" if name == "amp" else "false"}.get(value, value) \
        if isinstance(value, bool) else str(value).lower()
    if v not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)} (or true/false), got {value!r}")
    return v


def check_precision_key(amp) -> str:
    return _key(amp, PRECISIONS, "amp")


def check_compile_key(compile_) -> str:
    return _key(compile_, ("auto", "true", "false"), "compile")


def resolve_precision(amp, device: torch.device, cap: tuple[int, int] | None = None) -> str:
    """'bf16', 'fp16' or 'fp32' for this device. auto: bf16 where it is native (CUDA sm >= 8.0),
    else fp32. An explicit bf16 on an older GPU, or fp16 off CUDA, is an error naming the device."""
    want = check_precision_key(amp)
    cap = capability(device) if cap is None and device.type == "cuda" else cap
    if want == "off":
        return "fp32"
    if want == "auto":
        return "bf16" if device.type == "cuda" and cap is not None and cap >= (8, 0) else "fp32"
    if want == "bf16" and device.type == "cuda" and (cap is None or cap < (8, 0)):
        raise ValueError(f"amp: bf16 needs a GPU of compute capability 8.0 or newer; this one is sm_{cap[0]}{cap[1]} "
                         "(use amp: fp16 or off)" if cap else "amp: bf16 needs compute capability 8.0 or newer")
    if want == "fp16" and device.type != "cuda":
        raise ValueError("amp: fp16 autocast needs a CUDA GPU (use amp: bf16 or off on a CPU)")
    return want


def resolve_compile(compile_, device: torch.device, cap: tuple[int, int] | None = None) -> bool:
    """Whether to torch.compile here. auto: on CUDA where Triton runs (sm >= 7.0), not on a CPU (its
    compile time rarely pays back for these small models). An explicit true on an older GPU is an error."""
    want = check_compile_key(compile_)
    cap = capability(device) if cap is None and device.type == "cuda" else cap
    if want == "false":
        return False
    if want == "auto":
        return device.type == "cuda" and cap is not None and cap >= (7, 0)
    if device.type == "cuda" and (cap is None or cap < (7, 0)):
        raise ValueError(f"compile: true needs a GPU of compute capability 7.0 or newer for Triton; this one is "
                         f"sm_{cap[0]}{cap[1]} (use compile: false)" if cap else "compile: true needs compute capability 7.0+")
    return True
