"""`asyncrl bench`: the throughput of the executors against the environment alone.

Three (or four) measurements, one after the other, on the same environment recipe (Atari games get
their preprocessing, as training does):
  env alone   P processes stepping the env with uniformly random actions: the limit
  hogwild     the algorithm's actor-learners (not for a2c, which is the sync executor's)
  sync        the same algorithm's loss under the sync executor, N envs in lockstep
  ray         (with --ray) the actor-learners as Ray actors, their gradients applied here (a2c: the
              sync executor's envs split between data-parallel learners, executors.ray_a2c)
The learners are timed in steady state: from their first metrics row to their last, so
process start-up is left out, with learning on (a run too short for two rows is timed
whole, start-up included, and says so: steady_state false). Timings are wall-clock: run nothing else.
"""
from __future__ import annotations

import csv
import multiprocessing as mp
import os
import tempfile
import time
from typing import Any

from .envs import EnvFactory
from .system import available_cores

#: seconds between the metrics rows the steady rate is read from (--log-interval overrides)
LOG_INTERVAL = 0.25


def random_actions_rate(env: Any, steps: int, seed: int = 0) -> float:
    """Agent steps per second of `env` under uniformly random actions: the limit a learner
    on it can reach (benchmarks/atari_throughput.py uses it too)."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def _env_alone(args: tuple[EnvFactory, int, int]) -> float:
    import torch

    torch.set_num_threads(1)
    factory, steps, seed = args
    env = factory()
    try:
        return random_actions_rate(env, steps, seed)
    finally:
        env.close()


def env_alone(factory: EnvFactory, steps: int, procs: int, seed: int = 0) -> dict:
    """Agent steps/s of `procs` processes each stepping its own env `steps` times."""
    with mp.get_context("spawn").Pool(procs) as pool:
        rates = pool.map(_env_alone, [(factory, steps, seed + i) for i in range(procs)])
    return {"processes": procs, "steps_per_s": sum(rates), "per_process_steps_per_s": rates}


def steady_rate(metrics_csv: str) -> tuple[float, int]:
    """Agent steps/s between the first and the last rows of a run's metrics.csv, and the
    number of rows (the first row comes after start-up, so start-up is left out)."""
    with open(metrics_csv) as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) < 2:
        return float("nan"), len(rows)
    first, last = rows[0], rows[-1]
    seconds = float(last["wall_time"]) - float(first["wall_time"])
    return (int(last["step"]) - int(first["step"])) / seconds if seconds > 0 else float("nan"), len(rows)


def learner_rate(algo: str, env: Any, steps: int, workers: int | None, **values: Any) -> dict:
    """Train `algo` for `steps` agent steps in a temporary run folder; its steady-state rate."""
    from .api import AGENTS

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        t0 = time.perf_counter()
        agent = AGENTS[algo](env, workers=workers, run_dir=run_dir, steps=steps,
                             eval_episodes=values.pop("eval_episodes", 0),
                             log_interval=values.pop("log_interval", LOG_INTERVAL), **values)
        agent.learn()
        total = time.perf_counter() - t0
        rate, rows = steady_rate(os.path.join(run_dir, "metrics.csv"))
    steady = rate == rate          # not nan: at least two metrics rows
    out = {"executor": agent.config.executor, "workers": agent.config.workers, "steps": agent.global_step,
           "seconds_total": total, "steps_per_s": rate if steady else agent.global_step / total,
           "steady_state": steady, "metrics_rows": rows, "frames_per_step": agent.frames_per_step}
    traffic = getattr(getattr(agent, "_executor", None), "traffic", None)
    if traffic:
        out["traffic"] = traffic_summary(traffic)
    return out


def traffic_summary(t: dict) -> dict:
    """What crossed the network in a ray run (executors: `traffic`): bytes per agent step,
    and the parameter server's updates (flat: gradients applied by the driver; hierarchical:
    the store's exchanges) per second of the run and per second of its own busy time (its
    capacity on one core)."""
    steps, moved = max(t["steps"], 1), t["bytes_in"] + t["bytes_out"]
    return {"mode": t["mode"], "bytes_per_step": moved / steps, "bytes": moved, "updates": t["updates"],
            "updates_per_s": t["updates"] / t["seconds"] if t["seconds"] > 0 else float("nan"),
            "server_busy_s": t["server_busy_s"],
            "server_capacity_updates_per_s": t["updates"] / t["server_busy_s"] if t["server_busy_s"] > 0
            else float("nan")}


def run_bench(algo: str, env: str, steps: int, env_steps: int, workers: int | None = None,
              sync_envs: int | None = None, ray: bool = False, ray_address: str = "", **values: Any) -> dict:
    """The three measurements as one dict (rates in agent steps/s; frames/s where an agent
    step is several emulator frames), with each learner's ratio to the env alone; `ray`
    adds a fourth: the ray executor's actor-learners (as many as hogwild's workers)."""
    from .config import DEFAULT_SYNC_ENVS, Config

    cfg = Config.from_dict({**values, "algo": algo, "env": env, **({"workers": workers} if workers else {})})
    factory = EnvFactory(env).configured(cfg)
    procs = cfg.workers if algo != "a2c" else min(cfg.workers, available_cores())
    out: dict[str, Any] = {"algo": algo, "env": env, "cpus": available_cores()}
    out["env_alone"] = env_alone(factory, env_steps, procs, cfg.seed)
    if algo != "a2c":
        out["hogwild"] = learner_rate(algo, env, steps, cfg.workers, **{**values, "executor": "hogwild"})
    sync_algo_values = {**values, "executor": "sync"} if algo != "a2c" else dict(values)
    out["sync"] = learner_rate(algo, env, steps, sync_envs or DEFAULT_SYNC_ENVS, **sync_algo_values)
    if ray:     # a2c: data-parallel learners stepping as many envs as the sync executor
        ray_workers = cfg.workers if algo != "a2c" else sync_envs or DEFAULT_SYNC_ENVS
        out["ray"] = learner_rate(algo, env, steps, ray_workers,
                                  **{**values, "executor": "ray", "ray_address": ray_address})
    k = out["sync"]["frames_per_step"]
    limit = out["env_alone"]["steps_per_s"]
    for key in ("env_alone", "hogwild", "sync", "ray"):
        if key in out:
            if k > 1:
                out[key]["frames_per_s"] = out[key]["steps_per_s"] * k
            out[key]["of_env_alone"] = out[key]["steps_per_s"] / limit
    return out
