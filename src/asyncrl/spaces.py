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
    """Size of the float vector an observation is encoded to (Discrete: one-hot)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    return int(math.prod(space.shape))


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
    return torch.float32


def check_observation_space(space: gym.Space, env_name: str) -> None:
    """Box observations (vectors: MLP; images [C, H, W], [H, W, C] or [H, W]: CNN) and
    Discrete ones (one-hot) have a network; anything else is an EnvError."""
    if isinstance(space, gym.spaces.Box):
        if not np.issubdtype(space.dtype, np.number):
            raise EnvError(f"environment {env_name!r}: Box observations of dtype {space.dtype} are not numeric")
        if len(space.shape) > 3:
            raise EnvError(f"environment {env_name!r} has {len(space.shape)}-D Box observations "
                           f"{space.shape}; supported: vectors (1-D) and images (2-D or 3-D)")
        return
    if isinstance(space, gym.spaces.Discrete):
        return  # one-hot encoded by the torso
    raise EnvError(
        f"environment {env_name!r} has a {type(space).__name__} observation space, which no network "
        f"fits; supported: Box (vectors) and Discrete (one-hot); flatten it with a wrapper such as "
        f"gymnasium.wrappers.FlattenObservation")


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
    raise EnvError(f"cannot save a {type(space).__name__} space in a checkpoint")


def space_from_dict(d: dict) -> gym.Space:
    if d["type"] == "Discrete":
        return gym.spaces.Discrete(d["n"], start=d.get("start", 0))
    if d["type"] == "Box":
        return gym.spaces.Box(d["low"].numpy(), d["high"].numpy(), tuple(d["shape"]), np.dtype(d["dtype"]))
    raise EnvError(f"unknown space type {d['type']!r} in checkpoint")


def env_family(obs_space: gym.Space, action_space: gym.Space) -> str:
    """The family whose preset `--preset auto` picks: 'images' (image observations: the
    paper's Atari settings), 'continuous' (vector observations, Box actions) or 'classic'
    (vector observations, discrete actions)."""
    if isinstance(obs_space, gym.spaces.Box) and is_image_space(obs_space):
        return "images"
    if isinstance(action_space, gym.spaces.Box):
        return "continuous"
    return "classic"
