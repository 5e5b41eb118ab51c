"""Layer building blocks: orthogonal initialisation (gain sqrt(2) in the torsos, 0.01 on
the policy head so the initial policy is near-uniform, 1 on the value and Q heads), the
activations, and the MLP torso for vector observations."""
from __future__ import annotations

import math

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp_torso(in_dim: int, hidden: list[int], activation: str) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [init(nn.Linear(d, h), math.sqrt(2)), ACTIVATIONS[activation]()]
        d = h
    return nn.Sequential(*layers), d
