"""Toy environments for the vector-collector tests, importable as `toy_envs_vec:Id`.

Every quantity is a small integer, so a collected segment can be written down by hand.

CountEnv: observation [i, e] where i is the step index within the episode (0 after a
reset) and e the number of episodes this env instance started before this one (0 for
the first episode); every step sets i <- i + 1 and pays reward i. Actions 0 and 1
continue the episode, action 2 ends it (terminated). `horizon`: the episode also
terminates when i reaches it. The time limit (truncation) comes from registration.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class CountEnv(gym.Env):
    observation_space = gym.spaces.Box(0.0, 1000.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, horizon: int | None = None):
        self.horizon = horizon
        self.i = 0
        self.resets = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.i, self.resets - 1], np.float32)   # a fresh array every time

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.i = 0
        self.resets += 1
        return self._obs(), {}

    def step(self, action):
        self.i += 1
        terminated = int(action) == 2 or (self.horizon is not None and self.i >= self.horizon)
        return self._obs(), float(self.i), terminated, False, {}


#: time limit 3 and no terminal state unless action 2: episodes are cut (truncated)
gym.register("Count-v0", entry_point=CountEnv, max_episode_steps=3)
#: terminates when i reaches 3 (the time limit, 100, is never reached)
gym.register("CountTerm-v0", entry_point=CountEnv, kwargs={"horizon": 3}, max_episode_steps=100)
#: terminates when i reaches 3, which is also the time limit: terminated and truncated at once
gym.register("CountBoth-v0", entry_point=CountEnv, kwargs={"horizon": 3}, max_episode_steps=3)
