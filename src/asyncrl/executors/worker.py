"""The hogwild actor-learner process (paper, Algorithms 1-3, one per worker).

Per segment: sync the local parameters from the shared ones, act for up to t_max steps
or to the episode's end, compute gradients locally, apply them to the shared parameters
with the shared optimiser, lock-free. Nothing else happens per environment step.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..algos import make_algorithm
from ..config import Config
from ..envs import EnvFactory
from ..errors import NonFiniteError
from ..flat import bind_params_, flatten_params_
from ..learner import Learner
from ..optim import FlatOptimizer
from ..rollout import EpisodeSegmentCollector
from . import single_threaded
from .counter import StepCounter

STATS_EVERY_S = 1.0
#: a replacement worker's seeds: seed + rank + RESEED_STRIDE * (how many it replaces)
RESEED_STRIDE = 1000
#: exit code of a worker that failed (its traceback is on its queue)
EXIT_FAILED = 1


@dataclass
class WorkerSpec:
    cfg: Config
    env_factory: EnvFactory
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
    # Ctrl-C reaches the whole process group; the main process decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(spec.supervisor_pid)
    try:
        run_worker(rank, spec, queue, life)
    except BaseException as exc:
        fatal = str(exc) if isinstance(exc, NonFiniteError) else None   # a restart would not help
        queue.put(("error", rank, traceback.format_exc(), fatal))
        queue.close()
        queue.join_thread()
        os._exit(EXIT_FAILED)


def _die_with(supervisor: int) -> None:
    """On Linux, have the kernel SIGKILL this worker when the main process dies, even by
    SIGKILL (no orphan trains on, or blocks on a queue nobody reads). Only for a direct
    child (not under forkserver); if the main process is already gone, exit."""
    if not sys.platform.startswith("linux") or os.getppid() != supervisor:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)    # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:      # it died before the prctl
        os._exit(EXIT_FAILED)


def make_worker_learner(cfg: Config, obs_space, action_space, params: torch.Tensor | None,
                        target_params: torch.Tensor | None, optimizer: FlatOptimizer | None,
                        schedule: tuple[int, int], rank: int) -> Learner:
    """A hogwild actor-learner's learner: gradients on a local copy theta' of the shared
    parameters, applied to the shared ones; theta- read in place from shared memory.
    params None: a learner that only computes gradients on theta', which its executor fills
    (a ray actor's; the driver applies them)."""
    algo = make_algorithm(cfg)
    model = algo.build_model(obs_space, action_space)
    local = flatten_params_(model)
    target = None
    if target_params is not None:    # theta-: a view of the shared target, never copied locally
        target = algo.build_model(obs_space, action_space)
        bind_params_(target, target_params)
    return Learner(algo, model, local, local if params is None else params, optimizer, cfg, schedule,
                   rank, target, target_params)


@dataclass
class ActorLearner:
    """What one actor-learner acts and learns with, under any executor that runs one environment
    per worker (hogwild's processes, ray's actors): the same seeds, env, learner, collector and
    policy, so that the same rollouts give the same gradients."""

    env: Any
    learner: Learner
    collector: EpisodeSegmentCollector
    policy: Any

    @classmethod
    def build(cls, cfg: Config, env_factory: EnvFactory, rank: int, life: int, params: torch.Tensor | None,
              target_params: torch.Tensor | None, optimizer: FlatOptimizer | None,
              schedule: tuple[int, int]) -> "ActorLearner":
        seed = cfg.seed + rank + RESEED_STRIDE * life     # a replacement does not replay the same episodes
        torch.manual_seed(seed)
        np.random.seed(seed)
        env = env_factory()
        env.action_space.seed(seed)
        learner = make_worker_learner(cfg, env.observation_space, env.action_space, params,
                                      target_params, optimizer, schedule, rank)
        algo = learner.algo
        collector = EpisodeSegmentCollector(env, algo.segment_length, seed, next_action=algo.needs_next_action)
        policy = algo.make_policy(learner.model, np.random.default_rng(seed))
        if policy.tape is not None:     # replayed by the learner while theta' is what the actor used
            policy.tape.watch(learner.local)
        return cls(env, learner, collector, policy)


def run_worker(rank: int, spec: WorkerSpec, queue: Any, life: int = 0) -> None:
    actor = ActorLearner.build(spec.cfg, spec.env_factory, rank, life, spec.params, spec.target_params,
                               spec.optimizer, spec.schedule)
    env, learner, collector, policy = actor.env, actor.learner, actor.collector, actor.policy
    counter, seg = spec.counter, learner.algo.segment_length
    policy.at_step(counter.done)
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
