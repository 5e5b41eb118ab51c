"""Partially observed environments for testing memory (A3C-LSTM against A3C-FF).

`asyncrl.pomdp:CartPoleNoVelocity-v1` is CartPole-v1 with the two velocity components
(cart velocity, pole angular velocity) removed from the observation: only the cart
position and the pole angle remain, so a policy must infer motion from its history.
Importing this module registers it; as an env id, Gymnasium imports it for you:

    asyncrl train a3c --env asyncrl.pomdp:CartPoleNoVelocity-v1 --net lstm
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class MaskObservation(gym.ObservationWrapper):
    """Keep only the observation components at `keep` (a 1-D Box observation)."""

    def __init__(self, env: gym.Env, keep: tuple[int, ...]):
        super().__init__(env)
        self.keep = np.asarray(keep, dtype=np.int64)
        box = env.observation_space
        self.observation_space = gym.spaces.Box(box.low[self.keep], box.high[self.keep], dtype=box.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


def cartpole_no_velocity(**kwargs) -> gym.Env:
    from gymnasium.envs.classic_control import CartPoleEnv

    return MaskObservation(CartPoleEnv(**kwargs), keep=(0, 2))   # x, theta


if "CartPoleNoVelocity-v1" not in gym.registry:
    gym.register("CartPoleNoVelocity-v1", entry_point=cartpole_no_velocity, max_episode_steps=500,
                 reward_threshold=475.0)
