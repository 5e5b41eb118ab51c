"""Executors own processes, parameters and the optimiser; algorithms own the math.

The protocol every executor follows is written in `base`; the supervision policy that
hogwild and ray share (restarts, faults, periodic checkpoints, stop-when-solved) in
`supervise`. Each executor checks its own options: they are registered with the config's
validation here.
"""
from __future__ import annotations

from ..config import Config, register
from ..errors import ConfigError
from .base import Executor, TrainJob
from .hogwild import HogwildExecutor
from .ray_executor import RayExecutor
from .sync import SyncExecutor

EXECUTORS: dict[str, type[Executor]] = {cls.name: cls for cls in (HogwildExecutor, SyncExecutor, RayExecutor)}
for _cls in EXECUTORS.values():
    register(_cls)


def make_executor(cfg: Config) -> Executor:
    """The executor of a config, `executor: auto` resolved (see base.Executor for what it offers)."""
    cls = EXECUTORS.get(cfg.resolved().executor)
    if cls is None:
        raise ConfigError(f"unknown executor {cfg.executor!r}; available: {', '.join(EXECUTORS)}")
    return cls(cfg)


__all__ = ["EXECUTORS", "Executor", "TrainJob", "HogwildExecutor", "SyncExecutor", "RayExecutor",
           "make_executor"]
