"""Raw observations to actions with an algorithm's policy: what Agent.act, evaluation and
the background evaluator share."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .rollout import ObsWriter


class Actor:
    """Acts on one raw observation at a time with `algorithm`'s policy on `model` (greedy by
    default; continuous actions clipped to the action space's bounds). A recurrent policy
    carries its state from call to call: `reset()` when an episode begins. The policy reads
    the model's parameters as they are, so an Actor stays valid while they change in place."""

    def __init__(self, algorithm: Any, model: Any, obs_space: gym.Space, action_space: gym.Space,
                 rng: np.random.Generator, deterministic: bool = True):
        self.write = ObsWriter(obs_space)
        self.rows = self.write.rows(1).numpy()
        self.policy = algorithm.make_policy(model, rng, deterministic)
        self.box = action_space if isinstance(action_space, gym.spaces.Box) else None

    def __call__(self, obs: Any) -> Any:
        self.write(self.rows[0], obs)
        a = self.policy(self.rows)[0]
        if self.box is not None:
            return np.clip(a, self.box.low, self.box.high).reshape(self.box.shape)
        return int(a)

    def reset(self) -> None:
        self.policy.reset_state()
