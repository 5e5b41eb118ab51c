"""Learning per frame under the ray executor's hierarchical mode against hogwild: A3C on
CartPole-v1 with the defaults (no config file), 2 actor-learners either way, the same step
budget and seeds. Hogwild: both workers in one process group on this machine. Hierarchical:
a real 2-node Ray cluster on this machine (tests/ray_cluster.py: a head with no CPUs, two
1-CPU worker nodes), one hogwild group of 1 worker per node, exchanging with the parameter
store every sync-seconds S (each value of --sync-seconds is one arm: the staleness bound's
default is chosen from these).

Per run: the mean of the last 100 training returns at each --marks step (read from
episodes.csv), the first step where it reaches 475 (CartPole-v1 solved), and a greedy
evaluation of the final agent (--eval-episodes). Prints one JSON object and writes --out.

    python benchmarks/ray_hier_learning.py [--seeds 0 1 2] [--steps 200000] [--sync-seconds 0.1 0.5 2.0]
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from _common import HERE, emit, header  # noqa: E402

ENV, WORKERS, SOLVED = "CartPole-v1", 2, 475.0


def curve(run_dir: str, marks: list[int]) -> dict:
    """Mean of the last 100 training returns at each mark, and the first step it reached SOLVED."""
    with open(os.path.join(run_dir, "episodes.csv")) as fh:
        rows = [(int(r["step"]), float(r["return"])) for r in csv.DictReader(fh)]
    rows.sort()
    returns, at, first, i = [], {}, None, 0
    for step, ret in rows:
        returns.append(ret)
        mean = statistics.fmean(returns[-100:])
        if first is None and len(returns) >= 100 and mean >= SOLVED:
            first = step
        while i < len(marks) and step >= marks[i]:
            at[marks[i]] = round(statistics.fmean(returns[-100:]), 1) if returns else None
            i += 1
    for m in marks[i:]:
        at[m] = round(statistics.fmean(returns[-100:]), 1) if returns else None
    return {"mean_100_at": at, "solved_at_step": first, "episodes": len(rows)}


def one(tmp: str, name: str, seed: int, steps: int, eval_episodes: int, marks: list[int], **kw) -> dict:
    import asyncrl

    run_dir = os.path.join(tmp, f"{name}-{seed}")
    agent = asyncrl.A3C(ENV, workers=WORKERS, seed=seed, eval_episodes=0, run_dir=run_dir, progress=False, **kw)
    t0 = time.perf_counter()
    agent.learn(steps)
    seconds = time.perf_counter() - t0
    ev = agent.evaluate(episodes=eval_episodes)
    out = {"arm": name, "seed": seed, "steps": agent.global_step, "seconds": round(seconds, 1),
           "greedy_mean": ev["mean_return"], **curve(run_dir, marks)}
    t = getattr(agent._executor, "traffic", None)
    if t:
        out["exchanges"] = t["updates"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--sync-seconds", type=float, nargs="+", default=[0.1, 0.5, 2.0])
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ray_hier_learning.json"))
    args = ap.parse_args()
    from ray_cluster import local_cluster

    marks = sorted({m for m in (50_000, 100_000, 150_000, 200_000, 300_000) if m < args.steps} | {args.steps})
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:                 # interleaved: one seed's arms back to back
            runs.append(one(tmp, "hogwild", seed, args.steps, args.eval_episodes, marks, executor="hogwild"))
            print(runs[-1], file=sys.stderr, flush=True)
        with local_cluster(nodes=2, cpus_per_node=1):
            for seed in args.seeds:
                for s in args.sync_seconds:
                    runs.append(one(tmp, f"hierarchical S={s:g}", seed, args.steps, args.eval_episodes, marks,
                                    executor="ray", ray_mode="hierarchical", sync_seconds=s))
                    print(runs[-1], file=sys.stderr, flush=True)
    emit({**header("ray_hier_learning"), "env": ENV, "workers": WORKERS, "steps": args.steps,
          "seeds": args.seeds, "cluster": "2 Ray nodes on this machine, 1 CPU each, head with none",
          "arms": summarise(runs, marks), "runs": runs}, args.out)


def summarise(runs: list[dict], marks: list[int]) -> list[dict]:
    """One row per arm, in the order first run: the runs' medians and how many solved."""
    arms: dict[str, list[dict]] = {}
    for r in runs:
        arms.setdefault(r["arm"], []).append(r)
    out = []
    for name, rs in arms.items():
        solved = [r["solved_at_step"] for r in rs if r["solved_at_step"] is not None]
        out.append({"arm": name, "runs": len(rs), "solved": len(solved),
                    "solved_at": ", ".join(f"{x:,}" if x is not None else "never"
                                           for x in (r["solved_at_step"] for r in rs)),
                    "solved_at_median": statistics.median(solved) if solved else None,
                    "greedy": ", ".join(f"{r['greedy_mean']:g}" for r in rs),
                    "greedy_median": statistics.median(r["greedy_mean"] for r in rs),
                    "mean_100_at_50k_median": statistics.median(r["mean_100_at"].get(50_000, float("nan")) for r in rs)
                    if marks[0] == 50_000 else None,
                    "final_mean_100_median": statistics.median(r["mean_100_at"][marks[-1]] for r in rs)})
    return out


if __name__ == "__main__":
    main()
