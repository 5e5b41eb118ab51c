"""What every vector env of ours does alike: cut B environments into groups, step one env
with SAME_STEP autoreset, call an attribute of each, merge the infos of one step in env
order, and raise the first of several groups' errors."""
from __future__ import annotations

import gymnasium as gym
import numpy as np


def group_bounds(n: int, groups: int) -> list[range]:
    """n environments in `groups` contiguous groups of (nearly) equal size, none empty."""
    cuts = np.linspace(0, n, max(1, min(groups, n)) + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]


def step_env(env: gym.Env, action):
    """One env's step with SAME_STEP autoreset: (obs, reward, terminated, truncated, info,
    (final obs, final info) or None)."""
    obs, reward, term, trunc, info = env.step(action)
    final = None
    if term or trunc:
        final = (obs, info)
        obs, info = env.reset()
    return obs, reward, term, trunc, info, final


def call_envs(envs, name: str, args: tuple, kwargs: dict) -> list:
    """Each env's attribute `name`, called with the arguments if it is callable."""
    out = []
    for env in envs:
        attr = env.get_wrapper_attr(name)
        out.append(attr(*args, **kwargs) if callable(attr) else attr)
    return out


def merged_infos(venv: gym.vector.VectorEnv, env_infos: list[dict], finals: dict[int, tuple]) -> dict:
    """The vector info of one SAME_STEP step: each env's info in env order, preceded by
    final_obs/final_info where its episode ended (finals: env -> (final obs, final info))."""
    infos: dict = {}
    for i, info in enumerate(env_infos):
        if i in finals:
            final_obs, final_info = finals[i]
            infos = venv._add_info(infos, {"final_obs": final_obs, "final_info": final_info}, i)
        infos = venv._add_info(infos, info, i)
    return infos


def raise_first(errors: list[BaseException]) -> None:
    """Raise the first error, the others noted on it (none: return)."""
    if errors:
        for other in errors[1:]:
            errors[0].add_note(f"another environment group failed too: {type(other).__name__}: {other}")
        raise errors[0]
