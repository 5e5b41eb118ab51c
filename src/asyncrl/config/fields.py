"""Typed, frozen run configuration.

Every field is a hyperparameter or option with the paper's name where it has one.
`validate()` returns *every* problem (not just the first), each a one-line message
naming the bad value and what is accepted. The CLI's flags are generated from the
fields, so `--help`, config files and the Python API share one source of truth.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from ..atari.registry import is_atari_id
from ..errors import ConfigError
from ..presets import PRESETS, pixel_mode, preset_values
from ..system import available_cores
from .coerce import coerce_value, load_config_file
from .describe import unknown_message
from .limits import MAX_WORKERS, uses_mlp
from .validate import probe_problems, problems

Algo = Literal["a3c", "a2c", "one-step-q", "one-step-sarsa", "n-step-q"]
OptimizerName = Literal["shared-rmsprop", "rmsprop", "adam", "sgd"]
NetName = Literal["auto", "mlp", "cnn", "lstm"]
ExecutorName = Literal["auto", "hogwild", "sync", "ray"]
DeviceName = Literal["auto", "cpu", "cuda"]
VecEnvName = Literal["auto", "inline", "split", "threads", "subprocess", "ale", "envpool"]
AutoYesNo = Literal["auto", "yes", "no"]
Activation = Literal["relu", "tanh"]
StartMethod = Literal["auto", "fork", "forkserver", "spawn"]
RayModeName = Literal["auto", "flat", "hierarchical"]
AutoOnOff = Literal["auto", "on", "off"]
PresetName = Literal["auto", "classic", "continuous", "paper", "atari", "none"]
PixelsName = Literal["auto", "gray", "color", "off"]
GaussianMean = Literal["linear", "tanh"]
ALGOS = get_args(Algo)
OPTIMIZERS = get_args(OptimizerName)
NETS = get_args(NetName)
EXECUTORS = get_args(ExecutorName)
DEVICES = get_args(DeviceName)
VEC_ENVS = get_args(VecEnvName)
CLIP_REWARDS = get_args(AutoYesNo)
#: environments stepped in lockstep by the sync executor when --workers is not given
DEFAULT_SYNC_ENVS = 16
ACTIVATIONS = get_args(Activation)
SHARED_TORSO = get_args(AutoYesNo)
START_METHODS = get_args(StartMethod)
FUSED = get_args(AutoOnOff)
PIXELS = get_args(PixelsName)
RAY_MODES = get_args(RayModeName)
GAUSSIAN_MEANS = get_args(GaussianMean)
assert get_args(PresetName) == PRESETS, "PresetName must list presets.PRESETS"


def _f(default: Any, help: str, **meta: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class Config:
    """Everything that defines a training run (saved as config.yaml in the run folder)."""

    preset: PresetName = _f("auto", "start from a preset's values; auto: by the env's family (classic: vector "
                             "observations and discrete actions; continuous: continuous actions; paper: "
                             "images, the paper's Atari settings), none: the fields' own defaults (the "
                             "paper's Atari values); --config and flags override them (asyncrl/presets.py "
                             "names each value's source)", choices=PRESETS)
    algo: Algo = _f("a3c", "algorithm", choices=ALGOS, cli=False)
    env: str = _f("", "Gymnasium id (module:Id imports module first)", cli=False)
    workers: int = field(default_factory=lambda: min(available_cores(), MAX_WORKERS),
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
    epsilon_finals: list[float] = _f([0.1, 0.01, 0.5], "Q methods: final epsilons a worker draws from (paper)",
                              nargs="+", item_type=float)
    epsilon_probs: list[float] = _f([0.4, 0.3, 0.3], "Q methods: probabilities of those final epsilons (paper)",
                             nargs="+", item_type=float)
    lr: float = _f(7e-4, "learning rate (paper: 7e-4, annealed linearly to 0)")
    lr_anneal: bool = _f(True, "anneal the learning rate linearly to 0 over --steps")
    gamma: float = _f(0.99, "discount factor, in (0, 1]")
    entropy_beta: float = _f(0.01, "entropy bonus weight beta (paper: 0.01)")
    value_coef: float = _f(0.5, "weight of the value loss (R - V)^2 (paper: 0.5)")
    gaussian_mean: GaussianMean = _f("linear", "continuous actions (a3c/a2c): the Gaussian policy's mean, "
                                     "linear (the paper's) or tanh (squashed into the action space's "
                                     "bounds, as ChainerRL's bound_mean)", choices=GAUSSIAN_MEANS)
    max_grad_norm: float = _f(40.0, "clip the gradient's global L2 norm to this; 0 disables")
    optimizer: OptimizerName = _f("shared-rmsprop", "optimiser; statistics shared by all workers except "
                                          "'rmsprop' and 'sgd' (per-worker, as in the paper)",
                        choices=OPTIMIZERS)
    rms_alpha: float = _f(0.99, "RMSProp decay alpha (paper: 0.99)")
    rms_eps: float = _f(0.1, "RMSProp epsilon, inside the square root (paper: 0.1)")
    sgd_momentum: float = _f(0.9, "sgd: momentum alpha of each worker's own momentum vector, "
                                  "m = alpha m + (1 - alpha) grad (paper, supp. 7); 0: plain SGD")
    fused_optimizer: AutoOnOff = _f("auto", "RMSProp on the CPU as one compiled loop (torch.compile; needs a "
                                      "C++ compiler; the first compile for a model size takes 5-30 s, "
                                      "then it is cached): 3x faster updates, 1.17-1.22x frames/s for "
                                      "A3C on Pong with 2 workers (docs/algorithms.md); auto: on from 250,000 parameters when a "
                                      "compiler is found", choices=FUSED)
    adam_beta1: float = _f(0.9, "Adam beta1")
    adam_beta2: float = _f(0.999, "Adam beta2")
    adam_eps: float = _f(1e-8, "Adam epsilon")
    net: NetName = _f("auto", "network: auto picks the paper's CNN for image observations and an MLP "
                          "for vectors; lstm adds an LSTM core after that torso (A3C-LSTM, "
                          "CNN-LSTM on images; a3c/a2c)", choices=NETS)
    hidden: list[int] = _f([64, 64], "hidden layer sizes of the MLP torso", nargs="+", item_type=int)
    lstm_size: int = _f(256, "cells of the LSTM core with --net lstm (paper: 256)")
    activation: Activation = _f("tanh", "MLP activation (the CNN is ReLU, as the paper's); tanh by default: "
                                 "with ReLU and the gradient clip the value estimate diverged on "
                                 "CartPole (docs/algorithms.md)", choices=ACTIVATIONS)
    shared_torso: AutoYesNo = _f("auto", "policy and value share the torso; auto: shared for the CNN and "
                                   "the LSTM (paper, Atari), separate MLPs for vector observations "
                                   "(as SB3's MlpPolicy)", choices=SHARED_TORSO, flag=True)
    executor: ExecutorName = _f("auto", "how actor-learners run: hogwild processes, sync (one process, "
                               "batched), or ray (Ray actors, on this machine or a Ray cluster, "
                               "their gradients applied by this process); auto: sync for a2c, "
                               "hogwild otherwise", choices=EXECUTORS)
    ray_address: str = _f("", "ray executor: the Ray cluster to run the actor-learners on (an "
                              "address as ray.init takes it: 'auto', 'HOST:6379', "
                              "'ray://HOST:10001'; auto: RAY_ADDRESS or the last `ray start` here); "
                              "empty: a Ray already started in this process, else a local one "
                              "started on this machine for the run")
    ray_mode: RayModeName = _f("auto", "ray executor, asynchronous methods: flat (this process is the "
                                       "parameter server: every segment's gradient is applied here, exact, "
                                       "one actor-learner is bit-for-bit hogwild's; for a few actors) or "
                                       "hierarchical (a hogwild group on each node, each pushing its "
                                       "parameter change to a global parameter store and pulling the global "
                                       "parameters every sync-seconds: Downpour SGD); auto: hierarchical "
                                       "when the cluster has more than one node with CPUs, else flat",
                               choices=RAY_MODES)
    workers_per_node: int = _f(0, "ray hierarchical: actor-learners in each node's hogwild group (workers "
                                  "must be a multiple); 0: the workers spread over the nodes with CPUs")
    sync_seconds: float = _f(0.1, "ray hierarchical: seconds between a node group's exchanges with the "
                                  "parameter store (the staleness bound; A3C on CartPole, 2 nodes: 0.1 solved "
                                  "3 of 3 seeds as fast per step as hogwild, 0.5 and 2 only 1 of 3: "
                                  "benchmarks/ray_hier_learning.py)")
    sync_updates: int = _f(0, "ray hierarchical: also exchange after this many local updates of a node "
                              "group (0: by time only)")
    learners: int = _f(0, "ray executor, a2c: data-parallel learners, each stepping workers / learners "
                          "environments, their gradients averaged every update (torch.distributed); "
                          "0: one per node with CPUs")
    device: DeviceName = _f("auto", "sync executor: device of the model and the update (auto: cuda if "
                             "available); hogwild runs on cpu", choices=DEVICES)
    vec_env: VecEnvName = _f("auto", "sync executor: step the environments inline (gymnasium SyncVectorEnv), "
                              "split (one group per core: the last inline, the others in worker "
                              "processes that step while the next group's actions are chosen; "
                              "observations in shared memory; lowers the priority of this "
                              "process's torch/BLAS pool threads for good), in threads (one group "
                              "per core; pays off only for envs whose step releases the GIL, as "
                              "MuJoCo's physics does and the ALE's does not), in "
                              "subprocesses (one per env, restarted when one fails), or, for "
                              "Atari, in ale-py's C++ vector env "
                              "or EnvPool (their resets differ slightly); auto: inline for Atari, "
                              "subprocesses for envs slower than ~0.2 ms a step when there are cores "
                              "to spare, else inline", choices=VEC_ENVS)
    clip_rewards: AutoYesNo = _f("auto", "clip rewards to [-1, 1] for learning (the logged and evaluated "
                                   "score stays the raw one); auto: yes for Atari, no otherwise",
                           choices=CLIP_REWARDS)
    noop_max: int = _f(30, "Atari: up to this many random no-ops at the start of every episode "
                           "(training and evaluation)")
    frame_skip: int = _f(4, "Atari and --pixels: action repeat (Atari: the observation is the max of the "
                            "last 2 frames)")
    frame_stack: int = _f(4, "Atari and --pixels: observations stacked (channels of the CNN input)")
    screen_size: int = _f(84, "Atari and --pixels: frames are resized to screen-size x screen-size "
                              "(Atari: grayscale)")
    pixels: PixelsName = _f("auto", "image preprocessing of a non-Atari env's images (a Dict's image "
                                    "entries too): frame skip, resize, gray or color frames, frame stack "
                                    "(the frame-skip, screen-size, frame-stack values); auto: color for "
                                    "ViZDoom and CarRacing ids, off for others", choices=PIXELS)
    obs_keys: list[str] = _f([], "Dict observations: the entries the network reads (default: all)", nargs="+")
    env_kwargs: dict = _f({}, "keyword arguments for gym.make of the env id, as KEY=VALUE (values read as "
                              "YAML: continuous=false, lap_complete_percent=0.95; a mapping in a config file)",
                          nargs="+")
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
    eval_episodes: int = _f(10, "greedy evaluation episodes at the end of training, and of each periodic "
                                "evaluation (--eval-every); 0 skips the final one")
    eval_every: int = _f(0, "evaluate a snapshot of the parameters every this many global steps, in a "
                            "separate process while training goes on (evaluations.csv, TensorBoard eval/; "
                            "best.pt is then the best evaluation's); 0: only at the end")
    stop_eval_return: float = _f(float("inf"), "with --eval-every: stop once an evaluation's mean return "
                                               "reaches this (inf: never)")
    stop_return: float = _f(float("inf"), "stop early once the mean return of the last 100 "
                                          "training episodes reaches this (inf: never)")
    wandb: bool = _f(False, "also send the metrics to Weights & Biases (the wandb extra), into <run-dir>/wandb: "
                            "offline (no account, no network) unless WANDB_MODE says otherwise; `wandb sync` "
                            "uploads it later")
    wandb_project: str = _f("asyncrl", "with --wandb: the W&B project")
    start_method: StartMethod = _f("auto", "multiprocessing start method (auto: fork on Linux, spawn elsewhere)",
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
    def from_dict(cls, data: dict, source: str = "config", what: str = "key") -> "Config":
        """Build from a mapping; an unknown key is an error naming the key (`what` it is
        called: key, hyperparameter) and the closest known one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown_message(source, unknown, known, what))
        coerced = {k: coerce_field(k, v, source) for k, v in data.items()}
        preset = coerced.get("preset", "none")
        if preset not in PRESETS:
            raise ConfigError(f"{source}: preset {preset!r} is not one of: {', '.join(PRESETS)}")
        return cls(**{**preset_values(preset, coerced.get("algo", "a3c")), **coerced})

    @classmethod
    def from_yaml(cls, path: str) -> "Config":
        """Read a YAML file of field: value (keys with - or _; a run folder's config.yaml
        too). Fields it does not name keep their preset's value (the file's `preset`, none
        if it has none)."""
        return cls.from_dict(load_config_file(str(path)), source=str(path))

    def to_yaml(self, path: str, overwrite: bool = False, only_applicable: bool = False) -> str:
        """Write this config as YAML (atomically: a temporary file renamed), every field, or with
        `only_applicable` those that apply to its run (`applies`). An existing file is refused
        (ConfigError) unless `overwrite`. Returns the path."""
        import os
        import tempfile

        import yaml

        path = str(path)
        if os.path.exists(path) and not overwrite:
            raise ConfigError(f"{path!r} exists; pass overwrite=True to replace it")
        values = self.applicable_dict() if only_applicable else self.to_dict()
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(yaml.safe_dump(values, sort_keys=False))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    def applies(self, name: str) -> bool:
        """Whether field `name` has any effect on this run: Atari-only fields for Atari ids, the
        Q methods' for value-based algorithms, the LSTM's with an LSTM, each optimiser's and
        executor's own options with it, ... (an unknown name: KeyError)."""
        _FIELDS[name]
        rule = _APPLIES.get(name)
        return True if rule is None else bool(rule(self))

    def applicable_dict(self) -> dict:
        """to_dict() with only the fields that apply to this run (config.yaml of a run folder)."""
        return {k: v for k, v in self.to_dict().items() if self.applies(k)}

    def validate(self) -> list[str]:
        """Every problem with this configuration, one line each (empty when valid): its own
        fields', then each executor's options' (config.validate)."""
        return problems(self)

    def check(self) -> "Config":
        """Raise ConfigError with the first problem (all of them are listed after it). Once
        nothing else is wrong, the checks that touch the outside run too (the run folder must
        be writable; a Ray cluster's address is probed: nothing listening there is a bad
        input, said at once)."""
        found = self.validate() or probe_problems(self)
        if found:
            more = f" (+{len(found) - 1} more: {'; '.join(found[1:])})" if len(found) > 1 else ""
            raise ConfigError(found[0] + more)
        return self


_FIELDS = {f.name: f for f in fields(Config)}

_VALUE_BASED = ("one-step-q", "one-step-sarsa", "n-step-q")
_ACTOR_CRITIC = ("a3c", "a2c")
_ATARI = lambda c: is_atari_id(c.env)                     # noqa: E731
_SYNC = lambda c: c.resolved().executor == "sync"          # noqa: E731
_RMSPROP = lambda c: c.optimizer in ("shared-rmsprop", "rmsprop")  # noqa: E731
_ADAM = lambda c: c.optimizer == "adam"                    # noqa: E731
#: field -> when it applies (a field not named here always does)
_APPLIES = {
    "async_update": lambda c: c.algo in ("one-step-q", "one-step-sarsa"),
    "t_max": lambda c: c.algo not in ("one-step-q", "one-step-sarsa"),
    **dict.fromkeys(("target_update", "epsilon_steps", "epsilon_finals", "epsilon_probs"),
                    lambda c: c.algo in _VALUE_BASED),
    **dict.fromkeys(("entropy_beta", "value_coef", "gaussian_mean", "shared_torso"),
                    lambda c: c.algo in _ACTOR_CRITIC),
    **dict.fromkeys(("rms_alpha", "rms_eps", "fused_optimizer"), _RMSPROP),
    **dict.fromkeys(("adam_beta1", "adam_beta2", "adam_eps"), _ADAM),
    "sgd_momentum": lambda c: c.optimizer == "sgd",
    **dict.fromkeys(("hidden", "activation"), lambda c: uses_mlp(c, is_atari_id(c.env))),
    "lstm_size": lambda c: c.net == "lstm",
    "ray_address": lambda c: c.resolved().executor == "ray",
    "ray_mode": lambda c: c.resolved().executor == "ray" and c.algo != "a2c",
    **dict.fromkeys(("workers_per_node", "sync_seconds", "sync_updates"),
                    lambda c: c.resolved().executor == "ray" and c.algo != "a2c" and c.ray_mode != "flat"),
    "learners": lambda c: c.resolved().executor == "ray" and c.algo == "a2c",
    **dict.fromkeys(("device", "vec_env", "torch_threads"), _SYNC),
    **dict.fromkeys(("noop_max", "sticky_actions", "life_loss_terminal"), _ATARI),
    **dict.fromkeys(("frame_skip", "frame_stack", "screen_size"),
                    lambda c: is_atari_id(c.env) or pixel_mode(c.env, c.pixels) is not None),
    "pixels": lambda c: not is_atari_id(c.env),
    "stop_eval_return": lambda c: c.eval_every > 0,
    "wandb_project": lambda c: c.wandb,
    "start_method": lambda c: c.resolved().executor == "hogwild" or c.eval_every > 0,   # the evaluator's too
}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def coerce_field(name: str, value: Any, source: str = "config") -> Any:
    """Convert a value (from YAML or a keyword argument) to field `name`'s type, or fail clearly."""
    return coerce_value(_FIELDS[name], value, source)
