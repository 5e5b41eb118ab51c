"""Pixels beyond Atari: the image preprocessing of any environment whose observations are
images, or Dicts with image entries (ViZDoom's screen, CarRacing's camera), and the choice
of a Dict's entries (--obs-keys).

    the env's own step repeated frame_skip times (rewards summed; an episode's end stops it)
    -> each image resized to screen_size x screen_size (OpenCV, area interpolation)
    -> grayscale (one channel) or colour (three), as --pixels says
    -> the last frame_stack frames stacked: uint8 [frame_stack x channels, size, size]

A Dict's vector entries pass through unchanged (the last step's). `--frame-stack 1 --net
lstm` gives the LSTM the frames one at a time instead of a stack. Atari games keep their own
preprocessing (atari.preprocess: no-op starts, the max of the last two frames, FIRE)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from .errors import EnvError
from .spaces import image_layout, is_image_space


@dataclass(frozen=True)
class PixelOptions:
    """The preprocessing of a non-Atari image environment (the config's frame_skip,
    frame_stack and screen_size; `--pixels gray|color`)."""

    frame_skip: int = 4
    frame_stack: int = 4
    screen_size: int = 84
    grayscale: bool = True


class PixelPreprocessing(gym.Wrapper):
    """The module docstring's chain on one environment. Each image (a Box image, or each
    image entry of a Dict) keeps a ring of its last frames, allocated once; observations
    returned are copies, safe to keep."""

    def __init__(self, env: gym.Env, opts: PixelOptions, name: str):
        super().__init__(env)
        import cv2

        self._cv2, self.opts = cv2, opts
        space = env.observation_space
        self._dict = isinstance(space, gym.spaces.Dict)
        entries = space.spaces if self._dict else {None: space}
        self._images = {key: sub for key, sub in entries.items() if is_image_space(sub)}
        if not self._images:
            raise EnvError(f"environment {name!r} has no image observations ({space}) to preprocess; "
                           f"drop --pixels (it takes images, or Dicts with image entries)")
        k, s = opts.frame_stack, opts.screen_size
        out, self._rings, self._layout = {}, {}, {}
        for key, sub in self._images.items():
            if sub.dtype != np.uint8:
                raise EnvError(f"environment {name!r}: --pixels takes images of bytes (uint8); "
                               f"{'entry ' + repr(key) if key else 'its observations'} are {sub.dtype}")
            last, c, _ = image_layout(sub.shape)
            if opts.grayscale and c not in (1, 3):
                raise EnvError(f"environment {name!r}: grayscale takes 1 or 3 channels, the image "
                               f"{sub.shape} has {c}; use --pixels color")
            ch = 1 if opts.grayscale else c
            self._layout[key] = (last, c, len(sub.shape) == 2)
            self._rings[key] = np.zeros((2 * k, ch, s, s), np.uint8)   # each frame twice: k contiguous
            out[key] = gym.spaces.Box(0, 255, (k * ch, s, s), np.uint8)
        self._j = 0
        if self._dict:
            self.observation_space = gym.spaces.Dict([(key, out.get(key, sub)) for key, sub in entries.items()])
        else:
            self.observation_space = out[None]

    def _frame(self, img: np.ndarray, key: Any) -> np.ndarray:
        """One image -> [channels, size, size] uint8."""
        cv2, s = self._cv2, self.opts.screen_size
        last, c, flat = self._layout[key]
        if not flat and not last:
            img = np.transpose(img, (1, 2, 0))            # [C, H, W] -> [H, W, C] for OpenCV
        if self.opts.grayscale and c == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        elif not flat and c == 1:
            img = img[..., 0]
        img = cv2.resize(np.ascontiguousarray(img), (s, s), interpolation=cv2.INTER_AREA)
        return img[None] if img.ndim == 2 else np.transpose(img, (2, 0, 1))

    def _push(self, obs: Any, fill: bool = False) -> Any:
        k = self.opts.frame_stack
        j = self._j = (self._j + 1) % k
        stacked = {}
        for key, ring in self._rings.items():
            frame = self._frame(obs[key] if self._dict else obs, key)
            if fill:
                ring[:] = frame
            else:
                ring[j] = ring[j + k] = frame
            stacked[key] = ring[j + 1:j + 1 + k].reshape(-1, *ring.shape[2:]).copy()
        if not self._dict:
            return stacked[None]
        return {key: stacked.get(key, value) for key, value in obs.items()}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._push(obs, fill=True), info

    def step(self, action):
        total = 0.0
        for _ in range(self.opts.frame_skip):
            obs, reward, term, trunc, info = self.env.step(action)
            total += float(reward)
            if term or trunc:
                break
        return self._push(obs), total, term, trunc, info


class KeepKeys(gym.ObservationWrapper):
    """A Dict observation with only the entries `keys` (--obs-keys), in the Dict's order."""

    def __init__(self, env: gym.Env, keys: tuple[str, ...], name: str):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict):
            raise EnvError(f"--obs-keys picks entries of Dict observations; environment {name!r} has "
                           f"{type(space).__name__} observations ({space})")
        missing = [k for k in keys if k not in space.spaces]
        if missing:
            raise EnvError(f"--obs-keys: environment {name!r} has no entry {missing[0]!r}; its Dict "
                           f"observations have: {', '.join(space.spaces)}")
        self.keys = [k for k in space.spaces if k in keys]
        self.observation_space = gym.spaces.Dict([(k, space.spaces[k]) for k in self.keys])

    def observation(self, observation):
        return {k: observation[k] for k in self.keys}


def shape_observations(env: gym.Env, pixels: PixelOptions | None, obs_keys: tuple[str, ...], name: str) -> gym.Env:
    """`env` with only the Dict entries `obs_keys` (all if empty), then, with `pixels`, its
    images preprocessed."""
    if obs_keys:
        env = KeepKeys(env, obs_keys, name)
    if pixels is not None:
        try:
            env = PixelPreprocessing(env, pixels, name)
        except ImportError:
            raise EnvError(f"environment {name!r}: image preprocessing needs OpenCV: "
                           f"pip install opencv-python-headless (or 'asyncrl[vizdoom]', 'asyncrl[box2d]')") from None
    return env


#: id prefixes whose Gymnasium ids a package registers on import, and the extra that installs it
_REGISTERING = {"Vizdoom": ("vizdoom.gymnasium_wrapper", "vizdoom")}


def register_ids(env_id: str) -> None:
    """Import the package that registers `env_id` (ViZDoom's ids need vizdoom.gymnasium_wrapper
    imported), so such ids work as ALE ids do; EnvError naming the extra when it is missing."""
    for prefix, (module, extra) in _REGISTERING.items():
        if env_id.startswith(prefix) and env_id not in gym.registry:
            try:
                importlib.import_module(module)
            except ImportError:
                raise EnvError(f"environment {env_id!r} needs the {extra} package: pip install "
                               f"'asyncrl[{extra}]'") from None
