"""Precision and compile resolved per device (stubbed capabilities: no GPU needed)."""
import pytest
import torch

from lib.device import resolve_compile, resolve_precision

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize("amp, device, cap, want", [
    ("auto", CUDA, (9, 0), "bf16"),  # H100/H200
    ("auto", CUDA, (8, 0), "bf16"),  # A100
    ("auto", CUDA, (7, 5), "fp32"),  # T4: bf16 is not native there
    ("auto", CUDA, (6, 0), "fp32"),  # P100
    ("auto", CPU, None, "fp32"),
    (True, CUDA, (8, 6), "bf16"),   # the old boolean still reads
    (False, CUDA, (9, 0), "fp32"),
    ("fp16", CUDA, (7, 5), "fp16"),
    ("bf16", CPU, None, "bf16"),    # CPU autocast supports bf16
    ("off", CUDA, (9, 0), "fp32"),
])
def test_precision_resolution(amp, device, cap, want):
    assert resolve_precision(amp, device, cap) == want


@pytest.mark.parametrize("compile_, device, cap, want", [
    ("auto", CUDA, (7, 0), True), ("auto", CUDA, (6, 0), False), ("auto", CPU, None, False),
    (True, CPU, None, True), (False, CUDA, (9, 0), False), ("true", CUDA, (8, 0), True),
])
def test_compile_resolution(compile_, device, cap, want):
    assert resolve_compile(compile_, device, cap) is want


@pytest.mark.parametrize("call, message", [
    (lambda: resolve_precision("bf16", CUDA, (7, 5)), r"bf16 needs a GPU of compute capability 8.0 or newer; this one is sm_75"),
    (lambda: resolve_precision("fp16", CPU), r"fp16 autocast needs a CUDA GPU"),
    (lambda: resolve_compile(True, CUDA, (6, 0)), r"compute capability 7.0 or newer for Triton; this one is sm_60"),
    (lambda: resolve_precision("fp8", CPU), r"amp must be one of \['auto', 'bf16', 'fp16', 'off'\]"),
    (lambda: resolve_compile("sometimes", CPU), r"compile must be one of \['auto', 'true', 'false'\]"),
])
def test_requests_the_device_cannot_honour_are_one_line_errors(call, message):
    with pytest.raises(ValueError, match=message) as e:
        call()
    assert "\n" not in str(e.value)
