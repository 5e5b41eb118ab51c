"""Math threads: torch's intra-op pool and NumPy's BLAS, for one process or one block."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from threadpoolctl import threadpool_limits


def single_threaded() -> None:
    """One thread for this process's math, for good: torch's intra-op pool and NumPy's BLAS
    (whose matrix products act for the CNN, nets.numpy_mirror.NumpyCNN). A worker's first act:
    a forked child that uses its parent's OpenMP pool hangs, and N workers x M threads
    oversubscribe the cores (OpenBLAS threads spin while they wait)."""
    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")


@contextmanager
def math_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads and NumPy's BLAS threads set to n inside the block, restored
    after it."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(saved)
