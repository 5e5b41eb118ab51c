"""A2C data-parallel (the ray executor's a2c: learners on separate Ray nodes, gradients
all-reduced every update) learns CartPole-v1 on a real multi-node Ray cluster started on
this machine (tests/ray_cluster.py: a head with no CPUs and `--nodes` 1-CPU worker nodes).
Prints one JSON object.

Per seed: the defaults (preset auto) with --workers envs split over --learners learners,
until the mean of the last 100 training returns reaches --bar or --steps global steps
pass. Reported: the steps and wall time (from constructing the agent: the learners' start
included, the cluster's start not) at which it stopped, and that mean.

    python benchmarks/ray_a2c_cartpole.py [--seeds 0 1 2] [--nodes 2] [--learners 2]
        [--workers 16] [--bar 195] [--steps 200000] [--out FILE.json]

Wall times are only comparable on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time

from _common import ROOT, emit, header

sys.path.insert(0, os.path.join(ROOT, "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--learners", type=int, default=2)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--bar", type=float, default=195.0)
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--out")
    args = ap.parse_args()

    import asyncrl
    from ray_cluster import local_cluster

    result = {**header("ray_a2c_cartpole"), "nodes": args.nodes, "learners": args.learners,
              "workers": args.workers, "bar": args.bar, "max_steps": args.steps, "runs": []}
    t0 = time.perf_counter()
    with local_cluster(nodes=args.nodes, cpus_per_node=1):
        result["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = os.path.join(tmp, "run")
                t = time.perf_counter()
                agent = asyncrl.A2C("CartPole-v1", workers=args.workers, executor="ray", learners=args.learners,
                                    steps=args.steps, seed=seed, eval_episodes=0, progress=False,
                                    stop_return=args.bar, run_dir=run_dir)
                agent.learn()
                took = time.perf_counter() - t
                with open(os.path.join(run_dir, "episodes.csv")) as fh:
                    rows = list(csv.DictReader(fh))
            last = [float(r["return"]) for r in rows[-100:]]
            mean = sum(last) / len(last) if last else float("nan")
            result["runs"].append({"seed": seed, "steps": agent.global_step, "seconds": round(took, 2),
                                   "episodes": len(rows), "mean_last_100": round(mean, 2),
                                   "reached_bar": mean >= args.bar,
                                   "envs_logged": len({r["worker"] for r in rows})})
    result["reached"] = sum(r["reached_bar"] for r in result["runs"])
    emit(result, args.out)


if __name__ == "__main__":
    main()
