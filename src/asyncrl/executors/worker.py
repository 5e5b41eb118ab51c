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
from ..flat import attach_flat_grads_, bind_params_, flatten_params_
from ..learner import compute_grads
from ..optim import FlatOptimizer, annealed_lr
from ..rollout import EpisodeSegmentCollector
from .counter import StepCounter, crossed_period

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


def run_worker(rank: int, spec: WorkerSpec) -> None:
    cfg = spec.cfg
    seed = cfg.seed + rank
    torch.manual_seed(seed)
    np.random.seed(seed)
    env = spec.env_factory()
    env.action_space.seed(seed)
    algo = make_algorithm(cfg)
    model = algo.build_model(env.observation_space, env.action_space)
    local = flatten_params_(model)
    grad = attach_flat_grads_(model)
    shared, opt, counter, queue = spec.params, spec.optimizer, spec.counter, spec.queue
    target_flat, target = spec.target_params, None
    if target_flat is not None:      # theta-: a view of the shared target, never copied locally
        target = algo.build_model(env.observation_space, env.action_space)
        bind_params_(target, target_flat)
    seg, period = algo.segment_length, cfg.target_update
    collector = EpisodeSegmentCollector(env, seg, seed, next_action=algo.needs_next_action)
    lr0, (s0, s1), anneal = cfg.lr, spec.schedule, cfg.lr_anneal
    keys = algo.stat_keys
    sums = dict.fromkeys(keys, 0.0)
    updates = skipped = 0
    norm_sum = lr = 0.0
    last_report = time.monotonic()

    def report() -> None:
        nonlocal sums, updates, skipped, norm_sum
        queue.put(("stats", rank, updates, skipped, norm_sum, sums, lr))
        sums = dict.fromkeys(keys, 0.0)
        updates = skipped = 0
        norm_sum = 0.0

    policy = algo.make_policy(model, np.random.default_rng(seed))
    policy.at_step(counter.done)
    while True:
        n = counter.reserve(seg)
        if n == 0:
            break
        local.copy_(shared)                               # theta' <- theta
        ro, finished = collector.collect(policy, n)
        stats, norm = compute_grads(algo, model, ro, grad, cfg.max_grad_norm, target)
        T = counter.commit(n, ro.length)
        if target_flat is not None and crossed_period(T, ro.length, period):
            target_flat.copy_(shared)                     # theta- <- theta (Alg. 1, 2)
        policy.at_step(T)
        norm_f = float(norm)
        lr = annealed_lr(lr0, T, s0, s1, anneal)
        if np.isfinite(norm_f):
            opt.step(shared, grad, lr, rank)
            updates += 1
            norm_sum += norm_f
            for k in keys:
                sums[k] += float(stats[k])
        else:
            skipped += 1                                  # never apply a non-finite gradient
        if finished is not None:
            queue.put(("episode", rank, T, time.time() - spec.time_origin, finished[0], finished[1]))
        now = time.monotonic()
        if now - last_report >= STATS_EVERY_S:
            report()
            last_report = now
    if updates or skipped:
        report()
    env.close()
