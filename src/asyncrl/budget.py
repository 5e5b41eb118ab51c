"""The memory a run needs, estimated from its config and the env's spaces before anything
is allocated, against the memory this machine has free (a `--t-max 1000000000` used to
allocate rollout buffers until the machine hung).

The estimate counts what grows with the options: the network's parameters (the same
arithmetic as nets/: the paper's CNN for images, else the MLP of `hidden`, an LSTM core,
separate policy and value torsos, the heads) times every copy of them (the shared
parameters, the target network, the optimiser's statistics, and each worker's own copy and
gradients), the rollout buffers and activations of every learner, and the memory of each
worker process. It is an estimate, meant to refuse what cannot fit, not to account for
every byte; `memory_problem` is pure, `check_memory` reads the machine."""
from __future__ import annotations

import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from .config import Config
from .errors import ConfigError
from .spaces import image_layout, is_image_space, obs_dim

FLOAT = 4
#: what one worker process (hogwild, ray) costs besides its tensors: the interpreter, torch's
#: private pages after the fork, the env (a copy-on-write fork shares the rest)
PROCESS_BYTES = 64 * 2**20
#: the share of the free memory a run may plan to use (the rest: the OS, the env's own state)
USABLE = 0.9
ACTOR_CRITIC = ("a3c", "a2c")


@dataclass(frozen=True)
class Estimate:
    params: int            # parameters of one network
    copies: int            # copies of them (parameters, gradients, statistics, workers')
    model_bytes: int       # params x copies x 4
    buffer_bytes: int      # rollout buffers and activations of every learner
    process_bytes: int     # worker processes

    @property
    def total(self) -> int:
        return self.model_bytes + self.buffer_bytes + self.process_bytes


def _cnn(shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, activations per row) of the paper's CNN on images of `shape` (nets/cnn.py)."""
    _, c, (h, w) = image_layout(shape)
    h1, w1 = max((h - 8) // 4 + 1, 1), max((w - 8) // 4 + 1, 1)
    h2, w2 = max((h1 - 4) // 2 + 1, 1), max((w1 - 4) // 2 + 1, 1)
    flat = 32 * h2 * w2
    params = (c * 16 * 64 + 16) + (16 * 32 * 16 + 32) + (flat * 256 + 256)
    return params, 16 * h1 * w1 + flat + 256


def _mlp(in_dim: int, hidden: list[int]) -> tuple[int, int, int]:
    """(parameters, activations per row, feature size) of the MLP torso (nets/layers.py)."""
    params, d = 0, in_dim
    for h in hidden:
        params += d * h + h
        d = h
    return params, sum(hidden), d


def model_size(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> tuple[int, int]:
    """(parameters, activations per row of a forward) of the network `cfg` builds for these
    spaces (algos' build_model)."""
    if is_image_space(obs_space) and cfg.net != "mlp":
        torso, acts = _cnn(tuple(obs_space.shape))
        feat, cnn = 256, True
    else:
        torso, acts, feat = _mlp(obs_dim(obs_space), list(cfg.hidden))
        cnn = False
    continuous = isinstance(action_space, gym.spaces.Box)
    n = int(np.prod(action_space.shape)) if continuous else int(getattr(action_space, "n", 1))
    if cfg.algo not in ACTOR_CRITIC:
        return torso + feat * n + n, acts + n
    params, out = torso, feat
    if cfg.net == "lstm":
        size = cfg.lstm_size
        params += 4 * size * (feat + size) + 8 * size
        acts += 6 * size
        out = size
    elif not cfg.shares_torso(cnn=cnn):
        params += torso                 # the value function's own torso
        acts *= 2
    heads = (2 * n if continuous else n) + 1
    return params + out * heads + heads, acts + heads


def estimate(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> Estimate:
    """What a run of `cfg` on these spaces needs in this machine's memory (bytes)."""
    cfg = cfg.resolved()
    params, acts = model_size(cfg, obs_space, action_space)
    workers = cfg.workers
    per_worker = cfg.executor in ("hogwild", "ray")
    stats = {"shared-rmsprop": 1, "adam": 2}.get(cfg.optimizer, workers)   # rmsprop, sgd: a row per worker
    copies = 1 + stats + (1 if cfg.algo not in ACTOR_CRITIC else 0)       # theta, statistics, theta-
    copies += 2 * workers if per_worker else 1                              # theta' and its gradient; or one gradient
    on_gpu = cfg.executor == "sync" and cfg.device == "cuda"
    model = 0 if on_gpu else params * copies * FLOAT
    segment = cfg.t_max if cfg.algo in ACTOR_CRITIC or cfg.algo == "n-step-q" else cfg.async_update
    rows = (segment + 1) * workers                  # every learner's [T+1, B] together
    obs_bytes = obs_dim(obs_space) * (1 if is_image_space(obs_space) and obs_space.dtype == np.uint8 else FLOAT)
    # observations (and the next ones of cut episodes), actions, rewards, flags; the
    # forward's activations, their gradients, and the CNN's tape of the acting forwards
    per_row = 2 * obs_bytes + 64 + 3 * acts * FLOAT
    buffers = rows * per_row
    processes = workers * PROCESS_BYTES if per_worker else 0
    return Estimate(params, copies, model, buffers, processes)


def _size(n: float) -> str:
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KB"


def memory_problem(cfg: Config, obs_space: gym.Space, action_space: gym.Space, available: int | None) -> str | None:
    """One line when a run of `cfg` on these spaces needs more than USABLE of `available`
    bytes (None: unknown, nothing is refused), naming both numbers and what is large."""
    supported = (gym.spaces.Box, gym.spaces.Discrete)
    if available is None or not isinstance(obs_space, supported) or not isinstance(action_space, supported):
        return None         # spaces no network takes are refused by the algorithm's check_spaces
    e = estimate(cfg, obs_space, action_space)
    if e.total <= USABLE * available:
        return None
    parts = sorted([(e.model_bytes, f"model {_size(e.model_bytes)}: {e.params:,} parameters x {e.copies} copies"),
                    (e.buffer_bytes, f"rollouts {_size(e.buffer_bytes)}: t-max {cfg.t_max:,} x {cfg.workers:,} "
                                     f"workers"),
                    (e.process_bytes, f"worker processes {_size(e.process_bytes)}")], reverse=True)
    shown = "; ".join(text for size, text in parts if size)
    return (f"this run needs about {_size(e.total)} of memory ({shown}), more than the {_size(available)} "
            f"free here; lower what is large (hidden, lstm-size, t-max, workers)")


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable, or less when a cgroup (a
    container) limits it; None when neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    limit = _cgroup_free()
    if limit is not None:
        found.append(limit)
    return min(found) if found else None


def _cgroup_free() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), if it has a limit."""
    try:
        with open("/proc/self/cgroup") as fh:
            rel = next((line.strip().split("::", 1)[1] for line in fh if line.startswith("0::")), None)
        if rel is None:
            return None
        folder = os.path.join("/sys/fs/cgroup", rel.lstrip("/"))
        with open(os.path.join(folder, "memory.max")) as fh:
            limit = fh.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(folder, "memory.current")) as fh:
            return max(int(limit) - int(fh.read().strip()), 0)
    except (OSError, ValueError):
        return None


def check_memory(cfg: Config, obs_space: gym.Space, action_space: gym.Space) -> None:
    """ConfigError (one line) when the run cannot fit in the memory free on this machine."""
    problem = memory_problem(cfg, obs_space, action_space, available_memory())
    if problem:
        raise ConfigError(problem)

