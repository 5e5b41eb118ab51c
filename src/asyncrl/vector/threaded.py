"""ThreadedVectorEnv: a SyncVectorEnv whose step runs its environments in groups, one per
thread (--vec-env threads)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from copy import deepcopy

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import concatenate, iterate

from .common import group_bounds, merged_infos, raise_first, step_env


class ThreadedVectorEnv(gym.vector.SyncVectorEnv):
    """A SyncVectorEnv whose step runs its environments in `threads` contiguous groups at
    once: the first group in the calling thread, the others in a pool of threads.

    It pays off only for environments whose step spends most of its time outside the GIL:
    MuJoCo's physics releases it (16 Ant-v5 envs stepped 1.44-1.59x faster in 2 groups than
    inline here), but HalfCheetah-v5, whose step is mostly Python, ran at 0.78-1.02x, and the
    ALE's `act` holds it (ale-py 0.12: Pong at 0.80x); benchmarks/vector_env_threads.py.

    Each environment is stepped (and reset at an episode's end) by one thread, with the same
    calls in the same order as the SyncVectorEnv, and the infos are merged in environment
    order once every group is done, so the results are the SyncVectorEnv's exactly, for
    environments that share no mutable state (a global random generator, a module-level
    cache). SAME_STEP autoreset only."""

    def __init__(self, env_fns, threads: int, **kwargs):
        self._pool: ThreadPoolExecutor | None = None
        mode = gym.vector.AutoresetMode(kwargs.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP))
        if mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(f"ThreadedVectorEnv steps with SAME_STEP autoreset only, not {mode}")
        super().__init__(env_fns, **kwargs)
        n = self.num_envs
        self._groups = group_bounds(n, threads)
        self._pool = (ThreadPoolExecutor(len(self._groups) - 1, thread_name_prefix="asyncrl-env")
                      if len(self._groups) > 1 else None)
        self._env_infos: list[dict] = [{}] * n
        self._finals: list = [None] * n     # (final obs, final info) where an episode ended, else None

    def _step_group(self, group: range, actions: list) -> None:
        envs, rewards, terms, truncs = self.envs, self._rewards, self._terminations, self._truncations
        for i in group:
            self._env_obs[i], rewards[i], terms[i], truncs[i], self._env_infos[i], self._finals[i] = \
                step_env(envs[i], actions[i])

    def _run_groups(self, actions: list) -> None:
        """Step every group; return (or raise the first group's error, the others' noted on
        it) only once no thread is stepping any more."""
        futures = [self._pool.submit(self._step_group, g, actions) for g in self._groups[1:]]
        errors: list[BaseException] = []
        try:
            self._step_group(self._groups[0], actions)
        except BaseException as exc:
            errors.append(exc)
        pending = set(futures)
        while pending:
            try:
                pending = wait(pending)[1]
            except BaseException as exc:        # e.g. a second Ctrl-C: keep waiting, then raise it
                errors.append(exc)
        errors += [exc for exc in (f.exception() for f in futures) if exc is not None]
        raise_first(errors)

    def step(self, actions):
        actions = list(iterate(self.action_space, actions))
        if len(actions) != self.num_envs:
            raise ValueError(f"{len(actions)} actions for {self.num_envs} environments")
        self._run_groups(actions)
        infos = merged_infos(self, self._env_infos,
                             {i: final for i, final in enumerate(self._finals) if final is not None})
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        return (deepcopy(self._observations) if self.copy else self._observations, np.copy(self._rewards),
                np.copy(self._terminations), np.copy(self._truncations), infos)

    def close_extras(self, **kwargs) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        finally:
            super().close_extras(**kwargs)
