"""The algorithm interface: choose actions, turn a [T, B] rollout into a loss.

An algorithm knows nothing of processes, shared memory or optimisers; executors call
these three methods and own everything else (shared/STYLE.md).
"""
from __future__ import annotations

from typing import Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..config import Config
from ..rollout import Rollout


class Algorithm:
    name: ClassVar[str] = ""
    #: names of the scalars `loss` reports, in the order metrics.csv shows them
    stat_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def check_spaces(self, obs_space: gym.Space, action_space: gym.Space, env_name: str) -> None:
        """Raise EnvError if this algorithm cannot handle the spaces."""
        raise NotImplementedError

    def build_model(self, obs_space: gym.Space, action_space: gym.Space) -> nn.Module:
        raise NotImplementedError

    def make_policy(self, model: nn.Module, rng: np.random.Generator, greedy: bool = False
                    ) -> Callable[[np.ndarray], np.ndarray]:
        """The acting function of an actor: obs [B, D] float32 (NumPy) -> actions [B].

        Built once per actor and called every step, so it may precompute (e.g. NumPy views
        of the model's parameters); it reads the model's parameters as they are updated in
        place. Exploration randomness comes from `rng` (seeded per worker).
        """
        raise NotImplementedError

    def loss(self, model: nn.Module, rollout: Rollout) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar to minimise for this rollout, and detached statistics (stat_keys)."""
        raise NotImplementedError
