"""Memory matters: A3C-LSTM against A3C-FF on CartPole without its velocities
(asyncrl.pomdp:CartPoleNoVelocity-v1: the observation is only the cart position and the
pole angle). Both use 2 hogwild workers and the same budget and hyperparameters
(configs/cartpole-novel-a3c-lstm.yaml; FF = the same with --net mlp); each run ends with a
greedy evaluation over 20 episodes (the LSTM state carried within an episode, zeroed at
its start). Prints one JSON object; with --plot-dir, writes the learning curves.

    python benchmarks/pomdp_cartpole.py [--seeds 0 1 2] [--plot-dir docs]
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

ENV = "asyncrl.pomdp:CartPoleNoVelocity-v1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--plot-dir", default=None, help="write pomdp_cartpole.png here (seed 0's curves)")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, net in (("a3c_lstm", "lstm"), ("a3c_ff", "mlp")):
            rows = [train_and_evaluate("a3c", ENV, "cartpole-novel-a3c-lstm", s, 20,
                                       run_dir=os.path.join(tmp, f"{name}-{s}"), net=net) for s in args.seeds]
            results[name] = {"runs": rows,
                             "median_eval_mean_return": statistics.median(r["eval_mean_return"] for r in rows),
                             "eval_at_least_400": f"{sum(r['eval_mean_return'] >= 400 for r in rows)}/{len(rows)}"}
        if args.plot_dir:
            from asyncrl.plot import plot_runs

            s = args.seeds[0]
            plot_runs([os.path.join(tmp, f"a3c_lstm-{s}"), os.path.join(tmp, f"a3c_ff-{s}")],
                      os.path.join(args.plot_dir, "pomdp_cartpole.png"))
    print(json.dumps({**header("pomdp_cartpole"), "env": ENV, "workers": 2, "seeds": args.seeds,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
