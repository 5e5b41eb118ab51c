"""What periodic evaluation costs the actor-learners: A3C under hogwild with `--eval-every`
set to a tenth of the run (ten evaluations of --eval-episodes greedy episodes, each in the
background evaluator process) against the same run without, in interleaved pairs (off, on,
on, off, ...) in one process on this machine. The rate is the steady one of each run's
metrics.csv (first to last row: start-up left out), agent steps/s of all workers together.
Prints one JSON object; the issue's bar is an overhead of at most 5%.

    python benchmarks/eval_overhead.py [--env CartPole-v1] [--steps 300000] [--pairs 3]

Run nothing else on the machine meanwhile: these are wall-clock rates.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import header  # noqa: E402


def one(env: str, steps: int, workers: int, evaluate: bool, episodes: int, seed: int) -> dict:
    from asyncrl.bench import learner_rate

    extra = {"eval_every": steps // 10, "eval_episodes": episodes} if evaluate else {}
    # without eval_episodes learner_rate skips the final evaluation (it comes after the last metrics row anyway)
    r = learner_rate("a3c", env, steps, workers, seed=seed, executor="hogwild", log_interval=1.0, **extra)
    return {"eval": evaluate, "steps_per_s": round(r["steps_per_s"], 1), "metrics_rows": r["metrics_rows"],
            "seconds_total": round(r["seconds_total"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=10, help="episodes of each periodic evaluation")
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for i in range(args.pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        for evaluate in order:
            runs.append(one(args.env, args.steps, args.workers, evaluate, args.episodes, seed=i))
    off = [r["steps_per_s"] for r in runs if not r["eval"]]
    on = [r["steps_per_s"] for r in runs if r["eval"]]
    ratio = statistics.median(on) / statistics.median(off)
    pairs = [runs[i + (0 if runs[i]["eval"] else 1)]["steps_per_s"] / runs[i + (1 if runs[i]["eval"] else 0)]["steps_per_s"]
             for i in range(0, len(runs), 2)]      # with / without, within each pair
    print(json.dumps({**header("eval_overhead"), "env": args.env, "steps": args.steps, "workers": args.workers,
                      "eval_every": args.steps // 10, "eval_episodes": args.episodes, "runs": runs,
                      "median_steps_per_s_without": statistics.median(off),
                      "median_steps_per_s_with": statistics.median(on),
                      "with_over_without": round(ratio, 4), "overhead_percent": round(100 * (1 - ratio), 2),
                      "pair_ratios": [round(r, 4) for r in pairs],
                      "median_pair_ratio": round(statistics.median(pairs), 4)},
                     indent=2))


if __name__ == "__main__":
    main()
