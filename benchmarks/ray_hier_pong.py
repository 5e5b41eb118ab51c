"""Learning per frame on Pong: A3C with configs/pong-a3c.yaml, 2 actor-learners, the same
frame budget and seed, under hogwild on this machine and under the ray executor's
hierarchical mode on a real 2-node Ray cluster on this machine (tests/ray_cluster.py: a
head with no CPUs, two 1-CPU worker nodes; one hogwild group of one worker per node,
exchanging with the parameter store every sync-seconds, its default).

The arms run one after the other (hogwild first), each in its own run folder under
--dir; the summary reads their episodes.csv, so `--summarise` alone turns whatever the
runs reached (a run stopped early included) into the comparison: the mean return of the
last 20 episodes at each million frames both arms reached, and the frames and wall time
each arm reached. Prints one JSON object and writes --out.

    python benchmarks/ray_hier_pong.py [--steps 2000000] [--seed 0] [--dir D] [--summarise]
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from _common import HERE, ROOT, emit, header  # noqa: E402

ENV, CONFIG, WORKERS, WINDOW = "ALE/Pong-v5", "pong-a3c", 2, 20
ARMS = {"hogwild": {"executor": "hogwild"},
        "hierarchical": {"executor": "ray", "ray_mode": "hierarchical"}}


def train(arm: str, run_dir: str, steps: int, seed: int) -> None:
    import asyncrl
    from asyncrl.config import load_config_file

    cfg = load_config_file(os.path.join(ROOT, "configs", f"{CONFIG}.yaml"))
    cfg.update(seed=seed, eval_episodes=0, workers=WORKERS, **ARMS[arm])
    agent = asyncrl.A3C(ENV, run_dir=run_dir, overwrite=True, progress=False, **cfg)
    agent.learn(steps)


def read(run_dir: str) -> list[tuple[int, float, float]]:
    path = os.path.join(run_dir, "episodes.csv")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        rows = [(int(r["frames"]), float(r["wall_time"]), float(r["return"])) for r in csv.DictReader(fh)
                if r.get("return") not in (None, "")]
    return sorted(rows)


def summarise(dirs: dict[str, str]) -> dict:
    curves = {arm: read(d) for arm, d in dirs.items()}
    reached = {arm: (rows[-1][0] if rows else 0) for arm, rows in curves.items()}
    top = min(reached.values())
    marks = list(range(1_000_000, top + 1, 1_000_000))
    at = {}
    for arm, rows in curves.items():
        at[arm] = {}
        for m in marks:
            upto = [r for f, _, r in rows if f <= m]
            at[arm][m] = round(statistics.fmean(upto[-WINDOW:]), 2) if upto else None
    return {"frames_reached": reached, "wall_time_s": {a: (rows[-1][1] if rows else 0.0) for a, rows in curves.items()},
            "episodes": {a: len(rows) for a, rows in curves.items()},
            f"mean_last_{WINDOW}_at_frames": at,
            "per_million_frames": [{"frames": m, **{arm: at[arm][m] for arm in at}} for m in marks],
            "last_20_at_the_end": {a: round(statistics.fmean([r for _, _, r in rows][-WINDOW:]), 2) if rows else None
                                   for a, rows in curves.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2_000_000, help="agent steps per arm (4 frames each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default="/tmp/asyncrl-ray-hier-pong", help="the arms' run folders")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--summarise", action="store_true", help="only summarise the runs in --dir")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ray_hier_pong.json"))
    args = ap.parse_args()
    dirs = {arm: os.path.join(args.dir, arm) for arm in ARMS}
    if not args.summarise:
        from ray_cluster import local_cluster

        for arm in args.arms:
            if arm == "hierarchical":
                with local_cluster(nodes=2, cpus_per_node=1):
                    train(arm, dirs[arm], args.steps, args.seed)
            else:
                train(arm, dirs[arm], args.steps, args.seed)
    emit({**header("ray_hier_pong"), "env": ENV, "config": f"configs/{CONFIG}.yaml", "workers": WORKERS,
          "seed": args.seed, "steps_per_arm": args.steps,
          "cluster": "hierarchical: 2 Ray nodes on this machine, 1 CPU each, head with none",
          **summarise(dirs)}, args.out)


if __name__ == "__main__":
    main()
