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
    print(json.dumps({**header("eval_overhead"), "env": args.env, "steps": args.steps, "workers": args.workers,
                      "eval_every": args.steps // 10, "eval_episodes": args.episodes, "runs": runs,
                      **summarise(runs)}, indent=2))


#: Student's t, two-sided 95%, for 1-30 degrees of freedom (the last used beyond)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def summarise(runs: list[dict]) -> dict:
    """The medians' ratio, and the ratio within each pair (with / without) with its mean and
    a 95% interval (Student's t): the pairs' spread is the noise of these 2 cores."""
    off = [r["steps_per_s"] for r in runs if not r["eval"]]
    on = [r["steps_per_s"] for r in runs if r["eval"]]
    ratio = statistics.median(on) / statistics.median(off)
    pairs = [runs[i + (0 if runs[i]["eval"] else 1)]["steps_per_s"] / runs[i + (1 if runs[i]["eval"] else 0)]["steps_per_s"]
             for i in range(0, len(runs), 2)]      # with / without, within each pair
    out = {"median_steps_per_s_without": statistics.median(off), "median_steps_per_s_with": statistics.median(on),
           "with_over_without": round(ratio, 4), "overhead_percent": round(100 * (1 - ratio), 2),
           "pair_ratios": [round(r, 4) for r in pairs], "median_pair_ratio": round(statistics.median(pairs), 4),
           "mean_pair_ratio": round(statistics.fmean(pairs), 4)}
    if len(pairs) > 1:
        half = _T975[min(len(pairs) - 1, len(_T975)) - 1] * statistics.stdev(pairs) / len(pairs) ** 0.5
        out["mean_pair_ratio_95ci"] = [round(statistics.fmean(pairs) - half, 4), round(statistics.fmean(pairs) + half, 4)]
    return out


if __name__ == "__main__":
    main()
