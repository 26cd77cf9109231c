"""Batches are drawn where the training generator lives (#16), and on the CPU nothing changed.

The digests below are of the first three training batches of each task, drawn before batches
moved to the generator's device (commit c8a61c0): CPU results must stay bitwise identical.
"""
import hashlib

import pytest
import torch

from lib.curriculum import AdaptiveLength, UniformLength
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig
from lib.tasks.heldout import HeldOut
from lib.tasks.lm import LMTask, TextConfig
from lib.tasks.regression import InContextRegression
from lib.tasks.selective_copy import SelectiveCopy, SelectiveCopyConfig, sample

BEFORE = {
    "linear": "27c5adce3943399d", "noisy_linear": "0fddb981db730b2d", "sparse_linear": "1690cf8f91152c58",
    "relu_2nn": "3861c2ff19a0c756", "decision_tree": "5ea2bb5076930923", "selective_copy": "178023efd22de225",
    "copy": "8946a28868234493", "copy_uniform": "3dc521634d85aea5", "copy_adaptive": "a64b2d7eca4b6e12",
    "addition": "fe0d4c76a9aa709b", "lm": "13cc36ebb971b28e",
}
DOCS = [f"doc {i}: " + "abcdefghij" * (i % 7 + 3) for i in range(40)]


def make(name):
    if name in ("linear", "noisy_linear", "sparse_linear", "relu_2nn", "decision_tree"):
        return InContextRegression.of(name, 5, 6, 8)
    return {
        "selective_copy": lambda: SelectiveCopy(SelectiveCopyConfig(val_size=50)),
        "copy": lambda: Algorithmic(AlgorithmicConfig(val_size=50)),
        "copy_uniform": lambda: Algorithmic(AlgorithmicConfig(val_size=50), lengths=UniformLength(20)),
        "copy_adaptive": lambda: Algorithmic(AlgorithmicConfig(val_size=50), lengths=AdaptiveLength(20, start=5)),
        "addition": lambda: Algorithmic(AlgorithmicConfig(task="addition", val_size=50)),
        "lm": lambda: LMTask(TextConfig(tokenizer="bytes", ctx=16, n_docs=40, val_windows=2), docs=DOCS),
    }[name]()


def digest(task, n=3, batch_size=32):
    g, m = torch.Generator().manual_seed(7), hashlib.sha256()
    for step in range(n):
        for t in task.train_batch(batch_size, g, step):
            if isinstance(t, torch.Tensor):
                m.update(t.contiguous().numpy().tobytes())
    return m.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_cpu_batches_are_bitwise_unchanged(name):
    assert digest(make(name)) == BEFORE[name]


def test_batches_are_drawn_on_the_generators_device():
    # 'meta' has no generator, so the device is read from the generator: every tensor follows it
    task = InContextRegression.of("linear", 4, 5, 8)
    g = torch.Generator().manual_seed(0)
    assert all(t.device == g.device for t in task.train_batch(4, g) if isinstance(t, torch.Tensor))


def test_device_path_never_lets_a_heldout_row_through_and_matches_the_exact_filter():
    cfg = SelectiveCopyConfig(val_size=64)
    held = sample(cfg, 64, gen=torch.Generator().manual_seed(1))
    fresh = sample(cfg, 200, gen=torch.Generator().manual_seed(2))
    rows = torch.cat([held.y[:12], fresh.y])[torch.randperm(212, generator=torch.Generator().manual_seed(3))]
    h = HeldOut(held.y)
    assert torch.equal(h.keep_hashed(rows), h.keep(rows))  # same decisions as the exact byte test here
    out = h.fill(lambda m: (rows[:m],), 150, on_device=True)[0]  # draws 150 + a margin of 18 rows
    assert len(out) == 150 and not set(map(bytes, out.numpy().astype("int64"))) & {bytes(r) for r in held.y.numpy().astype("int64")}
    kept = rows[:168][h.keep(rows[:168])]
    assert torch.equal(out, kept[:150])  # kept rows, in drawn order
    assert h.skipped == int((~h.keep(rows[:168])).sum())
    assert h.skipped > 0
    h.check()  # enough kept rows: no error


def test_device_path_reports_a_batch_it_could_not_fill():
    held = sample(SelectiveCopyConfig(val_size=16), 16, gen=torch.Generator().manual_seed(1))
    h = HeldOut(held.y)
    h.fill(lambda m: (held.y.repeat(4, 1)[:m],), 20, on_device=True)  # every drawn row is held out
    with pytest.raises(RuntimeError, match="held-out rows reached"):
        h.check()


def test_lm_windows_for_an_accelerator_come_from_a_checkpointed_host_generator():
    task = make("lm")
    cuda_like = torch.Generator().manual_seed(5)
    # stand in for an accelerator's generator: only its device type and seed are read
    class Fake:
        device = torch.device("cuda")

        def initial_seed(self):
            return cuda_like.initial_seed()

    if not torch.cuda.is_available():  # pin_memory needs CUDA; check the window cut without it
        torch_pin = torch.Tensor.pin_memory
        torch.Tensor.pin_memory = lambda self: self
    try:
        a = task.train_batch(8, Fake())
        state = task.state_dict()
        b = task.train_batch(8, Fake())
        task2 = make("lm")
        task2.load_state_dict(state)
        assert torch.equal(task2.train_batch(8, Fake()).x, b.x)  # exact resume of the host stream
        assert not torch.equal(a.x, b.x)
    finally:
        if not torch.cuda.is_available():
            torch.Tensor.pin_memory = torch_pin
