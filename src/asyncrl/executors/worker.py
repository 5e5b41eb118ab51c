"""The hogwild actor-learner process (paper, Algorithms 1-3, one per worker).

Per segment: sync the local parameters from the shared ones, act for up to t_max steps
or to the episode's end, compute gradients locally, apply them to the shared parameters
with the shared optimiser, lock-free. Nothing else happens per environment step.
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from ..config import Config
from ..errors import NonFiniteError
from ..optim import FlatOptimizer
from ..procs import EXIT_FAILED, lead_own_group
from ..threads import single_threaded
from .actor import ActorLearner
from .counter import StepCounter

STATS_EVERY_S = 1.0


@dataclass
class WorkerSpec:
    cfg: Config
    env_factory: Any              # envs.EnvFactory
    params: torch.Tensor          # flat shared parameters
    target_params: torch.Tensor | None  # flat shared target network theta- (value-based methods)
    optimizer: FlatOptimizer      # statistics in shared memory
    counter: StepCounter
    schedule: tuple[int, int]     # learning-rate annealing from step a to step b
    time_origin: float            # time.time() at which wall_time = 0
    supervisor_pid: int           # the main process


def worker_main(rank: int, spec: WorkerSpec, queue: Any, life: int = 0) -> None:
    """Run worker `rank` (its `life`-th process: 0 first, then replacements) until the counter
    says training is over. `queue` (this process's own) carries its messages to the main
    process; a failure sends ("error", rank, traceback, message if it must stop the run)."""
    # First: one thread for torch and NumPy's BLAS. A forked child that uses the parent's
    # OpenMP pool hangs.
    single_threaded()
    # Ctrl-C and a SIGTERM to the group are the main process's to handle; when this worker
    # dies (killed by the main process, or with it), what its env started (ViZDoom's
    # engine) goes too
    lead_own_group(spec.supervisor_pid)
    try:
        run_worker(rank, spec, queue, life)
    except BaseException as exc:
        fatal = str(exc) if isinstance(exc, NonFiniteError) else None   # a restart would not help
        queue.put(("error", rank, traceback.format_exc(), fatal))
        queue.close()
        queue.join_thread()
        os._exit(EXIT_FAILED)


def run_worker(rank: int, spec: WorkerSpec, queue: Any, life: int = 0) -> None:
    actor = ActorLearner.build(spec.cfg, spec.env_factory, rank, life, spec.params, spec.target_params,
                               spec.optimizer, spec.schedule)
    env, learner, collector, policy = actor.env, actor.learner, actor.collector, actor.policy
    counter, seg = spec.counter, learner.algo.segment_length
    policy.at_step(counter.step)
    last_report = time.monotonic()
    while True:
        n = counter.reserve(seg, rank)
        if n == 0:
            break
        learner.pull()                                    # theta' <- theta
        ro, finished = collector.collect(policy, n)
        T = counter.commit(ro.length, rank)
        learner.update(ro, T)
        policy.at_step(T)
        if finished is not None:
            queue.put(("episode", rank, T, time.time() - spec.time_origin, finished[0], finished[1]))
        now = time.monotonic()
        if now - last_report >= STATS_EVERY_S:
            queue.put(("stats", rank, *learner.take_stats()))
            last_report = now
    if learner.has_stats:
        queue.put(("stats", rank, *learner.take_stats()))
    env.close()
