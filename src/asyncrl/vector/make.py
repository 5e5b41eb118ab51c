"""Choosing, making and closing the sync executor's vector env: inline, split, threads,
subprocess, or for Atari ale-py's and EnvPool's."""
from __future__ import annotations

import time
import warnings
from typing import Callable

import gymnasium as gym

from ..config import Config
from ..envs import EnvFactory
from ..errors import EnvError
from ..procs import kill_group, resolve_start_method, single_threaded_children
from ..system import available_cores
from .atari import AtariSyncVectorEnv, EnvPoolAtari, make_ale_vector_env
from .split import SplitVectorEnv, SubprocessVectorEnv
from .threaded import ThreadedVectorEnv


#: an environment step slower than this is worth a subprocess (pipe round trip ~50-100 us)
SUBPROCESS_STEP_S = 200e-6


def env_step_seconds(factory: EnvFactory, seed: int, steps: int = 64, budget_s: float = 0.25) -> float:
    """Mean seconds per step (resets included) of one environment under random actions."""
    env = factory()
    try:
        env.action_space.seed(seed)
        env.reset(seed=seed)
        n, t0 = 0, time.perf_counter()
        while n < steps and time.perf_counter() - t0 < budget_s:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            n += 1
            if term or trunc:
                env.reset()
        return (time.perf_counter() - t0) / max(n, 1)
    finally:
        env.close()


def choose_vec_env(cfg: Config, factory: EnvFactory) -> str:
    """Where the environments step, for --vec-env auto. Atari games step inline: the same
    AtariPreprocessed envs as the hogwild workers' and evaluation's (ale-py's vector env resets
    slightly differently: --vec-env ale opts in; A2C on Pong ran at 0.99-1.07x of inline with
    it in interleaved pairs, a2c_pairs_ale_inline.json). Not in threads: ale-py 0.12's `act` holds
    the GIL (two threads stepping two games ran at 0.78-0.91x of one thread stepping both
    here), and A2C on Pong ran at 0.97-1.07x of inline with them (a2c_pairs_threads_inline.json).
    Nor split between processes: A2C on Pong ran at 0.97-1.10x of inline with a worker
    process stepping half the games (a2c_pairs_split_inline.json). Other envs: subprocesses
    pay off only for envs slower than a pipe round trip, and when there is more than one
    core to run them on."""
    if cfg.vec_env != "auto":
        return cfg.vec_env
    if factory.atari is not None:
        return "inline"
    if cfg.workers < 2 or available_cores() < 2:
        return "inline"
    return "subprocess" if env_step_seconds(factory, cfg.seed) > SUBPROCESS_STEP_S else "inline"


def make_vector_env(factory: EnvFactory, n: int, mode: str, start_method: str = "auto",
                    timeout: float = 0.0, on_failure: Callable[[range, str, str], None] | None = None
                    ) -> gym.vector.VectorEnv:
    """n copies of the env, reset within the step that ends an episode (SAME_STEP autoreset:
    the true final observation is in info['final_obs']). Subprocess envs (split, subprocess)
    that take longer than `timeout` seconds (> 0) to answer a step or reset raise
    multiprocessing.TimeoutError; given `on_failure`, one that dies, hangs or raises while
    stepping is restarted instead (SplitVectorEnv)."""
    same_step = gym.vector.AutoresetMode.SAME_STEP
    if mode in ("ale", "envpool"):
        if factory.atari is None:
            raise EnvError(f"vec-env {mode!r} steps Atari games only, not {factory.name!r}")
        make = make_ale_vector_env if mode == "ale" else EnvPoolAtari
        return make(factory.env_id, factory.atari, n, num_threads=min(n, available_cores()))
    if mode == "inline":
        if factory.atari is not None and factory.fn is None:
            return AtariSyncVectorEnv([factory] * n)
        return gym.vector.SyncVectorEnv([factory] * n, copy=False, autoreset_mode=same_step)
    if mode == "split":
        with single_threaded_children():
            return SplitVectorEnv([factory] * n, available_cores(), context=resolve_start_method(start_method),
                                  copy=False, timeout=timeout or None, on_failure=on_failure)
    if mode == "threads":
        return ThreadedVectorEnv([factory] * n, available_cores(), copy=False, autoreset_mode=same_step)
    with single_threaded_children():
        return SubprocessVectorEnv([factory] * n, context=resolve_start_method(start_method), copy=False,
                                   timeout=timeout or None, on_failure=on_failure)


def close_vector_env(venv: gym.vector.VectorEnv, failed: bool) -> None:
    """Close the envs; after a failure without waiting on them (a dead or hung subprocess
    would never answer the close), killing what is left of the subprocesses."""
    if not failed:
        venv.close()
        return
    try:
        with warnings.catch_warnings():     # "close while waiting for step": that is the point
            warnings.simplefilter("ignore")
            venv.close(terminate=True)
    except Exception:                   # a dead subprocess's pipe: nothing left to say to it
        pass
    for proc in getattr(venv, "processes", ()):
        kill_group(proc)
        proc.join(timeout=5.0)
    venv.closed = True
