"""Executors own processes, parameters and the optimiser; algorithms own the math."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from threadpoolctl import threadpool_limits

from ..config import Config
from ..envs import EnvFactory
from ..errors import ConfigError
from ..optim import FlatOptimizer


@dataclass
class TrainJob:
    """What an executor needs to train: everything else stays with the Agent."""

    cfg: Config
    env_factory: EnvFactory
    observation_space: "object"     # gymnasium spaces of one environment
    action_space: "object"
    params: torch.Tensor            # flat parameters of the agent's (global) model
    target_params: torch.Tensor | None  # flat target network theta-, if the algorithm uses one
    optimizer: FlatOptimizer
    start_step: int
    target_step: int
    schedule: tuple[int, int]       # learning rate anneals to 0 from step a to step b
    time_origin: float              # time.time() for wall_time = 0 (earlier runs included)
    logger: "object"                # metrics.RunLogger
    checkpoint: Callable[[int], None]  # save a checkpoint at global step T


def single_threaded() -> None:
    """One thread for this process's math, for good: torch's intra-op pool and NumPy's BLAS
    (whose matrix products act for the CNN, models.NumpyCNN). A worker's first act: a forked
    child that uses its parent's OpenMP pool hangs, and N workers x M threads oversubscribe
    the cores (OpenBLAS threads spin while they wait)."""
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


def make_executor(cfg: Config):
    """The executor of a resolved config: `.resolve(env_factory) -> dict` of its concrete
    choices, `.run(job) -> final global step`, `.interrupted` after a Ctrl-C/SIGTERM."""
    executor = cfg.resolved().executor
    if executor == "hogwild":
        from .hogwild import HogwildExecutor

        return HogwildExecutor(cfg)
    if executor == "sync":
        from .sync import SyncExecutor

        return SyncExecutor(cfg)
    if executor == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(cfg)
    raise ConfigError(f"unknown executor {cfg.executor!r}; available: hogwild, sync, ray")
