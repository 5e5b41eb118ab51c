"""Typed, frozen run configuration.

Every field is a hyperparameter or option with the paper's name where it has one.
`validate()` returns *every* problem (not just the first), each a one-line message
naming the bad value and what is accepted. The CLI's flags are generated from the
fields, so `--help`, config files and the Python API share one source of truth.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError
from .presets import PRESETS, preset_values
from .system import available_cores

ALGOS = ("a3c", "a2c", "one-step-q", "one-step-sarsa", "n-step-q")
OPTIMIZERS = ("shared-rmsprop", "rmsprop", "adam", "sgd")
NETS = ("auto", "mlp", "cnn", "lstm")
EXECUTORS = ("auto", "hogwild", "sync", "ray")
DEVICES = ("auto", "cpu", "cuda")
VEC_ENVS = ("auto", "inline", "split", "threads", "subprocess", "ale", "envpool")
CLIP_REWARDS = ("auto", "yes", "no")
#: environments stepped in lockstep by the sync executor when --workers is not given
DEFAULT_SYNC_ENVS = 16
ACTIVATIONS = ("relu", "tanh")
SHARED_TORSO = ("auto", "yes", "no")
START_METHODS = ("auto", "fork", "forkserver", "spawn")
FUSED = ("auto", "on", "off")


def _f(default: Any, help: str, **meta: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class Config:
    """Everything that defines a training run (saved as config.yaml in the run folder)."""

    preset: str = _f("none", "start from a preset's values (atari: the paper's Atari settings, "
                             "see asyncrl/presets.py); --config and flags override them",
                     choices=PRESETS)
    algo: str = _f("a3c", "algorithm", choices=ALGOS, cli=False)
    env: str = _f("", "Gymnasium id (module:Id imports module first)", cli=False)
    workers: int = field(default_factory=available_cores,
                         metadata={"help": "hogwild: actor-learner processes (default: the cores this process "
                                           "may run on); "
                                           f"sync: environments stepped in lockstep (default: {DEFAULT_SYNC_ENVS})"})
    steps: int = _f(1_000_000, "T_max: global environment steps to train for (all workers together)")
    t_max: int = _f(5, "steps per segment before an asynchronous update (paper: 5)")
    async_update: int = _f(5, "one-step Q/SARSA: steps of accumulated gradients per update, "
                              "I_AsyncUpdate (paper: 5)")
    target_update: int = _f(10_000, "Q methods: global steps between target-network copies, I_target "
                                    "(paper: 40,000 frames = 10,000 agent steps at action repeat 4)")
    epsilon_steps: int = _f(1_000_000, "Q methods: global steps over which epsilon anneals from 1 to "
                                       "each worker's final value (paper: 4M frames = 1M agent steps)")
    epsilon_finals: list = _f([0.1, 0.01, 0.5], "Q methods: final epsilons a worker draws from (paper)",
                              nargs="+", item_type=float)
    epsilon_probs: list = _f([0.4, 0.3, 0.3], "Q methods: probabilities of those final epsilons (paper)",
                             nargs="+", item_type=float)
    lr: float = _f(7e-4, "learning rate (paper: 7e-4, annealed linearly to 0)")
    lr_anneal: bool = _f(True, "anneal the learning rate linearly to 0 over --steps")
    gamma: float = _f(0.99, "discount factor, in (0, 1]")
    entropy_beta: float = _f(0.01, "entropy bonus weight beta (paper: 0.01)")
    value_coef: float = _f(0.5, "weight of the value loss (R - V)^2 (paper: 0.5)")
    max_grad_norm: float = _f(40.0, "clip the gradient's global L2 norm to this; 0 disables")
    optimizer: str = _f("shared-rmsprop", "optimiser; statistics shared by all workers except "
                                          "'rmsprop' and 'sgd' (per-worker, as in the paper)",
                        choices=OPTIMIZERS)
    rms_alpha: float = _f(0.99, "RMSProp decay alpha (paper: 0.99)")
    rms_eps: float = _f(0.1, "RMSProp epsilon, inside the square root (paper: 0.1)")
    sgd_momentum: float = _f(0.9, "sgd: momentum alpha of each worker's own momentum vector, "
                                  "m = alpha m + (1 - alpha) grad (paper, supp. 7); 0: plain SGD")
    fused_optimizer: str = _f("auto", "RMSProp on the CPU as one compiled loop (torch.compile; needs a "
                                      "C++ compiler; the first compile for a model size takes 5-30 s, "
                                      "then it is cached): 3x faster updates, 1.17-1.22x frames/s for "
                                      "A3C on Pong with 2 workers (README); auto: on from 250,000 parameters when a "
                                      "compiler is found", choices=FUSED)
    adam_beta1: float = _f(0.9, "Adam beta1")
    adam_beta2: float = _f(0.999, "Adam beta2")
    adam_eps: float = _f(1e-8, "Adam epsilon")
    net: str = _f("auto", "network: auto picks the paper's CNN for image observations and an MLP "
                          "for vectors; lstm adds an LSTM core after that torso (A3C-LSTM, "
                          "CNN-LSTM on images; a3c/a2c)", choices=NETS)
    hidden: list = _f([64, 64], "hidden layer sizes of the MLP torso", nargs="+", item_type=int)
    lstm_size: int = _f(256, "cells of the LSTM core with --net lstm (paper: 256)")
    activation: str = _f("tanh", "MLP activation (the CNN is ReLU, as the paper's); tanh by default: "
                                 "with ReLU and the gradient clip the value estimate diverged on "
                                 "CartPole (README)", choices=ACTIVATIONS)
    shared_torso: str = _f("auto", "policy and value share the torso; auto: shared for the CNN and "
                                   "the LSTM (paper, Atari), separate MLPs for vector observations "
                                   "(as SB3's MlpPolicy)", choices=SHARED_TORSO, flag=True)
    executor: str = _f("auto", "how actor-learners run: hogwild processes, sync (one process, "
                               "batched), or ray (Ray actors, on this machine or a Ray cluster, "
                               "their gradients applied by this process); auto: sync for a2c, "
                               "hogwild otherwise", choices=EXECUTORS)
    ray_address: str = _f("", "ray executor: the Ray cluster to run the actor-learners on (an "
                              "address as ray.init takes it: 'auto', 'HOST:6379', "
                              "'ray://HOST:10001'; auto: RAY_ADDRESS or the last `ray start` here); "
                              "empty: a Ray already started in this process, else a local one "
                              "started on this machine for the run")
    device: str = _f("auto", "sync executor: device of the model and the update (auto: cuda if "
                             "available); hogwild runs on cpu", choices=DEVICES)
    vec_env: str = _f("auto", "sync executor: step the environments inline (gymnasium SyncVectorEnv), "
                              "split (one group per core: the last inline, the others in worker "
                              "processes that step while the next group's actions are chosen; "
                              "observations in shared memory; lowers the priority of this "
                              "process's torch/BLAS pool threads for good), in threads (one group "
                              "per core; pays off only for envs whose step releases the GIL, as "
                              "MuJoCo's physics does and the ALE's does not), in "
                              "subprocesses (AsyncVectorEnv), or, for Atari, in ale-py's C++ vector env "
                              "or EnvPool (their resets differ slightly); auto: inline for Atari, "
                              "subprocesses for envs slower than ~0.2 ms a step when there are cores "
                              "to spare, else inline", choices=VEC_ENVS)
    clip_rewards: str = _f("auto", "clip rewards to [-1, 1] for learning (the logged and evaluated "
                                   "score stays the raw one); auto: yes for Atari, no otherwise",
                           choices=CLIP_REWARDS)
    noop_max: int = _f(30, "Atari: up to this many random no-ops at the start of every episode "
                           "(training and evaluation)")
    frame_skip: int = _f(4, "Atari: action repeat; the observation is the max of the last 2 frames")
    frame_stack: int = _f(4, "Atari: observations stacked (channels of the CNN input)")
    screen_size: int = _f(84, "Atari: frames are resized to screen-size x screen-size grayscale")
    sticky_actions: float = _f(0.0, "Atari: probability of repeating the previous action (ALE v5's "
                                    "default is 0.25; the paper had none)")
    life_loss_terminal: bool = _f(False, "Atari: a lost life ends the episode for learning (no "
                                         "bootstrap across it); the game goes on and the logged "
                                         "score is still the whole game's")
    eval_epsilon: float = _f(0.0, "evaluation: act epsilon-greedily with this epsilon (0: greedy; "
                                  "0.05 is the Atari literature's protocol)")
    torch_threads: int = _f(0, "sync executor on the CPU: torch threads of the learner (0: auto = one per "
                               "core for Atari with in-process envs (inline, threads, ale, envpool), "
                               "whose batched CNN gains from them; else 1: small updates do not, and a "
                               "spare thread spinning on a busy core slowed them 5-400x here); hogwild "
                               "workers use 1")
    seed: int = _f(0, "random seed (worker i uses seed + i)")
    run_dir: str = _f("", "run folder; default runs/<algo>-<env>-<time>")
    log_interval: float = _f(2.0, "seconds between metrics.csv rows")
    log_steps: int = _f(0, "a metrics.csv row every this many global steps instead of every "
                           "log-interval seconds (0: by time); makes sync runs' metrics reproducible")
    checkpoint_interval: float = _f(60.0, "seconds between periodic checkpoints")
    keep_checkpoints: int = _f(3, "periodic checkpoints kept as checkpoints/step-<N>.pt besides "
                                  "latest.pt (the newest this many; 0: latest.pt only)")
    max_worker_restarts: int = _f(10, "hogwild and ray: workers that die (an exception, a signal, "
                                      "a hang) are replaced on the current parameters up to this many "
                                      "times per run (all workers together); one more failure stops the "
                                      "run with a checkpoint (0: the first failure stops it)")
    worker_timeout: float = _f(300.0, "seconds without a finished segment after which a hogwild or ray "
                                      "worker counts as hung (killed and replaced) or the sync executor gives "
                                      "up on its env subprocesses (envs stepped inline or in threads are not "
                                      "timed); 0 waits forever")
    max_nonfinite_updates: int = _f(100, "stop the run once this many updates in a row (per worker) had "
                                         "an inf/nan loss or gradient (each is skipped, never applied); "
                                         "0: never stop")
    eval_episodes: int = _f(10, "greedy evaluation episodes at the end of training; 0 skips")
    stop_return: float = _f(float("inf"), "stop early once the mean return of the last 100 "
                                          "training episodes reaches this (inf: never)")
    start_method: str = _f("auto", "multiprocessing start method (auto: fork on Linux, spawn elsewhere)",
                           choices=START_METHODS)

    # ------------------------------------------------------------------ helpers
    def resolved(self) -> "Config":
        """`executor: auto` made concrete: sync for a2c, hogwild for the asynchronous methods."""
        if self.executor == "auto":
            return self.replace(executor="sync" if self.algo == "a2c" else "hogwild")
        return self

    def shares_torso(self, cnn: bool) -> bool:
        """Whether policy and value share one torso, given whether it is the CNN (else an MLP):
        `shared_torso` yes/no, or auto: shared for the CNN and with an LSTM core, separate MLPs."""
        if self.shared_torso in (True, "yes"):
            return True
        if self.shared_torso in (False, "no"):
            return False
        return cnn or self.net == "lstm"

    @property
    def clips_rewards(self) -> bool:
        """Whether learning clips rewards to [-1, 1] (clip_rewards, auto: for Atari games)."""
        if self.clip_rewards == "auto":
            return is_atari_id(self.env)
        return self.clip_rewards == "yes"

    def torch_device(self) -> str:
        """The device the model trains on: cuda or cpu (`auto`: cuda when sync and available)."""
        if self.device == "auto":
            return "cuda" if self.resolved().executor == "sync" and cuda_available() else "cpu"
        return self.device

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "Config":
        """Build from a mapping; an unknown key is an error naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key {unknown[0]!r}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + f"; known keys: {', '.join(sorted(known))}")
        coerced = {k: coerce_field(k, v, source) for k, v in data.items()}
        preset = coerced.get("preset", "none")
        if preset not in PRESETS:
            raise ConfigError(f"{source}: preset {preset!r} is not one of: {', '.join(PRESETS)}")
        return cls(**{**preset_values(preset, coerced.get("algo", "a3c")), **coerced})

    def validate(self) -> list[str]:
        """Every problem with this configuration, one line each (empty when valid)."""
        p: list[str] = []
        for f in fields(self):
            choices = f.metadata.get("choices")
            val = getattr(self, f.name)
            if choices and val not in choices:
                p.append(f"{f.name.replace('_', '-')} {val!r} is not one of: {', '.join(choices)}")
        if not self.env:
            p.append("env is empty; give a Gymnasium id such as CartPole-v1")
        actors = self.executor in ("hogwild", "ray")     # one environment per actor-learner
        if self.algo == "a2c" and actors:
            p.append(f"a2c is A3C's loss under the sync executor; for {self.executor} actor-learners "
                     f"use a3c (or drop --executor {self.executor})")
        if actors and self.vec_env != "auto":
            p.append(f"vec-env {self.vec_env!r} applies to --executor sync only ({self.executor} "
                     f"actor-learners each step one environment)")
        if actors and self.device == "cuda":
            p.append(f"device 'cuda' needs --executor sync ({self.executor} actor-learners run on "
                     f"the CPU)")
        elif self.device == "cuda" and not cuda_available():
            p.append("device 'cuda' was asked for but CUDA is not available (no GPU, or torch "
                     "built without CUDA); use --device cpu or --device auto")
        if self.workers < 1:
            p.append(f"workers must be >= 1, got {self.workers}")
        if self.steps < 1:
            p.append(f"steps must be a positive integer, got {self.steps}")
        if self.t_max < 1:
            p.append(f"t-max must be >= 1, got {self.t_max}")
        if self.async_update < 1:
            p.append(f"async-update must be >= 1, got {self.async_update}")
        if self.target_update < 1:
            p.append(f"target-update must be >= 1 global steps, got {self.target_update}")
        if self.epsilon_steps < 0:
            p.append(f"epsilon-steps must be >= 0, got {self.epsilon_steps}")
        if not self.epsilon_finals or any(not 0 <= e <= 1 for e in self.epsilon_finals):
            p.append(f"epsilon-finals must be values in [0, 1], got {self.epsilon_finals}")
        if len(self.epsilon_probs) != len(self.epsilon_finals) or any(q < 0 for q in self.epsilon_probs) \
                or abs(sum(self.epsilon_probs) - 1.0) > 1e-6:
            p.append(f"epsilon-probs must be {len(self.epsilon_finals)} non-negative numbers summing to 1 "
                     f"(one per epsilon-finals value), got {self.epsilon_probs}")
        if not 0 < self.lr < float("inf"):
            p.append(f"lr must be a finite number > 0, got {self.lr}")
        if not 0 < self.gamma <= 1:
            p.append(f"gamma must be in (0, 1], got {self.gamma}")
        if not self.entropy_beta >= 0:
            p.append(f"entropy-beta must be >= 0, got {self.entropy_beta}")
        if not self.value_coef >= 0:
            p.append(f"value-coef must be >= 0, got {self.value_coef}")
        if not self.max_grad_norm >= 0:
            p.append(f"max-grad-norm must be >= 0 (0 disables clipping), got {self.max_grad_norm}")
        if not 0 <= self.rms_alpha < 1:
            p.append(f"rms-alpha must be in [0, 1), got {self.rms_alpha}")
        if not 0 <= self.sgd_momentum < 1:
            p.append(f"sgd-momentum must be in [0, 1), got {self.sgd_momentum}")
        if not self.rms_eps > 0:
            p.append(f"rms-eps must be > 0, got {self.rms_eps}")
        if self.fused_optimizer == "on" and self.optimizer not in ("shared-rmsprop", "rmsprop"):
            p.append(f"fused-optimizer on is for optimizer shared-rmsprop or rmsprop, got optimizer "
                     f"{self.optimizer!r} (use fused-optimizer auto or off)")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                p.append(f"{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        if not self.adam_eps > 0:
            p.append(f"adam-eps must be > 0, got {self.adam_eps}")
        if self.lstm_size < 1:
            p.append(f"lstm-size must be >= 1, got {self.lstm_size}")
        if self.net == "lstm" and self.algo not in ("a3c", "a2c"):
            p.append(f"net 'lstm' is available for a3c and a2c, not {self.algo}")
        elif self.net == "lstm" and self.shared_torso in (False, "no"):
            p.append("net 'lstm' shares its torso and core between policy and value (the paper's "
                     "A3C-LSTM); drop --no-shared-torso")
        if not self.hidden or any((not isinstance(h, int)) or h < 1 for h in self.hidden):
            p.append(f"hidden must be one or more positive integers, got {self.hidden}")
        if not self.log_interval > 0:
            p.append(f"log-interval must be > 0 seconds, got {self.log_interval}")
        if not self.checkpoint_interval > 0:
            p.append(f"checkpoint-interval must be > 0 seconds, got {self.checkpoint_interval}")
        if self.log_steps < 0:
            p.append(f"log-steps must be >= 0 (0: log by time), got {self.log_steps}")
        for name, low in (("noop_max", 0), ("frame_skip", 1), ("frame_stack", 1), ("screen_size", 8)):
            if getattr(self, name) < low:
                p.append(f"{name.replace('_', '-')} must be >= {low}, got {getattr(self, name)}")
        if not 0 <= self.sticky_actions <= 1:
            p.append(f"sticky-actions must be a probability in [0, 1], got {self.sticky_actions}")
        if not 0 <= self.eval_epsilon <= 1:
            p.append(f"eval-epsilon must be in [0, 1], got {self.eval_epsilon}")
        if self.vec_env in ("ale", "envpool") and not is_atari_id(self.env):
            p.append(f"vec-env {self.vec_env!r} steps Atari games only (ALE/Pong-v5, PongNoFrameskip-v4, ...), "
                     f"not {self.env!r}")
        elif self.vec_env == "ale" and self.life_loss_terminal:
            p.append("vec-env 'ale' cannot end episodes on a lost life for learning only; use "
                     "--vec-env inline, split, threads or subprocess with --life-loss-terminal")
        elif self.vec_env == "envpool":
            from .atari import AtariOptions, envpool_option_problem

            problem = envpool_option_problem(AtariOptions.from_config(self))
            if problem:
                p.append(problem)
        if self.torch_threads < 0:
            p.append(f"torch-threads must be >= 0 (0: auto), got {self.torch_threads}")
        elif self.torch_threads and actors:
            p.append(f"torch-threads applies to --executor sync (each {self.executor} actor-learner "
                     f"uses one thread)")
        if self.ray_address:
            if self.executor != "ray":
                p.append(f"ray-address {self.ray_address!r} needs --executor ray")
            problem = ray_address_problem(self.ray_address, probe=False)
            if problem:
                p.append(problem)
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            p.append("executor 'ray' needs the ray package, which is not installed: pip install "
                     "'asyncrl[ray]' (ray==2.60.0)")
        if self.keep_checkpoints < 0:
            p.append(f"keep-checkpoints must be >= 0 (0: latest.pt only), got {self.keep_checkpoints}")
        if self.max_worker_restarts < 0:
            p.append(f"max-worker-restarts must be >= 0, got {self.max_worker_restarts}")
        if not self.worker_timeout >= 0:
            p.append(f"worker-timeout must be >= 0 seconds (0: no timeout), got {self.worker_timeout}")
        if self.max_nonfinite_updates < 0:
            p.append(f"max-nonfinite-updates must be >= 0 (0: never stop), got {self.max_nonfinite_updates}")
        if self.eval_episodes < 0:
            p.append(f"eval-episodes must be >= 0, got {self.eval_episodes}")
        return p

    def check(self) -> "Config":
        """Raise ConfigError with the first problem (all of them are listed after it). A ray
        cluster's address is also probed here: nothing listening there is a bad input, said
        at once (Ray itself would retry for minutes)."""
        problems = self.validate()
        if not problems and self.executor == "ray" and self.ray_address:
            problems = [p for p in [ray_address_problem(self.ray_address, probe=True)] if p]
        if problems:
            more = f" (+{len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
            raise ConfigError(problems[0] + more)
        return self


_FIELDS = {f.name: f for f in fields(Config)}


def is_atari_id(env_id: str) -> bool:
    from .atari import is_atari_id as check

    return check(env_id)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def coerce_field(name: str, value: Any, source: str = "config") -> Any:
    """Convert a value (from YAML or a keyword argument) to the field's type, or fail clearly."""
    f = _FIELDS[name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    kind = type(default)
    original = value
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError
        if kind is int:
            if isinstance(value, str):
                value = float(value) if any(c in value for c in ".eE") and "x" not in value else int(value)
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is list:
            items = value if isinstance(value, (list, tuple)) else [value]
            item_type = f.metadata.get("item_type", str)
            return [coerce_item(v, item_type) for v in items]
        if kind is str:
            if isinstance(value, bool) and "yes" in f.metadata.get("choices", ()):
                return "yes" if value else "no"      # YAML 1.1 reads yes/no/on/off as booleans
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError, OverflowError):
        pass
    else:
        return value
    expected = f"a list of {f.metadata.get('item_type', str).__name__}" if kind is list else kind.__name__
    raise ConfigError(f"{source}: {name.replace('_', '-')} must be {expected}, got {original!r}")


def coerce_item(value: Any, item_type: type) -> Any:
    """One list item: ints must be whole numbers (no silent truncation of 1.5 or True)."""
    if item_type is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    return item_type(value)


def load_config_file(path: str) -> dict:
    """Read a YAML config file into a dict of field values (keys may use - or _)."""
    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


#: seconds ray_address_problem waits for a TCP connection to a Ray cluster's address
RAY_PROBE_TIMEOUT_S = 5.0


def ray_address_problem(address: str, probe: bool) -> str | None:
    """What is wrong with a --ray-address ('auto', HOST:PORT or ray://HOST:PORT), or None.
    probe: also open a TCP connection to HOST:PORT ('auto': to the cluster Ray would find,
    from RAY_ADDRESS or the last `ray start` on this machine)."""
    import socket

    if address == "auto":
        if not probe:
            return None
        try:    # what ray.init(address="auto") does first (a private helper; skipped if it moved)
            from ray._private.services import canonicalize_bootstrap_address
        except Exception:
            return None
        try:
            found = canonicalize_bootstrap_address("auto")
        except Exception as exc:
            return (f"ray-address 'auto': no running Ray cluster was found ({str(exc).split('.')[0]}); "
                    f"start one with `ray start --head`, or leave ray-address empty for a local Ray")
        return ray_address_problem(found, probe=True) if found else None
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return (f"ray-address {address!r} is not an address of a Ray cluster; give 'auto', HOST:PORT "
                f"(the GCS, as `ray start --head` prints it) or ray://HOST:PORT (Ray Client)")
    if not probe:
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return (f"ray-address {address!r}: could not connect to a Ray cluster there "
                f"({exc.strerror or exc}); start one with `ray start --head` and give the address "
                f"it prints, or leave ray-address empty for a local Ray")
    return None
