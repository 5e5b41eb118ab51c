"""Observation and action spaces: what an observation is encoded as (its size, dtype and
image layout), which spaces the networks support, and the weights_only-safe description of
a space that checkpoints keep."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from .errors import EnvError


def obs_dim(space: gym.Space) -> int:
    """Size of the row an observation is encoded to (Discrete: one-hot; Dict: its entries'
    rows side by side, in the order of dict_entries)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Dict):
        return sum(obs_dim(s) for s in space.spaces.values())
    return int(math.prod(space.shape))


def same_kind(saved: gym.Space, got: gym.Space, bounds: bool = False) -> bool:
    """Whether `got` is a space of `saved`'s type, shape and size (Discrete n); with `bounds` a
    Box's low and high too."""
    if type(saved) is not type(got) or getattr(saved, "shape", None) != getattr(got, "shape", None) \
            or getattr(saved, "n", None) != getattr(got, "n", None):
        return False
    return not (bounds and isinstance(saved, gym.spaces.Box)) or (
        np.array_equal(saved.low, got.low) and np.array_equal(saved.high, got.high))


def dict_entries(space: gym.spaces.Dict) -> list[tuple[str, gym.Space, slice]]:
    """(key, space, columns) of each entry of a Dict observation: where its encoding sits in
    the row (the Dict's own key order, which Gymnasium keeps sorted unless given in order)."""
    out, start = [], 0
    for key, sub in space.spaces.items():
        n = obs_dim(sub)
        out.append((key, sub, slice(start, start + n)))
        start += n
    return out


def is_image_space(space: gym.Space) -> bool:
    """Box observations with 2 or 3 dimensions are images (the CNN's input)."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) in (2, 3)


def image_layout(shape: tuple[int, ...]) -> tuple[bool, int, tuple[int, int]]:
    """(channels_last, channels, (height, width)) of an image observation's shape: [C, H, W],
    [H, W, C] (a last axis of at most 4 after a larger first one, as gym images come) or [H, W]."""
    if len(shape) == 2:
        return False, 1, (shape[0], shape[1])
    if shape[-1] <= 4 < shape[0]:
        return True, shape[-1], (shape[0], shape[1])
    return False, shape[0], (shape[1], shape[2])


def obs_dtype(space: gym.Space) -> torch.dtype:
    """How rollouts store an observation: images of bytes stay uint8 (4x less memory and
    no conversion per step; the CNN scales them), everything else is float32."""
    if is_image_space(space) and space.dtype == np.uint8:
        return torch.uint8
    if isinstance(space, gym.spaces.Dict) and space.spaces and \
            all(obs_dtype(s) == torch.uint8 for s in space.spaces.values()):
        return torch.uint8        # a Dict of byte images only; any vector entry makes rows float32
    return torch.float32


def has_image(space: gym.Space) -> bool:
    """An image, or a Dict with an image entry: the observations of the `images` family."""
    if isinstance(space, gym.spaces.Dict):
        return any(is_image_space(s) for s in space.spaces.values())
    return is_image_space(space)


def check_observation_space(space: gym.Space, env_name: str) -> None:
    """Box observations (vectors: MLP; images [C, H, W], [H, W, C] or [H, W]: CNN), Discrete
    ones (one-hot) and Dicts of them (a torso per entry) have a network; anything else is an
    EnvError naming the space, or the Dict entry, that none fits."""
    if isinstance(space, gym.spaces.Dict):
        if not space.spaces:
            raise EnvError(f"environment {env_name!r} has an empty Dict observation space, which no network fits")
        for key, sub in space.spaces.items():
            problem = _unfit(sub)
            if problem:
                raise EnvError(f"environment {env_name!r} has a Dict observation space, which no network fits: "
                               f"its entry {key!r} {problem}; a Dict's entries may be Box vectors or images "
                               f"and Discrete (--obs-keys leaves entries out)")
        return
    problem = _unfit(space)
    if problem is None:
        return
    if isinstance(space, gym.spaces.Box):
        raise EnvError(f"environment {env_name!r}: its observation space {problem}")
    raise EnvError(
        f"environment {env_name!r} has a {type(space).__name__} observation space, which no network "
        f"fits; supported: Box (vectors, images), Discrete (one-hot) and a Dict of them; flatten it with a "
        f"wrapper such as gymnasium.wrappers.FlattenObservation")


def _unfit(space: gym.Space) -> str | None:
    """Why no torso fits `space` as one observation (or a Dict's entry), None if one does."""
    if isinstance(space, gym.spaces.Box):
        if not np.issubdtype(space.dtype, np.number):
            return f"is a Box of dtype {space.dtype}, not numeric"
        if len(space.shape) > 3 or len(space.shape) == 0:
            return (f"is a {len(space.shape)}-D Box {space.shape}; supported: vectors (1-D) and images "
                    f"(2-D or 3-D)")
        return None
    if isinstance(space, gym.spaces.Discrete):
        return None  # one-hot encoded by the torso
    return f"is a {type(space).__name__} space"


def require_discrete_actions(space: gym.Space, env_name: str, algo: str, why: str) -> None:
    """EnvError naming the env, its action space and why `algo` needs Discrete actions."""
    kind = action_space_kind(space)
    if kind != "discrete":
        raise EnvError(f"environment {env_name!r} has a {kind} action space ({space}); {algo} {why}")


def action_space_kind(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box):
        return "continuous"
    return type(space).__name__


def space_to_dict(space: gym.Space) -> dict:
    """A weights_only-safe description of a space (checkpoints rebuild models without the env)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": torch.as_tensor(space.low), "high": torch.as_tensor(space.high)}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "keys": list(space.spaces),
                "spaces": [space_to_dict(s) for s in space.spaces.values()]}
    raise EnvError(f"cannot save a {type(space).__name__} space in a checkpoint")


def space_from_dict(d: dict) -> gym.Space:
    if d["type"] == "Discrete":
        return gym.spaces.Discrete(d["n"], start=d.get("start", 0))
    if d["type"] == "Box":
        return gym.spaces.Box(d["low"].numpy(), d["high"].numpy(), tuple(d["shape"]), np.dtype(d["dtype"]))
    if d["type"] == "Dict":     # entries in their saved order (the row's order)
        return gym.spaces.Dict([(k, space_from_dict(s)) for k, s in zip(d["keys"], d["spaces"])])
    raise EnvError(f"unknown space type {d['type']!r} in checkpoint")


def env_family(obs_space: gym.Space, action_space: gym.Space) -> str:
    """The family whose preset `--preset auto` picks: 'images' (image observations, or a Dict
    with an image entry: the paper's Atari settings), 'continuous' (vector observations, Box
    actions) or 'classic' (vector observations, discrete actions)."""
    if has_image(obs_space):
        return "images"
    if isinstance(action_space, gym.spaces.Box):
        return "continuous"
    return "classic"
