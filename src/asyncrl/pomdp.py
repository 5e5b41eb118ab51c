"""Partially observed environments for testing memory (A3C-LSTM against A3C-FF).

`asyncrl.pomdp:CartPoleNoVelocity-v1` is CartPole-v1 with the two velocity components
(cart velocity, pole angular velocity) removed from the observation: only the cart
position and the pole angle remain, so a policy must infer motion from its history.

`asyncrl.pomdp:CueMemory-v0` is a memory task in its plainest form: the first observation
shows a cue (left or right), the next `delay` observations (6 by default) show nothing, and
then a "go" observation asks for the cue's side: reward +1 for it, -1 for the other, and
the episode ends. The reward comes `delay + 1` steps after the cue; a policy without memory
is right half the time (mean return 0), one that remembers always (mean return 1).

Importing this module registers them; as an env id, Gymnasium imports it for you:

    asyncrl train a3c --env asyncrl.pomdp:CartPoleNoVelocity-v1 --net lstm
    asyncrl train a3c --env asyncrl.pomdp:CueMemory-v0 --net lstm
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


class CueMemory(gym.Env):
    """Remember a cue over `delay` blank steps, then name it (see the module's docstring).

    Observation (3 floats): [cue is left, cue is right, go]; all zeros during the delay.
    Actions: 0 (left), 1 (right); before "go" they change nothing."""

    metadata = {"render_modes": []}

    def __init__(self, delay: int = 6):
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        self.delay = delay
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._cue, self._t = 0, 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(3, dtype=np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
        elif self._t == self.delay + 1:
            obs[2] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._cue, self._t = int(self.np_random.integers(2)), 0
        if self.delay == 0:
            self._t = 1                      # no blank step: cue and go in one observation
            obs = np.zeros(3, dtype=np.float32)
            obs[self._cue] = obs[2] = 1.0
            return obs, {}
        return self._obs(), {}

    def step(self, action):
        if self._t == self.delay + 1:        # the decision
            reward = 1.0 if int(action) == self._cue else -1.0
            self._t += 1
            return np.zeros(3, dtype=np.float32), reward, True, False, {}
        self._t += 1
        return self._obs(), 0.0, False, False, {}


def cartpole_no_velocity(**kwargs) -> gym.Env:
    from gymnasium.envs.classic_control import CartPoleEnv

    return MaskObservation(CartPoleEnv(**kwargs), keep=(0, 2))   # x, theta


if "CueMemory-v0" not in gym.registry:
    gym.register("CueMemory-v0", entry_point=CueMemory, reward_threshold=0.95)
if "CartPoleNoVelocity-v1" not in gym.registry:
    gym.register("CartPoleNoVelocity-v1", entry_point=cartpole_no_velocity, max_episode_steps=500,
                 reward_threshold=475.0)
