"""Vector envs of Atari games for the sync executor: the inline AtariSyncVectorEnv over
AtariPreprocessed games, ale-py's C++ vector env, and EnvPool's."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from ..atari import AtariOptions, AtariPreprocessed, game_of, require_ale
from ..errors import EnvError


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



def make_ale_vector_env(env_id: str, opts: AtariOptions, num_envs: int, num_threads: int):
    """ale-py's C++ vector env (EnvPool's design: preprocessing and stepping in native
    threads) with the same preprocessing as make_atari; SAME_STEP autoreset."""
    require_ale(env_id)
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
        require_ale(env_id)
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
