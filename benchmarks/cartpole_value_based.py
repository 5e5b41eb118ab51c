"""The asynchronous value-based methods on CartPole-v1: one-step Q, one-step SARSA and
n-step Q, each with 2 hogwild workers and its config in configs/, 3 seeds, one run.
For each: the step budget, the wall time, and the greedy evaluation (20 episodes) at the
end of the budget. Prints one JSON object.

With --defaults, no config file: the `classic` family preset that `--preset auto` picks for
CartPole (its budget and values are the configs' own, named as their source), i.e. what
`asyncrl train one-step-q --env CartPole-v1 --workers 2` does.

    python benchmarks/cartpole_value_based.py [--seeds 0 1 2] [--methods one-step-q ...] [--defaults]

Do not run anything else on the machine meanwhile: these are wall-clock timings.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
METHODS = ("one-step-q", "one-step-sarsa", "n-step-q")


def run(method: str, seed: int, defaults: bool = False) -> dict:
    import asyncrl
    from asyncrl.config import load_config_file

    cfg = {} if defaults else load_config_file(os.path.join(ROOT, "configs", f"cartpole-{method}.yaml"))
    cfg.update(seed=seed, eval_episodes=0)
    t0 = time.perf_counter()
    agent = asyncrl.api.AGENTS[method]("CartPole-v1", workers=2, **cfg)
    agent.learn()
    seconds = time.perf_counter() - t0
    ev = agent.evaluate(20)
    return {"seed": seed, "steps": agent.global_step, "seconds": round(seconds, 2),
            "eval_mean_return": ev["mean_return"], "eval_min_return": ev["min_return"],
            "solved": ev["mean_return"] >= 475.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--defaults", action="store_true", help="no config file: the defaults (preset auto)")
    args = ap.parse_args()
    results = {}
    for m in args.methods:
        rows = [run(m, s, args.defaults) for s in args.seeds]
        results[m] = {"runs": rows, "solved": f"{sum(r['solved'] for r in rows)}/{len(rows)}",
                      "median_seconds": statistics.median(r["seconds"] for r in rows),
                      "median_eval_mean_return": statistics.median(r["eval_mean_return"] for r in rows)}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(json.dumps({"benchmark": "cartpole_value_based", "commit": commit, "workers": 2,
                      "seeds": args.seeds, "cpus": os.cpu_count(),
                      "config": "none (preset auto: classic)" if args.defaults else "configs/cartpole-<method>.yaml",
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
