"""Does stepping a vector env's environments in threads (--vec-env threads) pay off? Prints
one JSON object (and writes it with --out).

  - milliseconds per step of 16 environments (zero actions for MuJoCo, random ones for
    Pong, episode ends reset within the step) stepped inline (gymnasium's SyncVectorEnv)
    and in one group per core (asyncrl's ThreadedVectorEnv), alternating, `--rounds` times
    each; the ratio inline / threads is the speed-up
  - whether a step releases the GIL: seconds for two games' worth of raw ale.act calls made
    by one thread, then by two threads at once (a speed-up near 1 or below: it holds the GIL)

    python benchmarks/vector_env_threads.py [--steps 300] [--rounds 2] [--out FILE]

Do not run anything else on the machine meanwhile: these are wall-clock timings.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import gymnasium as gym
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, header  # noqa: E402

from asyncrl.config import Config  # noqa: E402
from asyncrl.envs import EnvFactory  # noqa: E402
from asyncrl.vector import make_vector_env  # noqa: E402
from asyncrl.system import available_cores  # noqa: E402

ENVS = ("Ant-v5", "HalfCheetah-v5", "ALE/Pong-v5")


def ms_per_step(env_id: str, mode: str, n: int, steps: int) -> float:
    factory = EnvFactory(env_id).configured(Config.from_dict({"env": env_id}))
    venv = make_vector_env(factory, n, mode)
    try:
        venv.reset(seed=0)
        space, rng = venv.action_space, np.random.default_rng(0)
        discrete = isinstance(venv.single_action_space, gym.spaces.Discrete)
        zeros = np.zeros(space.shape, space.dtype)
        actions = [rng.integers(venv.single_action_space.n, size=n) if discrete else zeros
                   for _ in range(steps + 20)]
        for a in actions[:20]:
            venv.step(a)
        t0 = time.perf_counter()
        for a in actions[20:]:
            venv.step(a)
        return (time.perf_counter() - t0) / steps * 1e3
    finally:
        venv.close()


def ale_act_threads(frames: int) -> dict:
    from asyncrl.atari import AtariOptions, make_atari

    envs = [make_atari("ALE/Pong-v5", AtariOptions()) for _ in range(2)]

    def play(env) -> None:
        ale, acts = env.ale, env._actions
        for k in range(frames):
            ale.act(acts[k % len(acts)], 1.0)
            if ale.game_over():
                ale.reset_game()

    for env in envs:
        env.reset(seed=0)
    t0 = time.perf_counter()
    play(envs[0])
    play(envs[1])
    one = time.perf_counter() - t0
    for env in envs:
        env.reset(seed=0)
    threads = [threading.Thread(target=play, args=(env,)) for env in envs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    two = time.perf_counter() - t0
    for env in envs:
        env.close()
    return {"frames_per_game": frames, "one_thread_s": round(one, 3), "two_threads_s": round(two, 3),
            "speed_up": round(one / two, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="vector steps timed per measurement")
    ap.add_argument("--rounds", type=int, default=2, help="alternating inline / threads measurements each")
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    res = header("vector_env_threads")
    res.update(envs=args.envs, groups=min(args.envs, available_cores()), steps=args.steps, results={})
    for env_id in ENVS:
        ms: dict[str, list[float]] = {"inline": [], "threads": []}
        for _ in range(args.rounds):
            for mode in ms:
                ms[mode].append(round(ms_per_step(env_id, mode, args.envs, args.steps), 3))
        res["results"][env_id] = {"ms_per_step_inline": ms["inline"], "ms_per_step_threads": ms["threads"],
                                  "speed_up": round(sum(ms["inline"]) / sum(ms["threads"]), 2)}
    res["ale_act_two_threads"] = ale_act_threads(15_000)
    emit(res, args.out)


if __name__ == "__main__":
    main()
