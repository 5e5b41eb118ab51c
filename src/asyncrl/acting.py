"""Raw observations to actions with an algorithm's policy: what Agent.act, evaluation and
the background evaluator share."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

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


class Predictor:
    """Stable-Baselines3's `predict`: raw observations, one or a batch, to actions, with the
    recurrent (LSTM) state passed in and out instead of kept. A policy is built per batch
    size and kind (greedy or sampling) and reused; it reads the parameters live, like Actor."""

    def __init__(self, algorithm: Any, model: Any, obs_space: gym.Space, action_space: gym.Space,
                 rng: np.random.Generator):
        self.algorithm, self.model, self.rng = algorithm, model, rng
        self.obs_space = obs_space
        self.write = ObsWriter(obs_space)
        self.box = action_space if isinstance(action_space, gym.spaces.Box) else None
        self._policies: dict = {}

    def batch(self, observation: Any) -> tuple[np.ndarray, bool]:
        """(observations [B, ...], whether one observation was given); ValueError naming the
        shape when it fits neither the observation space nor a batch of it."""
        space = self.obs_space
        if isinstance(space, gym.spaces.Dict):
            return _dict_batch(space, observation)
        if isinstance(space, gym.spaces.Discrete):
            obs = np.asarray(observation)
            if obs.ndim <= 1 and np.issubdtype(obs.dtype, np.integer):
                return obs.reshape(-1), obs.ndim == 0
            raise ValueError(f"predict: observation {_brief(observation)} is neither an integer of {space} "
                             f"nor a 1-D array of them (a batch)")
        obs = np.asarray(observation)
        shape = tuple(space.shape)
        if obs.shape == shape:
            return obs[None], True
        if obs.ndim == len(shape) + 1 and obs.shape[1:] == shape and obs.shape[0] > 0:
            return obs, False
        raise ValueError(f"predict: an observation of shape {obs.shape} fits neither the observation space's "
                         f"shape {shape} nor a batch of it (B, {', '.join(map(str, shape))})")

    def _policy(self, deterministic: bool, n: int) -> tuple[Any, np.ndarray]:
        key = (deterministic, n)
        if key not in self._policies:
            if len(self._policies) >= 8:          # batch sizes come and go: keep a few
                self._policies.pop(next(iter(self._policies)))
            policy = self.algorithm.make_policy(self.model, self.rng, deterministic, n_envs=n)
            self._policies[key] = (policy, self.write.rows(n).numpy())
        return self._policies[key]

    def __call__(self, observation: Any, state: Any = None, episode_start: Any = None,
                 deterministic: bool = True, step: int = 0) -> tuple[np.ndarray, Any]:
        obs, single = self.batch(observation)
        n = len(next(iter(obs.values()))) if isinstance(obs, dict) else obs.shape[0]
        policy, rows = self._policy(deterministic, n)
        self.write.batch(rows, obs)
        policy.at_step(step)                       # epsilon-greedy: epsilon as at the global step
        recurrent = policy.recurrent
        if recurrent is not None:
            _set_state(recurrent, state, n)
            if episode_start is not None:
                mask = np.asarray(episode_start, dtype=bool).reshape(-1)
                if mask.shape[0] != n:
                    raise ValueError(f"predict: episode_start has {mask.shape[0]} values for {n} observations")
                policy.reset_state(mask)
        actions = np.asarray(policy(rows))
        if self.box is not None:
            actions = np.clip(actions, self.box.low, self.box.high).reshape((n, *self.box.shape))
        else:
            actions = actions.astype(np.int64)
        out_state = None
        if recurrent is not None:
            h, c = policy.get_state()
            out_state = (h.cpu().numpy()[None], c.cpu().numpy()[None])     # (1, B, H), as torch's LSTM
        return (actions[0] if single else actions), out_state


def _dict_batch(space: gym.spaces.Dict, observation: Any) -> tuple[dict, bool]:
    """A Dict observation, or a batch of them (a dict of arrays with one leading axis B), as
    ({key: [B, ...]}, whether one was given); keys the space lacks are ignored."""
    if not isinstance(observation, dict):
        raise ValueError(f"predict: the observation space is a Dict ({', '.join(space.spaces)}); got "
                         f"{type(observation).__name__}, not a dict")
    out, singles = {}, set()
    for key, sub in space.spaces.items():
        if key not in observation:
            raise ValueError(f"predict: the observation has no entry {key!r} (the Dict's entries: "
                             f"{', '.join(space.spaces)})")
        obs = np.asarray(observation[key])
        shape = () if isinstance(sub, gym.spaces.Discrete) else tuple(sub.shape)
        if obs.shape == shape:
            out[key], one = obs[None], True
        elif obs.ndim == len(shape) + 1 and obs.shape[1:] == shape and obs.shape[0] > 0:
            out[key], one = obs, False
        else:
            raise ValueError(f"predict: entry {key!r} of shape {obs.shape} fits neither its space's shape "
                             f"{shape} nor a batch of it")
        singles.add(one)
    sizes = {len(v) for v in out.values()}
    if len(singles) > 1 or len(sizes) > 1:
        raise ValueError(f"predict: the entries disagree on the batch: sizes {sorted(sizes)} "
                         f"({', '.join(f'{k} {v.shape}' for k, v in out.items())})")
    return out, singles.pop()


def _set_state(recurrent: Any, state: Any, n: int) -> None:
    """Load (h, c) of shape (1, n, H) or (n, H) into a recurrent policy (zeros for None)."""
    if state is None:
        recurrent.reset()
        return
    try:
        h, c = state
    except (TypeError, ValueError):
        raise ValueError("predict: state must be the (h, c) pair a previous predict returned") from None
    size = recurrent.h.shape[1]
    for name, src, dst in (("h", h, recurrent.h), ("c", c, recurrent.c)):
        arr = np.asarray(src.cpu() if torch.is_tensor(src) else src, dtype=np.float32)
        if arr.size != n * size:
            raise ValueError(f"predict: state {name} has shape {arr.shape}; {n} observations need (1, {n}, {size})")
        arr = arr.reshape(n, size)
        dst[:] = torch.from_numpy(arr).to(dst.device) if torch.is_tensor(dst) else arr


def _brief(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
