"""A3C on Pong with 2 hogwild workers and the paper's settings (--preset atari), or its
synchronous sibling A2C (--algo a2c: 16 environments, ale-py's vector env), for a fixed
wall-clock budget: the score against emulator frames and wall time. Out of CI.

Runs `asyncrl train a3c --env ALE/Pong-v5 --preset atari --workers 2` (or `asyncrl train a2c
--env ALE/Pong-v5 --preset atari --workers 16 --vec-env ale`) as a user would; at the time
limit it sends SIGTERM (the run saves its checkpoint and exits 130). Then writes (ALGO: a3c
or a2c)

  docs/pong_ALGO.png                         curve against frames and wall time
  benchmarks/results/pong_ALGO_episodes.csv  every training game (step, frames, wall time, score)
  benchmarks/results/pong_ALGO.json          commit of each segment, throughput, when the mean of
                                             the last 10 games first reached -15 ... +20, the
                                             means every 30 minutes, and a greedy evaluation of
                                             the last checkpoint

    python benchmarks/pong_learning.py [--algo a3c] [--minutes 150] [--run-dir runs/pong-ALGO] [--resume]
                                       [--note TEXT]

A run stopped at its time limit continues with --resume: the logged wall time goes on
from where it stopped, so the curve is the one an uninterrupted run would have drawn. Each
invocation is recorded as a segment (commit, wall-time span, exit code, --note) in
<run-dir>/benchmark_segments.json, and all segments go into the JSON.

Do not run anything else on the machine meanwhile: wall time is the point.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, header, train_for_minutes  # noqa: E402

WINDOW = 10
MILESTONES = (-15.0, -10.0, -5.0, 0.0, 10.0, 18.0, 20.0)
EVERY_MINUTES = 30


def moving_means(scores: list[float], window: int) -> list[float]:
    """The mean of the last `window` games after each game (fewer at the start)."""
    out, total = [], 0.0
    for i, x in enumerate(scores):
        total += x - (scores[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def first_reaching(rows: list[dict], means: list[float], level: float) -> dict | None:
    """Where the mean of the last WINDOW games (`means`, one per row) first reached `level`."""
    for i in range(WINDOW - 1, len(rows)):
        if means[i] >= level:
            r = rows[i]
            return {"frames": int(r["frames"]), "agent_steps": int(r["step"]),
                    "minutes": round(float(r["wall_time"]) / 60, 1)}
    return None


def summary(rows: list[dict]) -> dict:
    """Means of the last 10 and 100 games at the end and every EVERY_MINUTES of wall time,
    the best mean of 10, and when each milestone was first reached."""
    scores = [float(r["return"]) for r in rows]
    m10, m100 = moving_means(scores, WINDOW), moving_means(scores, 100)
    at = {}
    for minute in range(EVERY_MINUTES, round(float(rows[-1]["wall_time"]) / 60) + 1, EVERY_MINUTES):
        i = max(j for j, r in enumerate(rows) if float(r["wall_time"]) <= minute * 60)
        at[str(minute)] = {"frames": int(rows[i]["frames"]), f"mean_of_last_{WINDOW}_games": round(m10[i], 2),
                           "mean_of_last_100_games": round(m100[i], 2)}
    return {f"mean_of_last_{WINDOW}_games": round(m10[-1], 2), "mean_of_last_100_games": round(m100[-1], 2),
            f"best_mean_of_{WINDOW}_games": round(max(m10[WINDOW - 1:]), 2), "at_minutes": at,
            "first_reached": {f"{m:+g}": first_reaching(rows, m10, m) for m in MILESTONES}}


def wall_minutes(run_dir: str) -> float:
    """The run's logged wall time so far (0 for a new run)."""
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.exists(path):
        return 0.0
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return round(float(rows[-1]["wall_time"]) / 60, 1) if rows else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=150.0)
    ap.add_argument("--algo", choices=("a3c", "a2c"), default="a3c")
    ap.add_argument("--workers", type=int, default=None, help="a3c: hogwild workers (2); a2c: environments (16)")
    ap.add_argument("--vec-env", default="ale", help="a2c: how the environments are stepped (ale)")
    ap.add_argument("--run-dir", default=None, help="default: runs/pong-ALGO")
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument("--analyse-only", action="store_true", help="skip training: analyse --run-dir")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run in --run-dir (asyncrl train --resume: its wall time goes on from "
                         "where it stopped) for another --minutes")
    ap.add_argument("--note", default="", help="recorded with this segment (what else ran, why it stopped)")
    ap.add_argument("--train-args", default="", help="more `asyncrl train` flags for a new run, e.g. "
                                                      "'--lr 2.1e-3' (recorded; the run's config.yaml has all)")
    ap.add_argument("--name", default=None, help="results are pong_NAME.json/_episodes.csv, docs/pong_NAME.png "
                                                 "(default: the algorithm)")
    args = ap.parse_args()
    algo = args.algo
    if args.workers is None:
        args.workers = 2 if algo == "a3c" else 16
    if args.run_dir is None:
        args.run_dir = os.path.join(ROOT, "runs", f"pong-{algo}")
    exe = os.path.join(os.path.dirname(sys.executable), "asyncrl")
    res = header("pong_learning")
    name = args.name or algo
    res.update(env="ALE/Pong-v5", algo=algo, workers=args.workers, preset="atari", train_args=args.train_args,
               budget_minutes=args.minutes)
    seg_path = os.path.join(args.run_dir, "benchmark_segments.json")
    segments = []
    if args.resume and os.path.exists(seg_path):
        with open(seg_path) as fh:
            segments = json.load(fh)
    if not args.analyse_only:
        start = wall_minutes(args.run_dir) if args.resume else 0.0
        if args.resume:
            cmd = [exe, "train", algo, "--env", "ALE/Pong-v5", "--run-dir", args.run_dir, "--resume", "--quiet"]
        else:
            cmd = [exe, "train", algo, "--env", "ALE/Pong-v5", "--preset", "atari", "--workers",
                   str(args.workers), "--run-dir", args.run_dir, "--overwrite", "--quiet", "--eval-episodes", "0"]
            if algo == "a2c":
                cmd += ["--vec-env", args.vec_env]
                res["vec_env"] = args.vec_env
            cmd += args.train_args.split()
        res["exit_code"] = code = train_for_minutes(cmd, args.minutes)
        segments.append({"commit": res["commit"], "from_minute": start, "to_minute": wall_minutes(args.run_dir),
                         "budget_minutes": args.minutes, "exit_code": code, "note": args.note})
        with open(seg_path, "w") as fh:
            json.dump(segments, fh, indent=2)
    res["segments"] = segments
    with open(os.path.join(args.run_dir, "episodes.csv")) as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["step"]))
    last = rows[-1]
    res["games"] = len(rows)
    res["frames"] = int(last["frames"])
    res["minutes"] = round(float(last["wall_time"]) / 60, 1)
    res["frames_per_s"] = round(int(last["frames"]) / float(last["wall_time"]))
    res.update(summary(rows))
    if args.eval_episodes:
        out = subprocess.run([exe, "eval", args.run_dir, "--episodes", str(args.eval_episodes), "--json"],
                             capture_output=True, text=True)
        res["eval"] = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr.strip()}
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    shutil.copy(os.path.join(args.run_dir, "episodes.csv"),
                os.path.join(ROOT, "benchmarks", "results", f"pong_{name}_episodes.csv"))
    subprocess.run([exe, "plot", args.run_dir, "--out", os.path.join(ROOT, "docs", f"pong_{name}.png"),
                    "--overwrite", "--window", str(WINDOW)], check=True)
    text = json.dumps(res, indent=2)
    print(text)
    with open(os.path.join(ROOT, "benchmarks", "results", f"pong_{name}.json"), "w") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
