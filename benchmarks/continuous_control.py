"""A3C with a Gaussian policy on continuous control, 2 hogwild workers: InvertedPendulum-v5
and HalfCheetah-v5 (Gymnasium's MuJoCo environments, `pip install -e .[mujoco]`) and the
classic Pendulum-v1. Each env has its config (configs/<env>-a3c.yaml) with its step budget;
each run ends with a greedy evaluation (the Gaussian's mean) over 20 episodes.
Prints one JSON object; with --plot-dir, writes each env's learning curve (seed 0).

    python benchmarks/continuous_control.py [--envs InvertedPendulum-v5 ...] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import header, train_and_evaluate  # noqa: E402

ENVS = {"InvertedPendulum-v5": "inverted-pendulum-a3c", "Pendulum-v1": "pendulum-a3c",
        "HalfCheetah-v5": "halfcheetah-a3c"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--plot-dir", default=None, help="write <env>_a3c.png here (seed 0's curve)")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for env in args.envs:
            rows = [train_and_evaluate("a3c", env, ENVS[env], s, 20, run_dir=os.path.join(tmp, f"{env}-{s}"))
                    for s in args.seeds]
            results[env] = {"config": f"configs/{ENVS[env]}.yaml", "runs": rows,
                            "median_eval_mean_return": statistics.median(r["eval_mean_return"] for r in rows)}
            if args.plot_dir:
                from asyncrl.plot import plot_runs

                plot_runs([os.path.join(tmp, f"{env}-{args.seeds[0]}")],
                          os.path.join(args.plot_dir, f"{ENVS[env].replace('-', '_')}.png"), window=20)
    print(json.dumps({**header("continuous_control"), "workers": 2, "seeds": args.seeds,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
