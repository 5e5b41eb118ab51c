"""The Python API: asyncrl.A3C(env, workers=..., **hyperparameters) and friends.

    agent = asyncrl.A3C("CartPole-v1", workers=2, lr=1e-3)
    agent.learn(200_000)
    agent.evaluate(20)            # {'mean_return': ..., 'std_return': ..., ...}
    agent.save("a3c.pt"); agent = asyncrl.load("a3c.pt")
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch

from .algos import make_algorithm
from .acting import Actor, Predictor
from .budget import check_memory
from .checkpoint import agent_payload, load_checkpoint, restore_agent, save_checkpoint
from .config import Config, load_config_file
from .config.describe import api_words, args_section, parameters
from .atari import is_atari_id
from .envs import EnvFactory, check_same_spaces, probe_spaces
from .errors import ConfigError, EnvError, flag_words
from .evaluate import run_evaluation
from .executors import EXECUTORS
from .presets import FAMILY_PRESETS, preset_values
from .flat import flatten_params_
from .optim import build_optimizer
from .run import RunLock, prepare_run_dir
from .spaces import env_family, space_from_dict
from .training import TrainingMixin


class Agent(TrainingMixin):
    """An agent of one algorithm: its model, optimiser state, global step and run folder."""

    algo: ClassVar[str] = ""

    def __init__(self, env: "str | Callable[[], gym.Env] | gym.Env", workers: int | None = None, *,
                 run_dir: str | None = None, overwrite: bool = False, progress: bool | None = None,
                 **hyperparameters: Any):
        cli = flag_words()
        try:
            self._init(env, workers, run_dir, overwrite, progress, hyperparameters, "key" if cli else "hyperparameter")
        except ConfigError as exc:      # the API's words, not the command line's (executor='sync')
            if cli:
                raise
            raise ConfigError(api_words(str(exc), Config)) from None

    def _init(self, env: Any, workers: int | None, run_dir: str | None, overwrite: bool, progress: bool | None,
              hyperparameters: dict, what: str) -> None:
        factory = EnvFactory(env)
        name = type(self).__name__
        fixed = {"algo": self.algo, "env": factory.name, "run_dir": run_dir or ""}
        if workers is not None:
            fixed["workers"] = workers
        clash = sorted(set(hyperparameters) & set(fixed))
        if clash:
            raise ConfigError(f"{clash[0]!r} is set by {name} itself; do not pass it as a hyperparameter")
        cfg = Config.from_dict({**hyperparameters, **fixed}, source=name, what=what).resolved()
        if cfg.preset == "auto":        # the env family's preset, under the values given
            family = FAMILY_PRESETS[family_of(factory.configured(cfg))]     # with its env-kwargs
            cfg = Config.from_dict({**hyperparameters, **fixed, "preset": family}, source=name).resolved()
        executor = EXECUTORS.get(cfg.executor)           # None: an unknown name, refused by check()
        default_workers = executor.default_workers if executor is not None else None
        if factory.instance is not None and workers is None and "workers" not in hyperparameters:
            cfg = cfg.replace(workers=1)                 # an instance: one env, stepped here
        elif workers is None and "workers" not in hyperparameters and default_workers is not None \
                and "workers" not in preset_values(cfg.preset, self.algo):
            cfg = cfg.replace(workers=default_workers)     # e.g. sync: environments in lockstep
        cfg.check()
        if factory.instance is not None:
            cfg = check_instance_config(cfg, factory)
        factory = factory.configured(cfg)       # Atari games get the paper's preprocessing
        self.progress = progress
        obs_space, action_space = probe_spaces(factory, timeout=cfg.worker_timeout)
        check_memory(cfg, obs_space, action_space)      # a run that does not fit is refused here
        self._setup(cfg, factory, obs_space, action_space)
        # last, once everything is checked: --overwrite must not delete a run for nothing.
        # The folder stays locked until the end of this agent's next learn().
        if cfg.run_dir:
            self._run_lock = prepare_run_dir(cfg.run_dir, overwrite)

    @classmethod
    def from_config(cls, config: "Config | str | os.PathLike",
                    env: "str | Callable[[], gym.Env] | gym.Env | None" = None, **kwargs: Any) -> "Agent":
        """An agent from a Config, or from a YAML file of config fields (keys with - or _: the
        shipped configs/*.yaml, a run folder's config.yaml), read as `asyncrl train --config`
        reads it (the values it does not name come from its preset). `env` replaces the
        config's env; keyword arguments override its values (run_dir, overwrite, progress, any
        hyperparameter). A config that names an algorithm must name this class's;
        `Agent.from_config` builds whichever it names."""
        if isinstance(config, Config):
            given, source = config.to_dict(), "the config"
        else:
            path = os.fspath(config)
            Config.from_yaml(path)                        # every key and value checked, the file named
            given, source = load_config_file(path), repr(path)
        algo = given.pop("algo", None)
        if cls is Agent:
            return AGENTS[algo or "a3c"].from_config(config, env, **kwargs)
        if algo is not None and algo != cls.algo:
            raise ConfigError(f"{source} is a {algo} config; use asyncrl.{AGENTS[algo].__name__}.from_config")
        saved = given.pop("env", "")
        if env is not None and env != saved:
            given.pop("env_kwargs", None)      # the saved env's keyword arguments, not another's
        env = saved if env is None else env
        if isinstance(env, str) and not env:
            raise ConfigError(f"{source} names no env; pass env=... to from_config")
        given = {**given, **kwargs}
        return cls(env, run_dir=given.pop("run_dir", None) or None, **given)

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
        self._act_rng = np.random.default_rng(cfg.seed + 20_000)
        self._actors: dict = {}

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

    # ------------------------------------------------------------------ using
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """The action for one raw observation: greedy (the Gaussian's mean) by default.
        Continuous actions come clipped to the action space's bounds. A recurrent (LSTM)
        agent carries its state from call to call: call `reset_state()` when a new episode
        begins (evaluate() does). For a batch of observations, use predict()."""
        try:
            return self._actor(deterministic)(obs)
        except ValueError:
            shape = np.shape(obs)
            if shape and isinstance(self.observation_space, gym.spaces.Box) and \
                    tuple(shape[1:]) == tuple(self.observation_space.shape):
                raise ValueError(f"act() takes one observation, got a batch of shape {shape}; "
                                 f"predict() takes batches") from None
            raise

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Stable-Baselines3's predict: the actions for one observation or a batch [B, ...] of
        them (raw, as the env returns them), and the recurrent state after them. For an LSTM
        agent `state` is the (h, c) pair a previous call returned, each of shape (1, B, H)
        (None: zeros), and where `episode_start` (B booleans) is true that row's state is
        zeroed first; for a feed-forward agent the state is None. Continuous actions come
        clipped to the action space's bounds. Unlike act(), nothing is kept between calls."""
        key = self.params.untyped_storage().data_ptr()
        if getattr(self, "_predictor", (None, None))[0] != key:
            self._predictor = (key, Predictor(self.algorithm, self.model, self.observation_space,
                                              self.action_space, self._act_rng))
        return self._predictor[1](observation, state, episode_start, deterministic, self.global_step)

    def reset_state(self) -> None:
        """Zero the recurrent state of act() (a new episode begins); no-op for feed-forward agents."""
        for actor in self._actors.values():
            actor.reset()

    def _actor(self, deterministic: bool) -> Actor:
        # actors' policies may hold views of the parameters: rebuilt if the storage moved
        key = (deterministic, self.params.untyped_storage().data_ptr())
        actor = self._actors.get(key)
        if actor is None:
            self._actors = {k: v for k, v in self._actors.items() if k[1] == key[1]}
            actor = self._actors[key] = Actor(self.algorithm, self.model, self.observation_space,
                                              self.action_space, self._act_rng, deterministic)
        return actor

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
    (`workers`, default 16; 8 on vector observations, from the classic and continuous presets)
    and one batched update per segment, on CPU or CUDA (`device`)."""

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


def family_of(factory: EnvFactory) -> str:
    """The env's family (spaces.env_family) for `--preset auto`: Atari ids by name, others by
    the spaces of one instance (an env that cannot be made is reported by the checks after)."""
    if factory.fn is None and is_atari_id(factory.env_id):
        return "images"
    try:
        env = factory()
    except Exception:
        return "classic"
    try:
        return env_family(env.observation_space, env.action_space)
    finally:
        env.close()


def check_instance_config(cfg: Config, factory: EnvFactory) -> Config:
    """An env instance is stepped in this process only: the sync executor with one env (stepped
    inline) and no evaluation in a background process; ConfigError otherwise."""
    why = []
    if cfg.executor != "sync":
        why.append(f"executor={cfg.executor!r} steps its envs in other processes")
    if cfg.workers != 1:
        why.append(f"workers={cfg.workers} needs that many envs")
    if cfg.vec_env not in ("auto", "inline"):
        why.append(f"vec_env={cfg.vec_env!r} steps it elsewhere")
    if cfg.eval_every > 0:
        why.append("eval_every evaluates in a background process")
    if why:
        raise ConfigError(f"env: an env instance ({factory.env_id}) is stepped in this process only, but "
                          f"{why[0]}; pass a zero-argument factory (lambda: gym.make(...)) or an id instead, "
                          f"or use executor='sync', workers=1")
    return cfg.replace(vec_env="inline")


#: the arguments an agent class names itself, not hyperparameters
_OWN_ARGS = """    env (str | Callable[[], gym.Env] | gym.Env): a Gymnasium id (`module:Id` imports module
        first), a zero-argument factory, or an env instance (stepped in this process only:
        executor='sync' with workers=1, and evaluation).
    workers (int | None): actor-learner processes (hogwild, ray) or envs in lockstep (sync);
        None: the executor's default.
    run_dir (str | None): the run folder (none is written without it).
    overwrite (bool): replace the run in a folder asyncrl made.
    progress (bool | None): the progress bar: None shows it when interactive (a terminal or
        a notebook), True always, False never."""


def _typed_init(cls: type[Agent]) -> None:
    """Give `cls` an __init__ whose signature and docstring list every hyperparameter with its
    type, default and meaning, generated from the Config fields (config.describe)."""
    base = Agent.__init__
    own = [p for p in inspect.signature(base, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
    doc = (f"Make the agent: its model and optimiser (nothing trains until learn()).\n\nHyperparameters not "
           f"given come from "
           f"`preset` (auto: the env family's preset, whose values are listed below where they differ "
           f"from the field's own default).\n\nArgs:\n{_OWN_ARGS}\n"
           f"{args_section(Config, cls.algo or 'a3c', skip=('algo', 'env', 'workers', 'run_dir'))}\n")
    if cls is Agent:
        init = base
    else:
        def init(self: Agent, env: Any, workers: int | None = None, **kwargs: Any) -> None:
            base(self, env, workers, **kwargs)
        init.__qualname__, init.__module__ = f"{cls.__name__}.__init__", cls.__module__
        cls.__init__ = init
    init.__signature__ = inspect.Signature(own + parameters(Config, skip=("algo", "env", "workers", "run_dir")))
    init.__doc__ = doc


AGENTS: dict[str, type[Agent]] = {cls.algo: cls for cls in (A3C, A2C, OneStepQ, OneStepSarsa, NStepQ)}
for _cls in (*AGENTS.values(), Agent):     # Agent last: the others read its own signature
    _typed_init(_cls)


def load(path: str, env: "str | Callable[[], gym.Env] | gym.Env | None" = None, progress: bool | None = None,
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
    if env is not None:         # another env: the saved env's keyword arguments are not its
        own = cfg if env == cfg.env else cfg.replace(env_kwargs={})
        factory: EnvFactory | None = EnvFactory(env).configured(own)
        check_same_spaces(factory, obs_space, action_space, data["path"], timeout=cfg.worker_timeout,
                          action_bounds=cfg.gaussian_mean == "tanh")
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
