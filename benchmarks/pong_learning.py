"""A3C on Pong with 2 hogwild workers and the paper's settings (--preset atari), for a fixed
wall-clock budget: the score against emulator frames and wall time. Out of CI.

Runs `asyncrl train a3c --env ALE/Pong-v5 --preset atari --workers 2` as a user would; at
the time limit it sends SIGTERM (the run saves its checkpoint and exits 130). Then writes

  docs/pong_a3c.png                          curve against frames and wall time
  benchmarks/results/pong_a3c_episodes.csv   every training game (step, frames, wall time, score)
  benchmarks/results/pong_a3c.json           commit, throughput, when the mean of the last 10
                                             games first reached +18 (and 0, +10, +20), and a
                                             greedy evaluation of the last checkpoint

    python benchmarks/pong_learning.py [--minutes 150] [--run-dir runs/pong-a3c] [--resume]

A run stopped at its time limit continues with --resume: the logged wall time goes on
from where it stopped, so the curve is the one an uninterrupted run would have drawn.

Do not run anything else on the machine meanwhile: wall time is the point.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, header  # noqa: E402

WINDOW = 10
MILESTONES = (0.0, 10.0, 18.0, 20.0)


def first_reaching(rows: list[dict], level: float) -> dict | None:
    scores = [float(r["return"]) for r in rows]
    for i in range(WINDOW - 1, len(scores)):
        if sum(scores[i - WINDOW + 1:i + 1]) / WINDOW >= level:
            r = rows[i]
            return {"frames": int(r["frames"]), "agent_steps": int(r["step"]),
                    "minutes": round(float(r["wall_time"]) / 60, 1)}
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=150.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--run-dir", default=os.path.join(ROOT, "runs", "pong-a3c"))
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument("--analyse-only", action="store_true", help="skip training: analyse --run-dir")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run in --run-dir (asyncrl train --resume: its wall time goes on from "
                         "where it stopped) for another --minutes")
    args = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "asyncrl")
    res = header("pong_learning")
    res.update(env="ALE/Pong-v5", algo="a3c", workers=args.workers, preset="atari",
               budget_minutes=args.minutes)
    if not args.analyse_only:
        if args.resume:
            cmd = [exe, "train", "a3c", "--env", "ALE/Pong-v5", "--run-dir", args.run_dir, "--resume", "--quiet"]
        else:
            cmd = [exe, "train", "a3c", "--env", "ALE/Pong-v5", "--preset", "atari", "--workers",
                   str(args.workers), "--run-dir", args.run_dir, "--overwrite", "--quiet", "--eval-episodes", "0"]
        proc = subprocess.Popen(cmd)
        try:
            proc.wait(timeout=args.minutes * 60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        res["exit_code"] = proc.returncode
    with open(os.path.join(args.run_dir, "episodes.csv")) as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["step"]))
    last = rows[-1]
    res["games"] = len(rows)
    res["frames"] = int(last["frames"])
    res["minutes"] = round(float(last["wall_time"]) / 60, 1)
    res["frames_per_s"] = round(int(last["frames"]) / float(last["wall_time"]))
    res[f"mean_of_last_{WINDOW}_games"] = round(sum(float(r["return"]) for r in rows[-WINDOW:]) / WINDOW, 2)
    res["first_reached"] = {f"{m:+g}": first_reaching(rows, m) for m in MILESTONES}
    if args.eval_episodes:
        out = subprocess.run([exe, "eval", args.run_dir, "--episodes", str(args.eval_episodes), "--json"],
                             capture_output=True, text=True)
        res["eval"] = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr.strip()}
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    shutil.copy(os.path.join(args.run_dir, "episodes.csv"),
                os.path.join(ROOT, "benchmarks", "results", "pong_a3c_episodes.csv"))
    subprocess.run([exe, "plot", args.run_dir, "--out", os.path.join(ROOT, "docs", "pong_a3c.png"),
                    "--window", str(WINDOW)], check=True)
    text = json.dumps(res, indent=2)
    print(text)
    with open(os.path.join(ROOT, "benchmarks", "results", "pong_a3c.json"), "w") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
