"""Atari 2600 games through ale-py, with the paper's preprocessing.

Any Gymnasium id served by ale-py (`ALE/Pong-v5`, `PongNoFrameskip-v4`, ...) is built as:

    the ALE game, frameskip 1, sticky actions off (config: sticky_actions)
    -> up to 30 random no-ops at every reset                      (noop_max)
    -> action repeat 4, observation = max of the last 2 frames     (frame_skip)
    -> 84x84 grayscale                                             (screen_size)
    -> optionally: a lost life ends the episode for learning       (life_loss_terminal)
    -> FIRE after a reset in games that wait for it
    -> the last 4 frames stacked: uint8 [4, 84, 84]                (frame_stack)

The id's own frame skipping and sticky actions are replaced by these. Rewards are not
clipped here: the learner clips them (config: clip_rewards) so that what is logged and
evaluated is the game's true score. ROMs ship with ale-py; nothing is downloaded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import EnvError
from .registry import require_ale


@dataclass(frozen=True)
class AtariOptions:
    """The preprocessing of an Atari environment (config fields of the same names)."""

    noop_max: int = 30
    frame_skip: int = 4
    frame_stack: int = 4
    screen_size: int = 84
    sticky_actions: float = 0.0
    life_loss_terminal: bool = False

    @classmethod
    def from_config(cls, cfg: Any) -> "AtariOptions":
        return cls(cfg.noop_max, cfg.frame_skip, cfg.frame_stack, cfg.screen_size, cfg.sticky_actions,
                   cfg.life_loss_terminal)

    def for_evaluation(self) -> "AtariOptions":
        """Evaluation plays whole games: a lost life never ends the episode there."""
        return dataclasses.replace(self, life_loss_terminal=False)


class FireOnReset(gym.Wrapper):
    """Press FIRE after every reset, for games that wait for it (Breakout, Pong, ...)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        self.fire = meanings.index("FIRE")

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        obs, _, term, trunc, info = self.env.step(self.fire)
        if term or trunc:                       # vanishingly rare: start again
            obs, info = self.env.reset()
        return obs, info


class LifeLossTerminal(gym.Wrapper):
    """A lost life is `terminated` (learning does not bootstrap across it) while the game
    goes on: the next reset() only takes a no-op step unless the game is really over. Such
    steps carry info['life_loss'] = True, so collectors keep adding to the game's score
    instead of logging an episode."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.ale = env.unwrapped.ale
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.game_over = term or trunc
        lives = self.ale.lives()
        if not self.game_over and lives < self.lives:
            term = True
            info = {**info, "life_loss": True}
        self.lives = lives
        return obs, r, term, trunc, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, term, trunc, info = self.env.step(0)
            if term or trunc:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.ale.lives()
        return obs, info


def _base_env(env_id: str, opts: AtariOptions, **make_kwargs: Any) -> gym.Env:
    require_ale(env_id)
    try:
        import cv2  # noqa: F401  (frames are resized with OpenCV)
    except ImportError:
        raise EnvError(f"environment {env_id!r}: Atari preprocessing needs OpenCV: "
                       f"pip install 'asyncrl[atari]'") from None
    return gym.make(env_id, frameskip=1, repeat_action_probability=opts.sticky_actions, **make_kwargs)


class AtariPreprocessed(gym.Env):
    """The whole preprocessing chain of `make_atari_reference` in one loop on the ALE's own
    interface: per agent step, `frame_skip` calls of ale.act and two grayscale screen grabs
    into preallocated buffers, one max, one OpenCV resize written into a ring buffer of the
    stack. The reference chain's Python layers cost a wrapper call, an RGB screen copy and
    an info dict per emulator frame, and a fresh stack per agent step; this returns exactly
    the same observations, rewards and flags (tests/unit/test_atari.py), 1.3-1.4x faster here.

    The observation returned is a copy (28 KB), safe to keep across steps."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env_id: str, opts: AtariOptions, **make_kwargs: Any):
        import cv2

        self._cv2 = cv2
        self._outer = _base_env(env_id, opts, **make_kwargs)
        self.base = self._outer.unwrapped
        self.ale = self.base.ale
        self.spec = self._outer.spec
        self.render_mode = self.base.render_mode
        # render() shows one frame per agent step: real time is the emulator's 60 Hz / frame_skip
        self.metadata = {**self.metadata, "render_fps": 60 / max(1, opts.frame_skip)}
        self.opts = opts
        self._actions = list(self.base._action_set)
        self.action_space = self.base.action_space
        meanings = self.base.get_action_meanings()
        if opts.noop_max > 0 and meanings[0] != "NOOP":
            raise EnvError(f"environment {env_id!r}: no-op starts need action 0 to be NOOP")
        self._fire = meanings.index("FIRE") if "FIRE" in meanings else None
        h, w = self.ale.getScreenDims()
        self._screens = np.zeros((2, h, w), np.uint8)
        k, s = opts.frame_stack, opts.screen_size
        self._ring = np.zeros((2 * k, s, s), np.uint8)   # each frame twice: the last k are contiguous
        self._j = 0
        self.observation_space = gym.spaces.Box(0, 255, (k, s, s), np.uint8)
        self.lives = 0
        self.game_over = True

    @property
    def np_random(self):
        return self.base.np_random

    def _frame(self) -> None:
        """Push max(last two screens), resized, onto the stack."""
        a, b = self._screens
        if self.opts.frame_skip > 1:
            np.maximum(a, b, out=a)
        k, j = self.opts.frame_stack, (self._j + 1) % self.opts.frame_stack
        s = self.opts.screen_size
        self._ring[j] = self._cv2.resize(a, (s, s), interpolation=self._cv2.INTER_AREA)
        self._ring[j + k] = self._ring[j]
        self._j = j

    def _stack(self, out: np.ndarray | None = None) -> np.ndarray:
        """The last k frames, oldest first, written into `out` (a new array if None)."""
        if out is None:
            out = np.empty(self.observation_space.shape, np.uint8)
        j, k = self._j, self.opts.frame_stack
        out[...] = self._ring[j + 1:j + 1 + k]
        return out

    def _skip_step(self, action: int) -> tuple[float, bool, bool]:
        """One agent step: repeat the action, grab the last two screens; (reward, term, trunc)."""
        ale, a, skip = self.ale, self._actions[action], self.opts.frame_skip
        reward, term, trunc = 0.0, False, False
        for t in range(skip):
            reward += ale.act(a, 1.0)
            term = ale.game_over(with_truncation=False)
            trunc = ale.game_truncated()
            if term or trunc:
                break
            if t == skip - 2:
                ale.getScreenGrayscale(self._screens[1])
            elif t == skip - 1:
                ale.getScreenGrayscale(self._screens[0])
        self._frame()
        return reward, term, trunc

    def step(self, action):
        obs = np.empty(self.observation_space.shape, np.uint8)
        reward, term, trunc, info = self.step_into(action, obs)
        return obs, reward, term, trunc, info

    def step_into(self, action, out: np.ndarray) -> tuple[float, bool, bool, dict]:
        """step(), its observation written into `out` (a [k, s, s] uint8 array, such as a row
        of a vector env's batch) instead of a new array: (reward, terminated, truncated, info)."""
        reward, term, trunc = self._skip_step(int(action))
        info: dict = {}
        if self.opts.life_loss_terminal:
            self.game_over = term or trunc
            lives = self.ale.lives()
            if not self.game_over and lives < self.lives:
                term = True
                info = {"life_loss": True}
            self.lives = lives
        self._stack(out)
        return reward, term, trunc, info

    def _new_game(self, seed, options) -> None:
        """Reset, then up to noop_max no-ops (AtariPreprocessing's reset)."""
        self.base.reset(seed=seed, options=options)
        ale = self.ale
        noops = int(self.base.np_random.integers(1, self.opts.noop_max + 1)) if self.opts.noop_max > 0 else 0
        for _ in range(noops):
            ale.act(self._actions[0], 1.0)
            if ale.game_over(with_truncation=False) or ale.game_truncated():
                self.base.reset(seed=seed, options=options)
        ale.getScreenGrayscale(self._screens[0])
        self._screens[1].fill(0)
        self._frame()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self._reset(seed, options), {}

    def reset_into(self, out: np.ndarray) -> None:
        """reset() (no seed), its observation written into `out`; its info is always empty."""
        self._reset(None, None, out)

    def _reset(self, seed: int | None, options: dict | None, out: np.ndarray | None = None) -> np.ndarray:
        if self.opts.life_loss_terminal and not self.game_over:
            _, term, trunc = self._skip_step(0)          # a life was lost: the game goes on
            if term or trunc:
                self._new_game(seed, options)
        else:
            self._new_game(seed, options)
        if self.opts.life_loss_terminal:
            self.game_over = False
            self.lives = self.ale.lives()
        if self._fire is not None:
            _, term, trunc = self._skip_step(self._fire)
            if term or trunc:                               # vanishingly rare: start again
                self._new_game(None, None)
        self._ring[:] = self._ring[self._j]                 # the stack starts as k copies
        return self._stack(out)

    def get_action_meanings(self) -> list[str]:
        return self.base.get_action_meanings()

    def render(self):
        return self.base.render()

    def close(self) -> None:
        self._outer.close()



def make_atari(env_id: str, opts: AtariOptions, **make_kwargs: Any) -> gym.Env:
    """The Atari env of `env_id` with the paper's preprocessing (module docstring)."""
    return AtariPreprocessed(env_id, opts, **make_kwargs)


def make_atari_reference(env_id: str, opts: AtariOptions, **make_kwargs: Any) -> gym.Env:
    """The same preprocessing from Gymnasium's wrappers (AtariPreprocessing, FrameStack-
    Observation) plus ours (LifeLossTerminal, FireOnReset): slower, kept as the reference
    that AtariPreprocessed is tested against."""
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    env = _base_env(env_id, opts, **make_kwargs)
    env = AtariPreprocessing(env, noop_max=opts.noop_max, frame_skip=opts.frame_skip,
                             screen_size=opts.screen_size, terminal_on_life_loss=False,
                             grayscale_obs=True, scale_obs=False)
    if opts.life_loss_terminal:
        env = LifeLossTerminal(env)
    if "FIRE" in env.unwrapped.get_action_meanings():
        env = FireOnReset(env)
    return FrameStackObservation(env, opts.frame_stack)

