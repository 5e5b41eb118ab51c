"""The hogwild actor-learner process (paper, Algorithms 1-3, one per worker).

Per segment: sync the local parameters from the shared ones, act for up to t_max steps
or to the episode's end, compute gradients locally, apply them to the shared parameters
with the shared optimiser, lock-free. Nothing else happens per environment step.
"""
from __future__ import annotations

import os
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..algos import make_algorithm
from ..config import Config
from ..envs import EnvFactory
from ..flat import bind_params_, flatten_params_
from ..learner import Learner
from ..optim import FlatOptimizer
from ..rollout import EpisodeSegmentCollector
from .counter import StepCounter

STATS_EVERY_S = 1.0


@dataclass
class WorkerSpec:
    cfg: Config
    env_factory: EnvFactory
    params: torch.Tensor          # flat shared parameters
    target_params: torch.Tensor | None  # flat shared target network theta- (value-based methods)
    optimizer: FlatOptimizer      # statistics in shared memory
    counter: StepCounter
    queue: Any                    # worker -> main messages
    schedule: tuple[int, int]     # learning-rate annealing from step a to step b
    time_origin: float            # time.time() at which wall_time = 0


def worker_main(rank: int, spec: WorkerSpec) -> None:
    # First: one intra-op thread. A forked child that uses the parent's OpenMP pool hangs.
    torch.set_num_threads(1)
    # Ctrl-C reaches the whole process group; the main process decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run_worker(rank, spec)
    except BaseException:
        spec.queue.put(("error", rank, traceback.format_exc()))
        spec.queue.close()
        spec.queue.join_thread()
        os._exit(1)


def make_worker_learner(cfg: Config, obs_space, action_space, params: torch.Tensor,
                        target_params: torch.Tensor | None, optimizer: FlatOptimizer,
                        schedule: tuple[int, int], rank: int) -> Learner:
    """A hogwild actor-learner's learner: gradients on a local copy theta' of the shared
    parameters, applied to the shared ones; theta- read in place from shared memory."""
    algo = make_algorithm(cfg)
    model = algo.build_model(obs_space, action_space)
    local = flatten_params_(model)
    target = None
    if target_params is not None:    # theta-: a view of the shared target, never copied locally
        target = algo.build_model(obs_space, action_space)
        bind_params_(target, target_params)
    return Learner(algo, model, local, params, optimizer, cfg, schedule, rank, target, target_params)


def run_worker(rank: int, spec: WorkerSpec) -> None:
    cfg = spec.cfg
    seed = cfg.seed + rank
    torch.manual_seed(seed)
    np.random.seed(seed)
    env = spec.env_factory()
    env.action_space.seed(seed)
    learner = make_worker_learner(cfg, env.observation_space, env.action_space, spec.params,
                                  spec.target_params, spec.optimizer, spec.schedule, rank)
    algo, counter, queue = learner.algo, spec.counter, spec.queue
    seg = algo.segment_length
    collector = EpisodeSegmentCollector(env, seg, seed, next_action=algo.needs_next_action)
    policy = algo.make_policy(learner.model, np.random.default_rng(seed))
    policy.at_step(counter.done)
    last_report = time.monotonic()
    while True:
        n = counter.reserve(seg)
        if n == 0:
            break
        learner.pull()                                    # theta' <- theta
        ro, finished = collector.collect(policy, n)
        T = counter.commit(n, ro.length)
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
