"""The executor protocol: what an executor is given, what it returns, what it reports.

An executor owns processes, parameters and the optimiser: where rollouts are collected
and where gradients go. It never asks which algorithm it runs; the algorithm's math and
the Learner are the same under every executor.

    cls.option_problems(cfg) -> list[str]   its own options checked, one line each (also
                                            when another executor is chosen: an option
                                            that only it takes is then refused)
    cls.probe_problems(cfg)  -> list[str]   checks that touch the outside (a cluster's
                                            address), run once the config is otherwise valid
    cls.default_workers      -> int | None  `workers` when the caller gives none (None: the
                                            config's default, one per core)
    Executor(cfg)
    .resolve(env_factory)    -> dict        the concrete choices behind `auto` values, for
                                            the run's config.yaml (called before run)
    .describe()              -> str         how it runs, for the CLI's first line
    .update_layout()         -> (bool, int) how the optimiser is stepped: whether each update
                                            also refreshes a worker's private copy of theta
                                            (hogwild's theta'), and on how many threads
    .prepare_update(...)     -> str         the optimiser's update chosen (the fused one compiled)
                                            for that layout, before any worker starts
    .run(job: TrainJob)      -> int         train from job.start_step to job.target_step (or
                                            until stopped); returns the global step reached
    .step                    int | None     the global step of the parameters, also after a
                                            failure (None before run)
    .interrupted             bool           run() returned early on Ctrl-C/SIGTERM
    .restarts                int            workers replaced during the last run()
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from ..config import Config
from ..optim import FlatOptimizer


@dataclass
class TrainJob:
    """What an executor needs to train: everything else stays with the Agent."""

    cfg: Config
    env_factory: "object"           # envs.EnvFactory
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
    live_params: torch.Tensor | None = None  # the parameters being trained, where not `params`
                                        # (the sync executor's on a device): what evaluation reads


class Executor:
    """Base of the executors: the protocol in the module's docstring, and its defaults."""

    name: ClassVar[str] = ""
    default_workers: ClassVar[int | None] = None

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.interrupted = False
        self.step: int | None = None
        self.supervisor = None          # supervise.Supervisor of the last run(), where it has one

    @property
    def restarts(self) -> int:
        return self.supervisor.restarts if self.supervisor is not None else 0

    @classmethod
    def option_problems(cls, cfg: Config) -> list[str]:
        return []

    @classmethod
    def probe_problems(cls, cfg: Config) -> list[str]:
        return []

    def resolve(self, factory) -> dict:
        return {"executor": self.name, "device": "cpu"}

    def describe(self) -> str:
        raise NotImplementedError

    def update_layout(self) -> tuple[bool, int]:
        return False, torch.get_num_threads()

    def prepare_update(self, optimizer: FlatOptimizer, params: torch.Tensor, choice: str, device: str,
                       announce: bool) -> str:
        """The optimiser's update for this executor's layout (update_layout): the fused one where
        `choice` (the fused_optimizer option) and the machine allow it, compiled here, before any
        worker starts (hogwild workers fork with it; only they update theta while refreshing
        their own copy theta', the "mirror"). `announce`: say so when compiling took long.
        Returns what was chosen, for config.yaml."""
        t0 = time.perf_counter()
        mirror, threads = self.update_layout()
        chosen = optimizer.use_fused(choice, params, device, mirror=mirror, threads=threads)
        took = time.perf_counter() - t0
        if took > 2.0 and announce:
            print(f"asyncrl: compiled the fused RMSProp update in {took:.0f} s (cached for later runs; "
                  f"--fused-optimizer off skips it)", file=sys.stderr, flush=True)
        return chosen

    def run(self, job: TrainJob) -> int:
        raise NotImplementedError


class ActorExecutor(Executor):
    """An executor whose actor-learners each step one environment on the CPU (hogwild's
    processes, ray's actors): the options of the batched sync executor are not theirs."""

    noun: ClassVar[str] = "actor-learners"
    #: runs a2c too (the ray executor: data-parallel learners, executors.ray_a2c)
    takes_a2c: ClassVar[bool] = False

    @classmethod
    def option_problems(cls, cfg: Config) -> list[str]:
        if cfg.executor != cls.name:
            return []
        p, who = [], f"{cls.name} {cls.noun}"
        if cfg.algo == "a2c" and not cls.takes_a2c:
            p.append(f"a2c is A3C's loss under the sync executor; for {who} use a3c (or drop "
                     f"--executor {cls.name})")
        if cfg.vec_env != "auto":
            p.append(f"vec-env {cfg.vec_env!r} applies to --executor sync only ({who} each step one "
                     f"environment)")
        if cfg.device == "cuda":
            p.append(f"device 'cuda' needs --executor sync ({who} run on the CPU)")
        if cfg.torch_threads > 0:
            p.append(f"torch-threads applies to --executor sync (each {cls.name} actor-learner uses one "
                     f"thread)")
        return p
