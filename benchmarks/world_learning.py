"""The paper's other worlds, from pixels, on these 2 cores: A3C for a wall-clock budget per
arm, as a user runs it (`asyncrl train`, SIGTERMed at the budget: it saves its checkpoint),
with periodic greedy evaluations in the background. Out of CI.

Studies (--study):
  myway    VizdoomMyWayHome-v1 (the Labyrinth stand-in: find the goal in a maze of rooms),
           A3C-LSTM against A3C-FF (the paper's CNN alone): success rate (asyncrl.success:
           the goal reached) and score against frames and wall time; the bar: a greedy
           success rate of at least 0.9 within 60 minutes
  health   VizdoomHealthGatheringSupreme-v1 (gather medkits in a maze): LSTM against FF, the
           score after the budget
  carracing  CarRacing-v3 (the TORCS stand-in: driving from pixels), continuous A3C
           (Gaussian policy, the paper's continuous-action entropy beta 1e-4)

Every arm: `asyncrl train a3c --env ENV --workers 2 --net NET --steps S --eval-every E
--eval-episodes K --run-dir DIR/ARM --overwrite --quiet` plus --train-args (the paper
preset's values are the default for image observations; e.g. "--rms-eps 1e-5 --lr 3e-4",
what Pong needed on 2 workers). Frames are agent steps x --frame-skip (4).

Writes benchmarks/results/world_STUDY.json (per arm: the exit code, steps, frames, minutes,
every periodic evaluation with its frames and minutes, the first evaluation at the bar,
the last one, the mean of the last 100 training episodes), world_STUDY_evaluations.csv
(all arms' evaluations) and docs/world_STUDY.png (`asyncrl plot`: training return against
steps and wall time, and the evaluations).

    python benchmarks/world_learning.py --study myway [--arms lstm ff] [--minutes 60]
        [--eval-every 50000] [--eval-episodes 20] [--train-args "..."] [--analyse-only]

Run nothing else on the machine meanwhile: wall time is the point.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, ROOT, emit, header, train_for_minutes  # noqa: E402

FRAME_SKIP = 4
STUDIES = {
    "myway": {"env": "VizdoomMyWayHome-v1", "arms": {"lstm": ["--net", "lstm"], "ff": ["--net", "cnn"]},
              "bar": ("success_rate", 0.9)},
    "health": {"env": "VizdoomHealthGatheringSupreme-v1", "arms": {"lstm": ["--net", "lstm"], "ff": ["--net", "cnn"]},
               "bar": None},
    "carracing": {"env": "CarRacing-v3", "arms": {"a3c": []}, "bar": None},
}


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def summarise_arm(run_dir: str, bar: tuple[str, float] | None) -> dict:
    """What one arm's run folder shows: its evaluations against frames and minutes, the first
    one at the bar, and the training returns."""
    evals = []
    for r in read_rows(os.path.join(run_dir, "evaluations.csv")):
        step = int(r["step"])
        row = {"step": step, "frames": step * FRAME_SKIP, "minutes": round(float(r["wall_time"]) / 60, 2),
               "mean_return": float(r["mean_return"]), "episodes": int(r["episodes"])}
        if r.get("success_rate"):
            row["success_rate"] = float(r["success_rate"])
        evals.append(row)
    episodes = read_rows(os.path.join(run_dir, "episodes.csv"))
    returns = [float(r["return"]) for r in episodes if r.get("return")]
    metrics = read_rows(os.path.join(run_dir, "metrics.csv"))
    steps = int(metrics[-1]["step"]) if metrics else 0
    minutes = float(metrics[-1]["wall_time"]) / 60 if metrics else 0.0
    out = {"steps": steps, "frames": steps * FRAME_SKIP, "minutes": round(minutes, 1),
           "frames_per_s": round(steps * FRAME_SKIP / (minutes * 60)) if minutes else None,
           "training_episodes": len(returns),
           "mean_of_last_100_training_episodes": round(statistics.fmean(returns[-100:]), 3) if returns else None,
           "evaluations": evals, "last_evaluation": evals[-1] if evals else None}
    if bar is not None:
        key, level = bar
        out["first_evaluation_at_the_bar"] = next((e for e in evals if e.get(key, float("-inf")) >= level), None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=list(STUDIES), required=True)
    ap.add_argument("--arms", nargs="+", default=None, help="default: all of the study's arms")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of each arm")
    ap.add_argument("--steps", type=int, default=2_000_000,
                    help="the runs' --steps (the learning rate anneals to 0 over it; the budget stops them first)")
    ap.add_argument("--eval-every", type=int, default=50_000)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train-args", default="", help="more `asyncrl train` flags for every arm")
    ap.add_argument("--dir", default=os.path.join(ROOT, "runs", "world"), help="the arms' run folders go under it")
    ap.add_argument("--analyse-only", action="store_true", help="summarise the run folders in --dir")
    args = ap.parse_args()
    study = STUDIES[args.study]
    arms = args.arms or list(study["arms"])
    unknown = [a for a in arms if a not in study["arms"]]
    if unknown:
        ap.error(f"arms {unknown} are not arms of study {args.study!r}: {list(study['arms'])}")
    exe = os.path.join(os.path.dirname(sys.executable), "asyncrl")
    res = {**header("world_learning"), "study": args.study, "env": study["env"], "workers": args.workers,
           "budget_minutes": args.minutes, "steps": args.steps, "eval_every": args.eval_every,
           "eval_episodes": args.eval_episodes, "train_args": args.train_args, "frame_skip": FRAME_SKIP,
           "bar": study["bar"], "arms": {}}
    dirs = {arm: os.path.join(args.dir, f"{args.study}-{arm}") for arm in arms}
    for arm in arms:
        if not args.analyse_only:
            cmd = [exe, "train", "a3c", "--env", study["env"], "--workers", str(args.workers),
                   "--steps", str(args.steps), "--eval-every", str(args.eval_every),
                   "--eval-episodes", str(args.eval_episodes), "--run-dir", dirs[arm], "--overwrite", "--quiet",
                   *study["arms"][arm], *args.train_args.split()]
            code = train_for_minutes(cmd, args.minutes)
        else:
            code = None
        res["arms"][arm] = {"flags": study["arms"][arm], "exit_code": code, **summarise_arm(dirs[arm], study["bar"])}
    results = os.path.join(HERE, "results")
    with open(os.path.join(results, f"world_{args.study}_evaluations.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arm", "step", "frames", "minutes", "mean_return", "success_rate", "episodes"])
        for arm, r in res["arms"].items():
            for e in r["evaluations"]:
                w.writerow([arm, e["step"], e["frames"], e["minutes"], e["mean_return"], e.get("success_rate", ""),
                            e["episodes"]])
    subprocess.run([exe, "plot", *dirs.values(), "--labels", *dirs, "--window", "20",
                    "--out", os.path.join(ROOT, "docs", f"world_{args.study}.png")], check=False)
    emit(res, os.path.join(results, f"world_{args.study}.json"))


if __name__ == "__main__":
    main()
