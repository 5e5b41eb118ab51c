"""Networks: torso (mlp; cnn and lstm come later) -> heads.

Policy and value share every non-output layer (paper, section 4). Initialisation is
orthogonal (gain sqrt(2) in the torso, 0.01 on the policy head so the initial policy is
near-uniform, 1 on the value head).
"""
from __future__ import annotations

import math
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from .config import Config
from .errors import EnvError

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def obs_dim(space: gym.Space) -> int:
    """Size of the float vector an observation is encoded to (Discrete: one-hot)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    return int(math.prod(space.shape))


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp_torso(in_dim: int, hidden: list[int], activation: str) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [_init(nn.Linear(d, h), math.sqrt(2)), _ACTIVATIONS[activation]()]
        d = h
    return nn.Sequential(*layers), d


def build_torso(obs_space: gym.Space, cfg: Config) -> tuple[nn.Module, int]:
    net = cfg.net
    if net == "auto":
        if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) >= 3:
            raise EnvError(f"image observations {obs_space.shape} need the CNN torso, which is not "
                           f"available yet; supported: vector observations (mlp)")
        net = "mlp"
    return mlp_torso(obs_dim(obs_space), list(cfg.hidden), cfg.activation)


class ActorCritic(nn.Module):
    """Softmax policy and linear value head on a shared torso (paper, section 4), or on
    separate torsos when `value_torso` is given (the paper's MuJoCo networks).

    forward(obs [N, D]) -> (logits [N, A], value [N])
    """

    def __init__(self, torso: nn.Module, feat_dim: int, n_actions: int, value_torso: nn.Module | None = None):
        super().__init__()
        self.torso = torso
        self.value_torso = value_torso
        self.policy = _init(nn.Linear(feat_dim, n_actions), 0.01)
        self.value = _init(nn.Linear(feat_dim, 1), 1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.torso(obs)
        hv = h if self.value_torso is None else self.value_torso(obs)
        return self.policy(h), self.value(hv).squeeze(-1)

    def policy_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Acting needs the policy only: the value torso is skipped."""
        return self.policy(self.torso(obs))


class QNetwork(nn.Module):
    """One linear Q output per action on the same torsos: forward(obs [N, D]) -> q [N, A]."""

    def __init__(self, torso: nn.Module, feat_dim: int, n_actions: int):
        super().__init__()
        self.torso = torso
        self.q = _init(nn.Linear(feat_dim, n_actions), 1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q(self.torso(obs))


def numpy_mlp(torso: nn.Module, head: nn.Linear) -> "NumpyMLP | None":
    """A NumPy mirror of `head(torso(x))` for a plain MLP torso, else None.

    Batch-1 acting through torch costs ~10 us of dispatch per module; NumPy on views of
    the same parameter memory costs ~1 us per layer. The views read the parameters live:
    they stay valid while the parameters are updated in place (as the worker's flat local
    copy is), and must be rebuilt if the parameter storage moves (e.g. share_memory_()).
    """
    layers: list[tuple] = []
    acts = {nn.ReLU: "relu", nn.Tanh: "tanh"}
    mods = list(torso) if isinstance(torso, nn.Sequential) else None
    if mods is None or head.weight.device.type != "cpu":
        return None
    for m in mods:
        if isinstance(m, nn.Linear):
            layers.append([m.weight.detach().numpy().T, m.bias.detach().numpy(), None])
        elif type(m) in acts and layers and layers[-1][2] is None:
            layers[-1][2] = acts[type(m)]
        else:
            return None
    layers.append([head.weight.detach().numpy().T, head.bias.detach().numpy(), None])
    return NumpyMLP([tuple(x) for x in layers])


def numpy_scores(torso: nn.Module, head: nn.Linear, forward) -> "Callable[[np.ndarray], np.ndarray]":
    """obs [B, D] float32 -> head(torso(obs)) [B, A] as NumPy, for acting: the NumPy mirror
    when the torso is a plain MLP, else `forward` (the torch equivalent) under no_grad."""
    fast = numpy_mlp(torso, head)
    if fast is not None:
        return fast
    device = head.weight.device
    if device.type == "cpu":
        def scores(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return forward(torch.from_numpy(obs)).numpy()
        return scores

    def scores_on_device(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return forward(torch.from_numpy(obs).to(device, non_blocking=True)).cpu().numpy()
    return scores_on_device


class NumpyMLP:
    def __init__(self, layers: list[tuple]):
        self.layers = layers

    def __call__(self, x):
        for w_t, b, act in self.layers:
            x = np.dot(x, w_t)
            x += b
            if act == "tanh":
                np.tanh(x, out=x)
            elif act == "relu":
                np.maximum(x, 0.0, out=x)
        return x
