"""The Python API: asyncrl.A3C(env, workers=..., **hyperparameters) and friends.

    agent = asyncrl.A3C("CartPole-v1", workers=2, lr=1e-3)
    agent.learn(200_000)
    agent.evaluate(20)            # {'mean_return': ..., 'std_return': ..., ...}
    agent.save("a3c.pt"); agent = asyncrl.load("a3c.pt")
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch

from .algos import make_algorithm
from .checkpoint import load_checkpoint, nonfinite_parts, save_checkpoint
from .config import Config
from .envs import EnvFactory, check_same_spaces, probe_spaces
from .errors import CheckpointError, ConfigError, EnvError
from .evaluate import evaluate_policy
from .executors import EXECUTORS, TrainJob, make_executor
from .flat import flatten_params_
from .learner import check_finite_params
from .metrics import RunLogger
from .optim import build_optimizer
from .rollout import ObsWriter
from .run import load_resumable, prepare_run_dir, save_run_checkpoint, write_config
from .spaces import space_from_dict, space_to_dict
from .threads import math_threads

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
        if cfg.run_dir:     # only once everything is checked: --overwrite must not delete a run for nothing
            prepare_run_dir(cfg.run_dir, overwrite)

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
        self.global_step = 0
        self.wall_time = 0.0
        self.schedule = (0, cfg.steps)
        self.best_return = float("nan")   # the run's measure at its best checkpoint (best.pt)
        self.worker_restarts = 0          # worker processes replaced during the last learn()/resume()
        self.last_eval: dict | None = None
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
        checkpoint and re-raises KeyboardInterrupt.
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
        cfg = self.config
        factory = self._require_env("train")
        start, target = self.global_step, self.schedule[1]
        time_origin = time.time() - self.wall_time
        executor = make_executor(cfg)
        self.resolved = executor.resolve(factory)
        # compiled here, before any worker starts (hogwild workers fork with it; only they
        # update theta while refreshing their own copy theta', the "mirror")
        t0 = time.perf_counter()
        mirror, threads = executor.update_layout()
        self.resolved["fused_optimizer"] = self.optimizer.use_fused(
            cfg.fused_optimizer, self.params, self.resolved.get("device", "cpu"), mirror=mirror, threads=threads)
        took = time.perf_counter() - t0
        if took > 2.0 and self.progress is not False:
            print(f"asyncrl: compiled the fused RMSProp update in {took:.0f} s (cached "
                  f"for later runs; --fused-optimizer off skips it)", file=sys.stderr, flush=True)
        if cfg.run_dir:
            self._write_config(target)
        logger = RunLogger(cfg.run_dir or None, self.algorithm.stat_keys, start, target, time_origin,
                           cfg.log_interval, self.progress, cfg.log_steps, self.frames_per_step)
        self._logger = logger
        job = TrainJob(cfg, factory, self.observation_space, self.action_space, self.params,
                       self.target_params, self.optimizer, start, target, self.schedule, time_origin,
                       logger, self._periodic_checkpoint)
        failed = True
        try:
            self.global_step = executor.run(job)
            failed = False
        finally:
            if executor.step is not None:     # also when it failed: the step of the parameters
                self.global_step = executor.step
            self.wall_time = time.time() - time_origin
            self.worker_restarts = executor.restarts
            interrupted = executor.interrupted
            # nothing already learned is lost, whatever happened (final.pt only for a finished run)
            self._checkpoint_run(final=not failed and not interrupted)
            if failed:
                logger.close()
        if not interrupted and cfg.eval_episodes > 0:
            self.last_eval = self.evaluate(cfg.eval_episodes)
            logger.scalar("eval/mean_return", self.last_eval["mean_return"], self.global_step)
            if cfg.run_dir:
                with open(os.path.join(cfg.run_dir, "eval.json"), "w") as fh:
                    json.dump({**self.last_eval, "step": self.global_step}, fh, indent=2)
        logger.close()
        if interrupted:
            raise KeyboardInterrupt
        return self

    def _periodic_checkpoint(self, step: int) -> None:
        """Every checkpoint_interval: checkpoint the run folder, and stop training if the
        parameters are no longer finite (a gradient step that overflowed; a non-finite
        gradient is caught at once, an inf weight that gets finite gradients only here)."""
        self.global_step = step
        self._checkpoint_run()
        check_finite_params(self.params, step)

    def _checkpoint_run(self, final: bool = False) -> str | None:
        """Checkpoint the run folder: latest.pt; also step-<N>.pt (the newest
        `keep_checkpoints` kept), best.pt when the mean return of the last 100 training
        episodes is the best so far, and final.pt at the end. One file is written, the
        other names link to it. Parameters, target network or optimiser state that are not
        finite are never written: the last good checkpoint stays (returns None)."""
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
            self.best_return = payload["best_return"] = measure
        return save_run_checkpoint(self.config.run_dir, payload, self.global_step, self.config.keep_checkpoints,
                                   final, best)

    def _write_config(self, target: int) -> None:
        # the concrete choices behind `auto` values are recorded (executor, device, vec_env)
        write_config(self.config.run_dir, {**self.config.to_dict(), **getattr(self, "resolved", {}),
                                           "steps": target})

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
                 epsilon: float | None = None, video: str | None = None, video_episodes: int = 1) -> dict:
        """Mean/std/min/max return over `episodes` full episodes (greedy by default; with
        probability `epsilon` a uniformly random action instead, default: the config's
        eval_epsilon). Atari games are played whole (all lives, up to noop_max no-ops at
        the start) and the result adds the human-normalised score where the game has
        reference scores (asyncrl.atari.REFERENCE_SCORES). `video`: an .mp4 or .gif file
        that gets the first `video_episodes` episodes as the env renders them."""
        if episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {episodes}")
        recorder = None
        if video is not None:
            from .video import VideoRecorder

            if not 1 <= video_episodes <= episodes:
                raise ConfigError(f"video episodes must be between 1 and the {episodes} episodes "
                                  f"evaluated, got {video_episodes}")
            recorder = VideoRecorder(video, video_episodes)
        epsilon = self.config.eval_epsilon if epsilon is None else epsilon
        if not 0 <= epsilon <= 1:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
        seed = self.config.seed + 10_000 if seed is None else seed
        factory = self._require_env("evaluate").for_evaluation()
        # acting is a batch-1 forward: one thread (a second one spinning on a busy core
        # made a CNN evaluation of Pong 9x slower here)
        with math_threads(1):
            result = evaluate_policy(lambda o: self.act(o, deterministic), factory, episodes, seed,
                                     on_reset=self.reset_state, epsilon=epsilon, recorder=recorder)
        if factory.atari is not None:
            from .atari import REFERENCE_SOURCE, game_of, human_normalized

            game = game_of(factory.env_id)
            hns = human_normalized(game, result["mean_return"])
            result.update(game=game, human_normalized=hns,
                          reference_scores=REFERENCE_SOURCE if hns is not None else None)
        return result

    def _require_env(self, what: str) -> EnvFactory:
        if self.env_factory is None:
            raise EnvError(f"this agent was trained on a custom env factory ({self.config.env}); "
                           f"pass env=... to asyncrl.load() to {what}")
        return self.env_factory

    # ------------------------------------------------------------------ persistence
    def checkpoint_payload(self) -> dict:
        return {
            "algo": self.algo,
            "config": self.config.to_dict(),
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": {k: v.detach().clone() for k, v in self.optimizer.state_dict().items()},
            "target": None if self.target_params is None else self.target_params.detach().clone(),
            "global_step": int(self.global_step),
            "wall_time": float(self.wall_time),
            "best_return": float(self.best_return),
            "schedule": [int(self.schedule[0]), int(self.schedule[1])],
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
        }

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


def load(path: str, env: "str | Callable[[], gym.Env] | None" = None, progress: bool | None = False) -> Agent:
    """Load an agent from a checkpoint file or a run folder. `env` overrides the saved env
    (required to evaluate or train an agent that was made with a custom env factory)."""
    data = load_checkpoint(path)
    cfg = Config.from_dict(data["config"], source=data["path"])
    cls = AGENTS.get(data["algo"])
    if cls is None:
        raise ConfigError(f"{data['path']!r} holds an agent of unknown algorithm {data['algo']!r}")
    agent = cls.__new__(cls)
    agent.progress = progress
    obs_space, action_space = space_from_dict(data["observation_space"]), space_from_dict(data["action_space"])
    if env is not None:
        factory: EnvFactory | None = EnvFactory(env).configured(cfg)
        check_same_spaces(factory, obs_space, action_space, data["path"])
    else:
        factory = None if cfg.env.startswith("<") else EnvFactory(cfg.env).configured(cfg)
    agent._setup(cfg, factory, obs_space, action_space)
    try:
        agent.model.load_state_dict(data["model"])
        agent.optimizer.load_state_dict(data["optimizer"])
        if agent.target_params is not None:
            saved = data.get("target")
            if saved is None or saved.shape != agent.target_params.shape:
                raise ValueError("its target network is missing or has the wrong size")
            agent.target_params.copy_(saved)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{data['path']!r} does not match its own config: {str(exc).splitlines()[0]}") from None
    agent.global_step = int(data["global_step"])
    agent.wall_time = float(data.get("wall_time", 0.0))
    agent.schedule = tuple(data.get("schedule", (0, cfg.steps)))
    agent.best_return = float(data.get("best_return", float("nan")))
    return agent


def load_for_resume(run_dir: str, algo: str, env: str, progress: bool | None = False) -> Agent:
    """The `algo` agent on `env` to continue a run folder with (run.load_resumable: latest.pt,
    or the newest readable step-<N>.pt). ConfigError if the folder holds another algorithm
    or env."""
    def check(agent: Agent) -> None:
        if agent.algo != algo or agent.config.env != env:
            raise ConfigError(f"--resume: {run_dir!r} holds a {agent.algo} run on {agent.config.env}, "
                              f"not {algo} on {env}")

    return load_resumable(run_dir, lambda path: load(path, progress=progress), check)
