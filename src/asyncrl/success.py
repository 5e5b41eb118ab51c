"""Episode success, for the scenarios that define one.

The convention is Gymnasium's and Stable-Baselines3's: an environment that knows whether an
episode succeeded says so in the `info` of its last step, as `info["is_success"]`.
Evaluations (asyncrl.evaluate) count it: their result has a `success_rate` when every
episode said. Environments that do not say it themselves but whose scenario defines success
get it from the rule below, added as a wrapper when the env is made (asyncrl.envs).
Training episodes are judged by the same rule, from their raw return, in the main process's
writer (asyncrl.metrics): episodes.csv's `success`, metrics.csv's `success_rate_100`.

    VizdoomMyWayHome   the goal (a vest somewhere in a maze of rooms) reached: +1 at the goal,
                       -0.0001 a tic, 2100 tics at most, so the episode's return is > 0
                       exactly when the goal was reached (a timeout scores -0.21)
"""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym

#: Gymnasium id prefix (after any `module:`) -> success from the episode's raw return (the
#: module docstring says why)
SUCCESS_RULES: dict[str, Callable[[float], bool]] = {
    "VizdoomMyWayHome": lambda total: total > 0.0,
}


def success_rule(env_id: "str | None") -> "Callable[[float], bool] | None":
    """The success rule of `env_id`'s scenario, or None when it defines none."""
    if not isinstance(env_id, str):
        return None
    name = env_id.split(":", 1)[-1]
    return next((rule for prefix, rule in SUCCESS_RULES.items() if name.startswith(prefix)), None)


class EpisodeSuccess(gym.Wrapper):
    """Sets `info["is_success"]` on an episode's last step from the scenario's rule over the
    episode's raw return (unless the env already set it)."""

    def __init__(self, env: gym.Env, rule: Callable[[float], bool]):
        super().__init__(env)
        self._rule, self._total = rule, 0.0

    def reset(self, **kwargs: Any):
        self._total = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._total += float(reward)
        if (terminated or truncated) and "is_success" not in info:
            info = {**info, "is_success": bool(self._rule(self._total))}
        return obs, reward, terminated, truncated, info


def with_success(env: gym.Env, env_id: "str | None") -> gym.Env:
    """`env` wrapped with its scenario's success rule, if it has one."""
    rule = success_rule(env_id)
    return env if rule is None else EpisodeSuccess(env, rule)
