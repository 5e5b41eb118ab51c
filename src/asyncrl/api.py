"""The Python API: asyncrl.A3C(env, workers=..., **hyperparameters) and friends.

    agent = asyncrl.A3C("CartPole-v1", workers=2, lr=1e-3)
    agent.learn(200_000)
    agent.evaluate(20)            # {'mean_return': ..., 'std_return': ..., ...}
    agent.save("a3c.pt"); agent = asyncrl.load("a3c.pt")
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch

from .algos import make_algorithm
from .checkpoint import (agent_payload, clean_temp_files, load_checkpoint, nonfinite_parts, restore_agent,
                         save_checkpoint)
from .config import Config
from .envs import EnvFactory, check_same_spaces, probe_spaces
from .errors import ConfigError, EnvError, StorageError
from .evaluate import run_evaluation
from .executors import EXECUTORS, TrainJob, make_executor
from .flat import flatten_params_
from .learner import check_finite_params
from .metrics import RunLogger
from .optim import build_optimizer
from .rollout import ObsWriter
from .run import RunLock, hold_run_dir, load_resumable, prepare_run_dir, save_run_checkpoint, write_config, write_eval
from .spaces import space_from_dict


class Agent:
    """An agent of one algorithm: its model, optimiser state, global step and run folder."""

    algo: ClassVar[str] = ""

    def __init__(self, env: "str | Callable[[], gym.Env]", workers: int | None = None, *, run_dir: str | None = None,
                 overwrite: bool = False, progress: bool | None = False, **hyperparameters: Any):
        factory = EnvFactory(env)
        fixed = {"algo": self.algo, "env": factory.name, "run_dir": run_dir or ""}
        if workers is not None:
            fixed["workers"] = workers
        clash = sorted(set(hyperparameters) & set(fixed))
        if clash:
            raise ConfigError(f"{clash[0]!r} is set by {type(self).__name__} itself; do not pass it as a hyperparameter")
        cfg = Config.from_dict({**hyperparameters, **fixed}, source=type(self).__name__).resolved()
        executor = EXECUTORS.get(cfg.executor)           # None: an unknown name, refused by check()
        default_workers = executor.default_workers if executor is not None else None
        if workers is None and "workers" not in hyperparameters and default_workers is not None:
            cfg = cfg.replace(workers=default_workers)     # e.g. sync: environments in lockstep
        cfg.check()
        factory = factory.configured(cfg)       # Atari games get the paper's preprocessing
        self.progress = progress
        self._setup(cfg, factory, *probe_spaces(factory))
        # last, once everything is checked: --overwrite must not delete a run for nothing.
        # The folder stays locked until the end of this agent's next learn().
        if cfg.run_dir:
            self._run_lock = prepare_run_dir(cfg.run_dir, overwrite)

    def _setup(self, cfg: Config, factory: EnvFactory | None, obs_space: gym.Space, action_space: gym.Space) -> None:
        self.config = cfg
        self.env_factory = factory
        self.observation_space, self.action_space = obs_space, action_space
        self.algorithm = make_algorithm(cfg)
        self.algorithm.check_spaces(obs_space, action_space, cfg.env)
        torch.manual_seed(cfg.seed)
        self.model = self.algorithm.build_model(obs_space, action_space)
        self.params = flatten_params_(self.model)
        # theta- starts as a copy of theta (value-based methods only)
        self.target_params = self.params.clone() if self.algorithm.uses_target_network else None
        self.optimizer = build_optimizer(cfg, self.params.numel())
        self.global_step, self.wall_time = 0, 0.0
        self.schedule = (0, cfg.steps)
        self.best_return = float("nan")   # the run's measure at its best checkpoint (best.pt)
        self.worker_restarts = 0          # worker processes replaced during the last learn()/resume()
        self.last_eval: dict | None = None
        # what the last learn()/resume() did, for status lines that must be true
        self.finished = False             # training reached its target (final.pt written, if it could be)
        self.train_seconds = 0.0          # its time, the final evaluation left out
        self.checkpoints_written = 0      # checkpoints it wrote into the run folder
        self.checkpoint_step: int | None = None   # the step of the run folder's newest good checkpoint, if known
        self._run_lock: RunLock | None = None
        self._untrusted_env: str | None = None    # a module:Id id a loaded checkpoint named, not trusted
        self._write_obs = ObsWriter(obs_space)
        self._obs_buf = self._write_obs.rows(1).numpy()
        self._act_rng = np.random.default_rng(cfg.seed + 20_000)
        self._policies: dict = {}

    # ------------------------------------------------------------------ training
    @property
    def run_dir(self) -> str:
        return self.config.run_dir

    @property
    def frames_per_step(self) -> int:
        """Emulator frames per agent step: the action repeat for Atari games, else 1."""
        atari = getattr(self.env_factory, "atari", None)
        return atari.frame_skip if atari is not None else 1

    @property
    def recent_return(self) -> float:
        """Mean return of the last 100 training episodes of the last learn() (nan before)."""
        logger = getattr(self, "_logger", None)
        return logger.recent_mean if logger is not None else float("nan")

    def learn(self, steps: int | None = None) -> "Agent":
        """Train for `steps` more global environment steps (default: the config's `steps`).

        The learning rate anneals to 0 over this call. Ctrl-C stops the workers, saves a
        checkpoint and re-raises KeyboardInterrupt (Ctrl-C during the final evaluation too:
        then `finished` is True and final.pt is saved). A checkpoint that cannot be written
        (a full disk) is a warning while training and a StorageError at the end.
        """
        steps = self.config.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        self.schedule = (self.global_step, self.global_step + int(steps))
        return self._train()

    def resume(self) -> "Agent":
        """Continue an interrupted learn() to the global step it was aiming at, on the same
        learning-rate schedule (a loaded checkpoint remembers both); no-op if it got there."""
        if self.global_step >= self.schedule[1]:
            return self
        return self._train()

    def _train(self) -> "Agent":
        factory = self._require_env("train")
        # the run folder is this run's alone (a loaded agent takes its folder's lock here)
        lock = self._run_lock = hold_run_dir(self.config.run_dir, self._run_lock) if self.config.run_dir else None
        try:
            return self._train_locked(self.config, factory)
        finally:
            if lock is not None:        # the folder is free again once this run is over
                lock.release()
                self._run_lock = None

    def _train_locked(self, cfg: Config, factory: EnvFactory) -> "Agent":
        started = time.time()           # wall_time 0 (earlier runs included) is this long ago
        self.finished, self.checkpoints_written, self.last_eval = False, 0, None
        start, target = self.global_step, self.schedule[1]
        self._time_origin = time_origin = started - self.wall_time
        executor = make_executor(cfg)
        self.resolved = executor.resolve(factory)
        self.resolved["fused_optimizer"] = executor.prepare_update(
            self.optimizer, self.params, cfg.fused_optimizer, self.resolved.get("device", "cpu"),
            announce=self.progress is not False)
        clock = time.time()             # the rate's clock: from here (the update compiled) to the last step
        if cfg.run_dir:     # what a process that died mid-write left (the folder is locked: not in use)
            clean_temp_files(cfg.run_dir, os.path.join(cfg.run_dir, "checkpoints"))
            self._write_config(target)
        logger = RunLogger(cfg.run_dir or None, self.algorithm.stat_keys, start, target, time_origin,
                           cfg.log_interval, self.progress, cfg.log_steps, self.frames_per_step)
        self._logger = logger
        job = TrainJob(cfg, factory, self.observation_space, self.action_space, self.params,
                       self.target_params, self.optimizer, start, target, self.schedule, time_origin,
                       logger, self._periodic_checkpoint)
        try:
            self.global_step = executor.run(job)
        except BaseException:
            self._stopped(executor, logger, clock, failed=True)
            raise
        self._stopped(executor, logger, clock, failed=False)
        try:
            if executor.interrupted:
                raise KeyboardInterrupt
            if cfg.eval_episodes > 0:   # final.pt is saved: a hang or Ctrl-C here loses no training
                self.last_eval = self.evaluate(cfg.eval_episodes)
                logger.scalar("eval/mean_return", self.last_eval["mean_return"], self.global_step)
                if cfg.run_dir:
                    write_eval(cfg.run_dir, {**self.last_eval, "step": self.global_step})
        finally:
            logger.close()
        return self

    def _stopped(self, executor, logger: RunLogger, started: float, failed: bool) -> None:
        """Training stopped (done, interrupted or failed): its step, time and restarts recorded,
        the run folder checkpointed (final.pt if finished): nothing learned is lost. A checkpoint
        that cannot be written is a StorageError (the last good one kept) unless training failed."""
        if executor.step is not None:     # also when it failed: the step of the parameters
            self.global_step = executor.step
        self.wall_time = time.time() - self._time_origin
        self.worker_restarts = executor.restarts
        self.finished = not failed and not executor.interrupted
        try:
            self._checkpoint_run(final=self.finished)
        except OSError as exc:
            message = (f"could not write the {'final ' if self.finished else ''}checkpoint at step "
                       f"{self.global_step:,}: {exc.strerror or exc}; {self._kept()}")
            logger.fault(message, self.global_step, echo=failed)
            if not failed:
                self.finished = False   # no final.pt
                logger.close()
                raise StorageError(message) from None
        finally:
            self.train_seconds = time.time() - started
            if failed:
                logger.close()

    def _kept(self) -> str:
        step = self.checkpoint_step
        return "there is no earlier checkpoint" if step is None else f"the last good checkpoint (step {step:,}) is kept"

    def _periodic_checkpoint(self, step: int) -> None:
        """Every checkpoint_interval: checkpoint the run folder (one that cannot be written is a
        warning, and training goes on), and stop training if the parameters are no longer finite
        (a gradient step that overflowed; a non-finite gradient is caught at once)."""
        self.global_step = step
        self.wall_time = time.time() - self._time_origin
        try:
            self._checkpoint_run()
        except OSError as exc:
            self._logger.fault(f"could not write a periodic checkpoint at step {step:,}: {exc.strerror or exc}; "
                               f"{self._kept()} and training goes on", step)
        check_finite_params(self.params, step)

    def _checkpoint_run(self, final: bool = False) -> str | None:
        """Checkpoint the run folder (run.save_run_checkpoint): latest.pt, step-<N>.pt, best.pt when
        the mean return of the last 100 training episodes is the best so far, final.pt at the end.
        A non-finite model, optimiser or target network is never written (returns None); an
        OSError (a full disk) leaves the last good checkpoint as it was."""
        if not self.config.run_dir:
            return None
        logger = getattr(self, "_logger", None)
        payload = self.checkpoint_payload()
        bad = nonfinite_parts(payload)
        if bad:
            message = (f"not checkpointing: the {' and '.join(bad)} state is not finite (inf/nan); "
                       f"the last good checkpoint is kept")
            if logger is not None:
                logger.fault(message, self.global_step)
            else:
                print(f"asyncrl: step {self.global_step:,}: {message}", file=sys.stderr, flush=True)
            return None
        measure = logger.mean_100 if logger is not None else float("nan")
        best = not math.isnan(measure) and not measure <= self.best_return   # nan best: none yet
        if best:
            payload["best_return"] = measure
        path = save_run_checkpoint(self.config.run_dir, payload, self.global_step, self.config.keep_checkpoints,
                                   final, best)
        if best:
            self.best_return = measure
        self.checkpoint_step = self.global_step
        self.checkpoints_written += 1
        return path

    def _write_config(self, target: int) -> None:      # with the choices behind `auto` values (executor, ...)
        write_config(self.config.run_dir, {**self.config.to_dict(), **getattr(self, "resolved", {}), "steps": target})

    # ------------------------------------------------------------------ using
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """The action for one raw observation: greedy (the Gaussian's mean) by default.
        Continuous actions come clipped to the action space's bounds. A recurrent (LSTM)
        agent carries its state from call to call: call `reset_state()` when a new episode
        begins (evaluate() does)."""
        self._write_obs(self._obs_buf[0], obs)
        a = self._policy(deterministic)(self._obs_buf)[0]
        if isinstance(self.action_space, gym.spaces.Box):
            return np.clip(a, self.action_space.low, self.action_space.high).reshape(self.action_space.shape)
        return int(a)

    def reset_state(self) -> None:
        """Zero the recurrent state of act() (a new episode begins); no-op for feed-forward agents."""
        for policy in self._policies.values():
            policy.reset_state()

    def _policy(self, deterministic: bool):
        # policies may hold views of the parameters: rebuild them if the storage moved
        key = (deterministic, self.params.untyped_storage().data_ptr())
        policy = self._policies.get(key)
        if policy is None:
            self._policies = {k: v for k, v in self._policies.items() if k[1] == key[1]}
            policy = self._policies[key] = self.algorithm.make_policy(self.model, self._act_rng, deterministic)
        return policy

    def evaluate(self, episodes: int = 10, seed: int | None = None, deterministic: bool = True,
                 epsilon: float | None = None, video: str | None = None, video_episodes: int = 1,
                 timeout: float | None = None) -> dict:
        """Mean/std/min/max return over `episodes` full episodes (greedy by default; with
        probability `epsilon` a uniformly random action instead, default: the config's
        eval_epsilon). Atari games are played whole (all lives, up to noop_max no-ops at
        the start) and the result adds the human-normalised score where the game has
        reference scores (asyncrl.atari.REFERENCE_SCORES). `video`: an .mp4 or .gif file that gets
        the first `video_episodes` episodes as rendered. An env that finishes no step for `timeout`
        s (default: the config's worker_timeout; 0: no limit) stops it with WorkerError."""
        factory = self._require_env("evaluate").for_evaluation()
        return run_evaluation(lambda o: self.act(o, deterministic), self.reset_state, factory, episodes,
                              self.config.seed + 10_000 if seed is None else seed,
                              self.config.eval_epsilon if epsilon is None else epsilon, video, video_episodes,
                              self.config.worker_timeout if timeout is None else timeout)

    def _require_env(self, what: str) -> EnvFactory:
        env = self._untrusted_env
        if env is not None:
            raise EnvError(f"the checkpoint names the env {env!r}, which would import module "
                           f"{env.split(':', 1)[0]!r} (and run its code); a checkpoint is data and loading one "
                           f"imports nothing it names: if you trust that module, name the env yourself to {what} "
                           f"(asyncrl eval --env {env}, or asyncrl.load(..., env={env!r}) or trust_env_module=True)")
        if self.env_factory is None:
            raise EnvError(f"this agent was trained on a custom env factory ({self.config.env}); "
                           f"pass env=... to asyncrl.load() to {what}")
        return self.env_factory

    # ------------------------------------------------------------------ persistence
    def checkpoint_payload(self) -> dict:
        return agent_payload(self)

    def save(self, path: str) -> str:
        """Write an atomic checkpoint (model, optimiser statistics, step, config)."""
        return save_checkpoint(path, self.checkpoint_payload())


class A3C(Agent):
    """Asynchronous advantage actor-critic (paper, Algorithm 3) with hogwild actor-learners."""

    algo = "a3c"


class A2C(Agent):
    """Synchronous advantage actor-critic: A3C's loss, B environments stepped in lockstep
    (`workers`, default 16) and one batched update per segment, on CPU or CUDA (`device`)."""

    algo = "a2c"


class OneStepQ(Agent):
    """Asynchronous one-step Q-learning (paper, Algorithm 1)."""

    algo = "one-step-q"


class OneStepSarsa(Agent):
    """Asynchronous one-step SARSA: the target uses the action actually taken next."""

    algo = "one-step-sarsa"


class NStepQ(Agent):
    """Asynchronous n-step Q-learning (paper, Algorithm 2)."""

    algo = "n-step-q"


AGENTS: dict[str, type[Agent]] = {cls.algo: cls for cls in (A3C, A2C, OneStepQ, OneStepSarsa, NStepQ)}


def load(path: str, env: "str | Callable[[], gym.Env] | None" = None, progress: bool | None = False,
         trust_env_module: bool = False) -> Agent:
    """Load an agent from a checkpoint file or a run folder. `env` overrides the saved env
    (required to evaluate or train an agent that was made with a custom env factory).

    A checkpoint is data: loading one never imports a module it names. A saved env id
    `module:Id` would import `module` (run its code) once the env is made, so the agent
    loads and acts, but evaluate() and learn() refuse (EnvError) unless you name the env
    (`env=...`) or pass `trust_env_module=True`."""
    data = load_checkpoint(path)
    cfg = Config.from_dict(data["config"], source=data["path"])
    cls = AGENTS.get(data["algo"])
    if cls is None:
        raise ConfigError(f"{data['path']!r} holds an agent of unknown algorithm {data['algo']!r}")
    agent = cls.__new__(cls)
    agent.progress = progress
    obs_space, action_space = space_from_dict(data["observation_space"]), space_from_dict(data["action_space"])
    untrusted = None
    if env is not None:
        factory: EnvFactory | None = EnvFactory(env).configured(cfg)
        check_same_spaces(factory, obs_space, action_space, data["path"])
    elif cfg.env.startswith("<"):
        factory = None
    elif ":" in cfg.env and not trust_env_module:
        factory, untrusted = None, cfg.env
    else:
        factory = EnvFactory(cfg.env).configured(cfg)
    agent._setup(cfg, factory, obs_space, action_space)
    agent._untrusted_env = untrusted
    restore_agent(agent, data)
    return agent


def load_for_resume(run_dir: str, algo: str, env: str, progress: bool | None = False) -> Agent:
    """The `algo` agent on `env` to continue a run folder with (run.load_resumable: latest.pt,
    or the newest readable step-<N>.pt), holding the folder's lock (ConfigError naming the
    process that holds it); ConfigError if the folder holds another algorithm or env. The
    caller named `env` (--env), so a saved `module:Id` equal to it is trusted."""
    def check(agent: Agent) -> None:
        if agent.algo != algo or agent.config.env != env:
            raise ConfigError(f"--resume: {run_dir!r} holds a {agent.algo} run on {agent.config.env}, "
                              f"not {algo} on {env}")

    agent, lock = load_resumable(run_dir, lambda path: load(path, progress=progress, trust_env_module=True), check)
    agent._run_lock = lock
    return agent
