"""Speed-up from 1 to 2 actor-learners, as the paper's Table 2 measures it: time to reach a
score, for each of the four asynchronous methods, in one run. Prints one JSON object.

Time to threshold is measured without disturbing training: the main process snapshots the
shared parameters every 0.5 s of wall time (a copy of ~10k floats); after training, the
snapshots are evaluated greedily, in order, on 20 episodes each, and the time of the first
one whose mean return reaches 475 is the time to threshold (CartPole-v1, configs/ settings).
(With 10 episodes, one early A3C snapshot passed by luck at 0.5 s: hence 20.)

    python benchmarks/speedup_workers.py [--seeds 0 1] [--methods a3c n-step-q ...]

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
METHODS = ("one-step-q", "one-step-sarsa", "n-step-q", "a3c")
THRESHOLD = 475.0
EVAL_EPISODES = 20


def time_to_threshold(method: str, workers: int, seed: int) -> dict:
    import asyncrl
    from asyncrl.config import load_config_file

    cfg = load_config_file(os.path.join(ROOT, "configs", f"cartpole-{method}.yaml"))
    cfg.update(seed=seed, eval_episodes=0, checkpoint_interval=0.5)
    cfg.pop("stop_return", None)          # the whole budget, judged by greedy evaluation
    snaps: list[tuple[int, float, object]] = []
    t0 = time.perf_counter()

    class Snapshotting(asyncrl.api.AGENTS[method]):
        def _periodic_checkpoint(self, step: int) -> None:   # called every checkpoint_interval s
            snaps.append((step, time.perf_counter() - t0, self.params.clone()))

    agent = Snapshotting("CartPole-v1", workers=workers, **cfg)
    agent.learn()
    total = time.perf_counter() - t0
    snaps.append((agent.global_step, total, agent.params.clone()))
    for step, seconds, params in snaps:
        agent.params.copy_(params)
        if agent.evaluate(EVAL_EPISODES, seed=123)["mean_return"] >= THRESHOLD:
            return {"workers": workers, "seed": seed, "seconds": round(seconds, 2), "steps": step,
                    "budget_seconds": round(total, 2)}
    return {"workers": workers, "seed": seed, "seconds": None, "steps": None, "budget_seconds": round(total, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = ap.parse_args()
    results = {}
    for m in args.methods:
        one = [time_to_threshold(m, 1, s) for s in args.seeds]
        two = [time_to_threshold(m, 2, s) for s in args.seeds]
        entry = {"1_worker": one, "2_workers": two}
        t1 = [r["seconds"] for r in one if r["seconds"] is not None]
        t2 = [r["seconds"] for r in two if r["seconds"] is not None]
        if t1 and t2:
            entry["speedup_median"] = round(statistics.median(t1) / statistics.median(t2), 2)
        results[m] = entry
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    print(json.dumps({"benchmark": "speedup_workers", "threshold": THRESHOLD, "commit": commit,
                      "seeds": args.seeds, "cpus": os.cpu_count(), "results": results,
                      "paper_table2_2_threads": {"one-step-q": 3.0, "one-step-sarsa": 2.8,
                                                 "n-step-q": 2.7, "a3c": 2.1}}, indent=2))


if __name__ == "__main__":
    main()
