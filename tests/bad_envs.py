"""Environments that break the Gymnasium API, each in one way, importable as `bad_envs:Id`
(for asyncrl.envs.check_env and the bad inputs of the CLI)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class GoodBox(gym.Env):
    """A valid env: Box(-1, 1, (3,), float32) observations, 2 actions, 20 steps an episode.
    Each subclass breaks one rule."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def obs(self):
        return np.zeros(3, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.obs(), {}

    def step(self, action):
        self.t += 1
        return self.obs(), 1.0, self.t >= 20, False, {}


class OldStepAPI(GoodBox):
    """gym < 0.26: step returns (obs, reward, done, info)."""

    def step(self, action):
        self.t += 1
        return self.obs(), 1.0, self.t >= 20, {}


class OldResetAPI(GoodBox):
    """gym < 0.26: reset returns the observation alone (and takes no seed)."""

    def reset(self):
        self.t = 0
        return self.obs()


class ObsOutsideSpace(GoodBox):
    def obs(self):
        return np.array([0.0, 5.0, 0.0], np.float32)


class WrongDtype(GoodBox):
    """Float observations for a uint8 space."""

    observation_space = gym.spaces.Box(0, 255, (3,), np.uint8)

    def obs(self):
        return np.full(3, 0.5)


class WrongShape(GoodBox):
    def obs(self):
        return np.zeros(4, np.float32)


class NaNObs(GoodBox):
    """Finite at reset, NaN from the third step on."""

    def obs(self):
        return np.array([0.0, np.nan if getattr(self, "t", 0) >= 3 else 0.0, 0.0], np.float32)


class StringReward(GoodBox):
    def step(self, action):
        obs, _, term, trunc, info = super().step(action)
        return obs, "1.0", term, trunc, info


class DiscreteObsOutOfRange(GoodBox):
    observation_space = gym.spaces.Discrete(4)

    def obs(self):
        return 7


for _cls in (GoodBox, OldStepAPI, OldResetAPI, ObsOutsideSpace, WrongDtype, WrongShape, NaNObs, StringReward,
             DiscreteObsOutOfRange):
    gym.register(f"{_cls.__name__}-v0", entry_point=_cls, max_episode_steps=50)
