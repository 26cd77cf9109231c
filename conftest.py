"""pytest set-up shared by unit tests and nbval: headless progress bars, one thread per xdist worker.

Two workers with two threads each on two cores oversubscribe them (OpenMP spin-waits), which
makes the suite several times slower; notebook kernels inherit these variables.
"""
import os

os.environ.setdefault("SEQLAB_HEADLESS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
