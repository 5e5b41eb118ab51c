"""Periodic evaluation off the learner's critical path: a child process evaluates a
snapshot of the parameters while training goes on.

The main process copies the parameters into a shared snapshot (one memcpy) and sends the
global step they belong to; the evaluator plays `episodes` greedy (or epsilon-greedy)
episodes on its own environments, with the evaluation settings (whole Atari games), and
sends the result back. One evaluation at a time: a request made while one runs is
refused (the caller tries again at its next tick), so evaluation never queues up behind
training. Under hogwild the actor-learners never wait for it; under sync and ray the
learner pays only the copy. The snapshot is also what best.pt is written from when its
evaluation is the best so far."""
from __future__ import annotations

import os
import time
import traceback
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from .acting import Actor
from .algos import make_algorithm
from .config import Config
from .errors import WorkerError
from .evaluate import evaluate_policy
from .flat import bind_params_
from .procs import JOIN_TIMEOUT_S, kill_group, lead_own_group, resolve_start_method, single_threaded_children
from .threads import single_threaded

#: evaluation episodes are seeded from the run's seed plus this (as Agent.evaluate's)
EVAL_SEED_OFFSET = 10_000


class BackgroundEvaluator:
    """The evaluator process of one learn() call (see the module's docstring)."""

    def __init__(self, cfg: Config, factory: Any, obs_space: Any, action_space: Any, n_params: int,
                 episodes: int, epsilon: float, timeout: float = 0.0):
        ctx = mp.get_context(resolve_start_method(cfg.start_method))
        self.snapshot = torch.zeros(n_params)
        self.snapshot.share_memory_()
        self.conn, child = ctx.Pipe()
        self.step: int | None = None        # the step of the snapshot being evaluated
        self.sent_at = 0.0
        self.timeout = timeout
        forked = ctx.get_start_method() == "fork"
        self.proc = ctx.Process(target=_main, name="asyncrl-evaluator", daemon=True,
                                args=(child, self.conn if forked else None, os.getpid(), cfg, factory, obs_space, action_space,
                                      self.snapshot, episodes, cfg.seed + EVAL_SEED_OFFSET, epsilon, timeout))
        with single_threaded_children():
            self.proc.start()
        child.close()

    @property
    def busy(self) -> bool:
        return self.step is not None

    def submit(self, params: torch.Tensor, step: int) -> bool:
        """Evaluate the parameters as they are now, at global step `step`; False (nothing
        done) while an evaluation runs."""
        if self.busy:
            return False
        self.snapshot.copy_(params.detach().reshape(-1))
        self.conn.send(step)
        self.step, self.sent_at = step, time.monotonic()
        return True

    def poll(self, wait: float = 0.0) -> dict | None:
        """The finished evaluation's result (with its "step"), if one came back within `wait`
        seconds; WorkerError if the evaluator failed or died."""
        if not self.busy:
            return None
        try:
            ready = self.conn.poll(wait)
        except (EOFError, OSError):
            ready = True
        if not ready:
            if not self.proc.is_alive():
                raise WorkerError(f"the evaluation process died (exit code {self.proc.exitcode})")
            return None
        try:
            status, payload = self.conn.recv()
        except (EOFError, OSError):
            raise WorkerError(f"the evaluation process died (exit code {self.proc.exitcode})") from None
        step, self.step = self.step, None
        if status != "ok":
            raise WorkerError(f"periodic evaluation at step {step:,} failed: {payload}")
        return {**payload, "step": step, "seconds": round(time.monotonic() - self.sent_at, 3)}

    def close(self) -> None:
        try:
            self.conn.close()       # the evaluator's recv() ends: it exits
        except OSError:
            pass
        self.proc.join(timeout=JOIN_TIMEOUT_S if self.step is None else 0.5)
        kill_group(self.proc)
        self.proc.join(timeout=JOIN_TIMEOUT_S)


def _main(conn, parent_end, parent_pid: int, cfg: Config, factory, obs_space, action_space,
          snapshot: torch.Tensor, episodes: int, seed: int, epsilon: float, timeout: float) -> None:
    """The evaluator process: one math thread, Ctrl-C left to the main process, dead with it
    (with what its env started: procs.lead_own_group)."""
    single_threaded()
    lead_own_group(parent_pid)
    if parent_end is not None:
        parent_end.close()          # forked: the main process's end is ours too
    algorithm = make_algorithm(cfg)
    torch.manual_seed(seed)
    model = algorithm.build_model(obs_space, action_space)
    bind_params_(model, snapshot)
    actor = Actor(algorithm, model, obs_space, action_space, np.random.default_rng(seed), deterministic=True)
    while True:
        try:
            conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            result = evaluate_policy(actor, factory, episodes, seed, on_reset=actor.reset, epsilon=epsilon,
                                     timeout=timeout)
            reply = ("ok", result)
        except BaseException as exc:        # said to the main process, which decides
            reply = ("error", "".join(traceback.format_exception_only(type(exc), exc)).strip())
        try:
            conn.send(reply)
        except OSError:                     # training ended while this evaluation ran: nobody to tell
            return
