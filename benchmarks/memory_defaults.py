"""Memory with the defaults: A3C-LSTM against A3C-FF with no config file and no preset flag
(the `classic` preset that `auto` picks for vector observations and discrete actions), on
two partially observed tasks:

- asyncrl.pomdp:CueMemory-v0: a cue (left or right) in the first observation, 6 blank
  observations, then "go": +1 for naming the cue, -1 otherwise (the reward 7 steps after
  the cue; a policy without memory scores 0 on average, one that remembers 1);
- asyncrl.pomdp:CartPoleNoVelocity-v1: CartPole-v1 without its two velocities.

2 hogwild workers, the preset's budget (300k agent steps) unless --steps says otherwise;
each run ends with a greedy evaluation (100 episodes on CueMemory, 20 on CartPole). For
CueMemory the step at which the mean of the last 100 training episodes first reaches 0.9 is
reported. Prints one JSON object.

    python benchmarks/memory_defaults.py [--seeds 0 1 2] [--envs cue cartpole] [--steps N]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import header  # noqa: E402

ENVS = {"cue": ("asyncrl.pomdp:CueMemory-v0", 100, 0.9), "cartpole": ("asyncrl.pomdp:CartPoleNoVelocity-v1", 20, 475)}


def first_step_at(run_dir: str, threshold: float) -> int | None:
    with open(os.path.join(run_dir, "metrics.csv")) as fh:
        for row in csv.DictReader(fh):
            if row["return_mean_100"] not in ("", "nan") and float(row["return_mean_100"]) >= threshold:
                return int(row["step"])
    return None


def one_run(env: str, net: str, seed: int, steps: int | None, episodes: int, threshold: float, tmp: str) -> dict:
    import asyncrl

    run_dir = os.path.join(tmp, f"{net}-{seed}-{env.rsplit(':', 1)[1]}")
    extra = {"steps": steps} if steps else {}
    t0 = time.perf_counter()
    agent = asyncrl.A3C(env, workers=2, net=net, seed=seed, eval_episodes=0, run_dir=run_dir, **extra)
    agent.learn()
    seconds = time.perf_counter() - t0
    ev = agent.evaluate(episodes, seed=10_000 + seed)
    return {"seed": seed, "steps": agent.global_step, "seconds": round(seconds, 1),
            "train_return_last100": round(agent.recent_return, 3),
            "first_step_train_mean_at_threshold": first_step_at(run_dir, threshold),
            "eval_mean_return": round(ev["mean_return"], 3), "eval_episodes": episodes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--envs", nargs="+", choices=sorted(ENVS), default=["cue", "cartpole"])
    ap.add_argument("--steps", type=int, default=None, help="agent steps per run (default: the preset's)")
    args = ap.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.envs:
            env, episodes, threshold = ENVS[key]
            results[key] = {"env": env, "threshold": threshold}
            for net in ("lstm", "mlp"):
                rows = [one_run(env, net, s, args.steps, episodes, threshold, tmp) for s in args.seeds]
                results[key][net] = {"runs": rows,
                                     "median_eval_mean_return": statistics.median(r["eval_mean_return"] for r in rows)}
    print(json.dumps({**header("memory_defaults"), "workers": 2, "config": "none (preset auto -> classic)",
                      "seeds": args.seeds, "results": results}, indent=2))


if __name__ == "__main__":
    main()
