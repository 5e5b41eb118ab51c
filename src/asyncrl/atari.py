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

`human_normalized(game, score)` uses the random and human reference scores below.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from .errors import EnvError

ALE_ENTRY_POINT = "ale_py.env:AtariEnv"

#: (random, human) scores per game. Source: Mnih et al. (2015), "Human-level control
#: through deep reinforcement learning", Nature 518, Extended Data Table 2 (random play
#: and the professional human tester); the same values normalise no-op-start results in
#: van Hasselt et al. (2016) and Wang et al. (2016). Human-normalised score =
#: (score - random) / (human - random); 1.0 is human level.
REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "asterix": (210.0, 8503.0),
    "beam_rider": (363.9, 5775.0),
    "boxing": (0.1, 4.3),
    "breakout": (1.7, 31.8),
    "enduro": (0.0, 309.6),
    "ms_pacman": (307.3, 15693.0),
    "pong": (-20.7, 9.3),
    "qbert": (163.9, 13455.0),
    "seaquest": (68.4, 20182.0),
    "space_invaders": (148.0, 1652.0),
}
REFERENCE_SOURCE = "Mnih et al. 2015 (Nature), Extended Data Table 2"

_registered = False


def _register() -> bool:
    """Register ale-py's ids with Gymnasium (Gymnasium 1.x needs it); False without ale-py."""
    global _registered
    if not _registered:
        try:
            import ale_py
        except ImportError:
            return False
        # the emulator's banner and warnings would break the CLI's one-line errors
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        gym.register_envs(ale_py)
        _registered = True
    return True


def _looks_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/") or "NoFrameskip" in env_id


def is_atari_id(env_id: str) -> bool:
    """True for a Gymnasium id that ale-py serves (ALE/Pong-v5, PongNoFrameskip-v4, Pong-v4...)."""
    if not isinstance(env_id, str) or not env_id or ":" in env_id:
        return False
    if not _register():
        return _looks_atari(env_id)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return False
    return spec.entry_point == ALE_ENTRY_POINT


def game_of(env_id: str) -> str:
    """The ALE game an id plays, e.g. 'pong' for ALE/Pong-v5 and PongNoFrameskip-v4."""
    _require_ale(env_id)
    return str(gym.spec(env_id).kwargs["game"])


def human_normalized(game: str, score: float) -> float | None:
    """(score - random) / (human - random) for a game in REFERENCE_SCORES, else None."""
    ref = REFERENCE_SCORES.get(game)
    if ref is None:
        return None
    random, human = ref
    return (float(score) - random) / (human - random)


def _require_ale(env_id: str) -> None:
    if not _register():
        raise EnvError(f"environment {env_id!r} is an Atari game, which needs ale-py and opencv: "
                       f"pip install 'asyncrl[atari]'")


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
    _require_ale(env_id)
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


class AtariSyncVectorEnv(gym.vector.SyncVectorEnv):
    """Gymnasium's SyncVectorEnv (SAME_STEP autoreset, copy=False) over AtariPreprocessed
    games, with a step that has each game write its frame stack straight into the batch
    (step_into) instead of returning a new array that the vector env then copies in, and
    that skips the per-env bookkeeping of other autoreset modes and of empty infos. Its
    results are the SyncVectorEnv's exactly (tests/unit/test_atari.py); the sync executor's
    `inline` vec env for Atari games. 16 Pong games: 0.335 against 0.355 ms per game step
    here, about 3% of an A2C segment."""

    def __init__(self, env_fns):
        super().__init__(env_fns, copy=False, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        for env in self.envs:
            if not isinstance(env, AtariPreprocessed):
                raise TypeError(f"AtariSyncVectorEnv steps AtariPreprocessed games, got {type(env).__name__}")

    def step(self, actions):
        obs, rewards = self._observations, self._rewards
        terms, truncs = self._terminations, self._truncations
        infos: dict = {}
        for i, env in enumerate(self.envs):
            rewards[i], terms[i], truncs[i], info = env.step_into(actions[i], obs[i])
            if terms[i] or truncs[i]:
                infos = self._add_info(infos, {"final_obs": obs[i].copy(), "final_info": info}, i)
                env.reset_into(obs[i])
            elif info:
                infos = self._add_info(infos, info, i)
        self._autoreset_envs = np.logical_or(terms, truncs)
        return obs, rewards.copy(), terms.copy(), truncs.copy(), infos


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


def make_ale_vector_env(env_id: str, opts: AtariOptions, num_envs: int, num_threads: int):
    """ale-py's C++ vector env (EnvPool's design: preprocessing and stepping in native
    threads) with the same preprocessing as make_atari; SAME_STEP autoreset."""
    _require_ale(env_id)
    from ale_py.vector_env import AtariVectorEnv

    if opts.life_loss_terminal:
        raise EnvError("vec-env 'ale' cannot end episodes on a lost life for learning only; use "
                       "--vec-env inline, threads or subprocess with --life-loss-terminal")
    return AtariVectorEnv(game_of(env_id), num_envs, num_threads=num_threads,
                          repeat_action_probability=opts.sticky_actions, autoreset_mode="SameStep",
                          img_height=opts.screen_size, img_width=opts.screen_size, grayscale=True,
                          stack_num=opts.frame_stack, frameskip=opts.frame_skip, maxpool=True,
                          noop_max=opts.noop_max, episodic_life=False, reward_clipping=False,
                          use_fire_reset=True)


def envpool_task(env_id: str) -> str:
    """EnvPool's id for the game an ALE id plays: 'Pong-v5' for ALE/Pong-v5, 'SpaceInvaders-v5'
    for SpaceInvadersNoFrameskip-v4."""
    return "".join(part.capitalize() for part in game_of(env_id).split("_")) + "-v5"


class EnvPoolAtari(gym.vector.VectorEnv):
    """EnvPool's Atari (C++ envs stepped in native threads; `pip install 'asyncrl[envpool]'`)
    behind the vector-env interface the sync executor's collector reads: an env that ends an
    episode is reset within the same step (Gymnasium's SAME_STEP autoreset; EnvPool's own
    reset comes one step later), the true final observation in info['final_obs'].

    Its stepping is the paper's preprocessing exactly as make_atari does it (action repeat
    with a max over the last two frames, 84x84 INTER_AREA grayscale, a stack that starts as
    copies of the first frame; tests/unit/test_atari.py compares them frame by frame). Its
    resets differ like ale-py's vector env: 0..noop_max-1 no-ops, then FIRE for one frame
    (make_atari: 1..noop_max no-ops, then FIRE as a whole agent step). The pool is made at
    each reset(seed), so env i plays with seed + i."""

    def __init__(self, env_id: str, opts: AtariOptions, num_envs: int, num_threads: int):
        self.pool = None
        self.closed = True
        _require_ale(env_id)
        try:
            import envpool
        except ImportError:
            raise EnvError("vec-env 'envpool' needs EnvPool: pip install 'asyncrl[envpool]' "
                           "(or use --vec-env ale, ale-py's vector env of the same design)") from None
        problem = envpool_option_problem(opts)
        if problem:
            raise EnvError(problem)
        self._envpool = envpool
        self._kwargs = dict(
            task_id=envpool_task(env_id), num_envs=num_envs, batch_size=num_envs, num_threads=num_threads,
            max_episode_steps=self._max_steps(env_id, opts), stack_num=opts.frame_stack,
            frame_skip=opts.frame_skip, noop_max=opts.noop_max, img_height=opts.screen_size,
            img_width=opts.screen_size, gray_scale=True, use_inter_area_resize=True,
            repeat_action_probability=opts.sticky_actions, episodic_life=False, reward_clip=False,
            use_fire_reset=True)
        self.num_envs = num_envs
        k, s = opts.frame_stack, opts.screen_size
        self.single_observation_space = gym.spaces.Box(0, 255, (k, s, s), np.uint8)
        n = int(envpool.make_spec(**self._kwargs).action_space.n)
        self.single_action_space = gym.spaces.Discrete(n)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._all = np.arange(num_envs, dtype=np.int32)
        self.closed = False

    @staticmethod
    def _max_steps(env_id: str, opts: AtariOptions) -> int:
        """Gymnasium's time limit in agent steps: the ALE's max_num_frames_per_episode of the
        id (108,000 for v5 and NoFrameskip-v4) / frame_skip."""
        frames = gym.spec(env_id).kwargs.get("max_num_frames_per_episode") or 108_000
        return max(1, int(frames) // opts.frame_skip)

    def _in_order(self, info: dict, *arrays: np.ndarray) -> list[np.ndarray]:
        ids = np.asarray(info["env_id"])
        if np.array_equal(ids, self._all):
            return list(arrays)
        order = np.argsort(ids)
        return [a[order] for a in arrays]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.pool is not None:
            self.pool.close()
        self.pool = self._envpool.make(env_type="gymnasium", seed=0 if seed is None else int(seed),
                                       **self._kwargs)
        obs, info = self.pool.reset()
        obs, = self._in_order(info, obs)
        return obs, {}

    def step(self, actions):
        obs, rew, _, trunc, info = self.pool.step(np.asarray(actions, dtype=np.int32), self._all)
        # a game over is a termination, also on the time limit's step (EnvPool: truncated)
        over = np.asarray(info["terminated"], dtype=bool)
        obs, rew, over, trunc = self._in_order(info, obs, rew, over, np.asarray(trunc, dtype=bool))
        term, trunc = over, trunc & ~over
        done = term | trunc
        out: dict = {}
        if done.any():
            out["final_obs"] = obs               # indexed by env, like SAME_STEP's info
            new, new_info = self.pool.reset(self._all[done])
            obs = obs.copy()
            obs[np.asarray(new_info["env_id"])] = new
        return obs, np.asarray(rew, np.float64), term, trunc, out

    def close(self, **kwargs) -> None:
        pool, self.pool = self.pool, None
        self.closed = True
        if pool is not None:
            pool.close()


def envpool_option_problem(opts: AtariOptions) -> str | None:
    """Why EnvPool cannot give these options' preprocessing (None if it can)."""
    if opts.life_loss_terminal:
        return ("vec-env 'envpool' cannot end episodes on a lost life for learning only; use "
                "--vec-env inline, threads or subprocess with --life-loss-terminal")
    if opts.noop_max < 1:
        return f"vec-env 'envpool' needs noop-max >= 1, got {opts.noop_max}"
    if opts.frame_skip < 2:    # EnvPool max-pools with a stale frame when an action is repeated once
        return f"vec-env 'envpool' needs frame-skip >= 2, got {opts.frame_skip}"
    return None
