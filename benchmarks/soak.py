"""Soak: a long A3C run on CartPole-v1 through `asyncrl train`, with a random hogwild worker
SIGKILLed every --kill-every seconds and the main process itself SIGKILLed every
--main-kill-every seconds and resumed (`--resume`), against an undisturbed run with the
same config, seed and step target. Reports the kills done, the restarts survived, each
run's final global step against the target (it must be exact), its wall time, a greedy
evaluation (20 episodes, `asyncrl eval --json`) of both final agents, and whether the
killed run's logs are consistent after its resumes (`check_logs`). Prints one JSON object
and writes it to --out (benchmarks/results/soak.json).

    python benchmarks/soak.py [--minutes 30] [--kill-every 60] [--main-kill-every 600] [--seed 0] [--out F]

What "consistent" means here, after every resume from a checkpoint at step S:
- metrics.csv: one row per logged step: steps strictly increasing (no step twice, none
  going back: the rows the crash logged past S were moved aside by the resume), the last
  one the target, wall_time never going back (each checkpoint carries the wall time).
- episodes.csv: every row complete; the rows logged past S (episodes of the discarded
  stretch) are cut, moved aside (`episodes.csv.after-<S>-<time>`), so they are not
  counted twice: the episodes' lengths add up to at most the final step, and fall short of
  it by no more than the episodes cut in progress (a killed worker's, every worker's at a
  main kill and at the end: at most 500 steps each on CartPole); steps and wall_time go
  back by no more than between two polls of the main process, which drains the workers'
  queues in turn (the largest backward jumps are reported; wall_time within WALL_SLACK_S).
- TensorBoard: as TensorBoard reads the run (the resumed writer's purge_step hides the
  discarded stretch), every tag written with a metrics row (time/*, train/*,
  episode/return_mean_100) has strictly increasing steps, and `time/sps` ends on the
  target; the raw events' repeated steps (what the purge hides) and the per-episode tags'
  largest backward step are reported.

The step target is sized from a short calibration run (same config) so that the
undisturbed run lasts about --minutes; the whole benchmark takes about twice that.
Out of CI; run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, ROOT, emit, header, train_and_evaluate  # noqa: E402

ENV, CONFIG, WORKERS = "CartPole-v1", "cartpole-a3c", 2
EPISODE_MAX = 500                       # CartPole-v1's time limit: the most steps one episode holds
#: how far an episode's wall_time may fall below an earlier row's (workers' queues drained in
#: turn; 0.5 s seen undisturbed on 2 busy cores); a clock restarted at a resume falls further
WALL_SLACK_S = 2.0


def own_workers(pid: int) -> list[int]:
    """The children of training process `pid` that are forks of it (the hogwild workers; not,
    say, a multiprocessing helper process, whose command line differs)."""
    from asyncrl.procs import child_pids

    def cmdline(p: int) -> bytes:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return b""

    me = cmdline(pid)
    return [c for c in child_pids(pid) if me and cmdline(c) == me]


def train_cmd(run_dir: str, target: int, seed: int, restarts: int, resume: bool) -> list[str]:
    base = [sys.executable, "-m", "asyncrl", "train", "a3c", "--env", ENV, "--run-dir", run_dir,
            "--max-worker-restarts", str(restarts), "--quiet"]
    if resume:
        return base + ["--resume"]
    return base + ["--config", os.path.join(ROOT, "configs", f"{CONFIG}.yaml"), "--workers", str(WORKERS),
                   "--steps", str(target), "--seed", str(seed), "--stop-return", "inf", "--eval-episodes", "0"]


def run(name: str, target: int, seed: int, tmp: str, restarts: int, kill_every: float | None,
        main_kill_every: float | None) -> dict:
    """Train to `target` through the CLI, SIGKILLing a random worker every `kill_every` s and
    the main process every `main_kill_every` s (then resuming it); evaluate the final agent."""
    run_dir, rng = os.path.join(tmp, name), random.Random(seed)
    latest = os.path.join(run_dir, "checkpoints", "latest.pt")
    logs: list[str] = []

    def start(resume: bool) -> subprocess.Popen:
        logs.append(os.path.join(tmp, f"{name}-{len(logs)}.stderr"))
        with open(logs[-1], "w") as err:
            return subprocess.Popen(train_cmd(run_dir, target, seed, restarts, resume), stdout=subprocess.DEVNULL,
                                    stderr=err, cwd=tmp)

    t0 = time.monotonic()
    next_kill = t0 + kill_every if kill_every else float("inf")
    next_main = t0 + main_kill_every if main_kill_every else float("inf")
    kills, main_kills, failures = 0, 0, []
    p = start(False)
    while True:
        code = p.poll()
        if code is not None:
            if code != 0:                   # a run or a resume that failed: say why, stop
                with open(logs[-1]) as fh:
                    failures.append(fh.read()[-2000:])
            break
        time.sleep(0.2)
        now = time.monotonic()
        main_due = now >= next_main and os.path.exists(latest)
        if now >= next_kill:
            next_kill += kill_every
            workers = [] if main_due else own_workers(p.pid)    # a main kill takes the workers anyway
            if workers:
                try:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
        if main_due and p.poll() is None:       # (not before the first checkpoint: nothing to resume)
            next_main += main_kill_every
            p.kill()
            p.wait()
            main_kills += 1
            p = start(True)
    seconds = time.monotonic() - t0
    import asyncrl

    final_path = os.path.join(run_dir, "checkpoints", "final.pt")
    final = asyncrl.load(final_path) if os.path.exists(final_path) else None
    ev = subprocess.run([sys.executable, "-m", "asyncrl", "eval", run_dir, "--episodes", "20", "--seed",
                         str(seed), "--json"], capture_output=True, text=True)
    res = {"exit_code": p.returncode, "seconds": round(seconds, 1), "target_steps": target,
           "final_checkpoint_step": None if final is None else final.global_step,
           "exact": final is not None and final.global_step == target,
           "kills": kills, "main_kills": main_kills, "resumes": main_kills,
           "worker_restarts_logged": count_restarts(run_dir), "failures": failures,
           "eval": json.loads(ev.stdout) if ev.returncode == 0 else ev.stderr[-2000:]}
    res["logs"] = check_logs(run_dir, target, max_cut=kills + WORKERS * (main_kills + 1))
    return res


def count_restarts(run_dir: str) -> int:
    path = os.path.join(run_dir, "faults.log")
    return open(path).read().count("restarting it") if os.path.exists(path) else 0


def read_rows(path: str) -> tuple[list[dict], int]:
    """(rows with every column filled, rows that are not)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    full = [r for r in rows if None not in r.values() and None not in r]
    return full, len(rows) - len(full)


def largest_drop(values: list[float]) -> float:
    """The largest amount by which a value falls below the largest one before it (0: monotone)."""
    top, drop = float("-inf"), 0.0
    for v in values:
        drop = max(drop, top - v)
        top = max(top, v)
    return drop


def check_logs(run_dir: str, target: int, max_cut: int) -> dict:
    """The consistency of a (resumed) run's CSVs and TensorBoard events (module docstring);
    `max_cut`: how many episodes may have been cut in progress. Every figure and the verdict."""
    metrics, bad_m = read_rows(os.path.join(run_dir, "metrics.csv"))
    m_steps = [int(r["step"]) for r in metrics]
    m_wall = [float(r["wall_time"]) for r in metrics]
    episodes, bad_e = read_rows(os.path.join(run_dir, "episodes.csv"))
    e_steps = [int(r["step"]) for r in episodes]
    e_wall = [float(r["wall_time"]) for r in episodes]
    lengths = sum(int(r["length"]) for r in episodes)
    moved = {os.path.basename(f): len(read_rows(f)[0]) for f in sorted(glob.glob(os.path.join(run_dir, "*.after-*")))}
    out = {"metrics_rows": len(metrics), "metrics_incomplete_rows": bad_m,
           "metrics_steps_strictly_increasing": all(a < b for a, b in zip(m_steps, m_steps[1:])),
           "metrics_last_step": m_steps[-1] if m_steps else None,
           "metrics_wall_time_monotone": largest_drop(m_wall) == 0.0,
           "episodes_rows": len(episodes), "episodes_incomplete_rows": bad_e,
           "episodes_lengths_sum": lengths, "episodes_steps_not_in_a_logged_episode": target - lengths,
           "episodes_allowed_short": max_cut * EPISODE_MAX,
           "episodes_largest_step_drop": largest_drop(e_steps),
           "episodes_largest_wall_time_drop_s": round(largest_drop(e_wall), 3),
           "rows_moved_aside": moved}
    out.update(check_tensorboard(os.path.join(run_dir, "tb"), target))
    out["consistent"] = bool(
        not bad_m and not bad_e and out["metrics_steps_strictly_increasing"] and out["metrics_last_step"] == target
        and out["metrics_wall_time_monotone"] and 0 <= target - lengths <= max_cut * EPISODE_MAX
        and out["episodes_largest_wall_time_drop_s"] <= WALL_SLACK_S and out["tb_row_tags_strictly_increasing"]
        and out["tb_last_sps_step"] == target)
    return out


def check_tensorboard(tb_dir: str, target: int) -> dict:
    """As TensorBoard reads the folder (every file, the purge of a resumed writer applied):
    whether every scalar tag's steps strictly increase; and the raw events' duplicates."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    acc = EventAccumulator(tb_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    per_row = [t for t in tags if t.startswith(("time/", "train/")) or t == "episode/return_mean_100"]
    increasing = {t: all(a.step < b.step for a, b in zip(acc.Scalars(t), acc.Scalars(t)[1:])) for t in per_row}
    episodes = acc.Scalars("episode/return") if "episode/return" in tags else []
    sps = acc.Scalars("time/sps") if "time/sps" in tags else []
    raw = []
    for path in sorted(glob.glob(os.path.join(tb_dir, "events.out.tfevents.*"))):
        for event in EventFileLoader(path).Load():
            raw += [event.step for v in event.summary.value if v.tag == "time/sps"]
    return {"tb_files": len(glob.glob(os.path.join(tb_dir, "events.out.tfevents.*"))), "tb_row_tags": len(per_row),
            "tb_row_tags_strictly_increasing": bool(per_row) and all(increasing.values()),
            "tb_episode_points": len(episodes), "tb_episode_largest_step_drop": largest_drop([e.step for e in episodes]),
            "tb_sps_points": len(sps), "tb_last_sps_step": sps[-1].step if sps else None,
            "tb_raw_sps_points": len(raw), "tb_raw_sps_steps_repeated_or_back": sum(
                1 for a, b in zip(raw, raw[1:]) if b <= a)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of each run (default: 30)")
    ap.add_argument("--kill-every", type=float, default=60.0, help="seconds between worker kills (default: 60)")
    ap.add_argument("--main-kill-every", type=float, default=600.0,
                    help="seconds between kills of the main process, each followed by --resume (default: 600; "
                         "0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibrate-steps", type=int, default=200_000, help="steps of the sizing run")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "soak.json"), help="where the JSON goes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cal = train_and_evaluate("a3c", ENV, CONFIG, args.seed, 1, run_dir=os.path.join(tmp, "calibrate"),
                                 steps=args.calibrate_steps, workers=WORKERS, stop_return=float("inf"))
        target = max(int(cal["steps_per_s"] * args.minutes * 60) // 1000 * 1000, 1000)
        planned = int(args.minutes * 60 // args.kill_every)
        restarts = planned + 10          # each kill costs one restart; a run of about --minutes
        killed = run("killed", target, args.seed, tmp, restarts, args.kill_every, args.main_kill_every or None)
        calm = run("undisturbed", target, args.seed, tmp, restarts, None, None)
    out = {**header("soak"), "env": ENV, "config": CONFIG, "workers": WORKERS, "seed": args.seed,
           "minutes": args.minutes, "kill_every_s": args.kill_every, "main_kill_every_s": args.main_kill_every,
           "target_steps": target, "max_worker_restarts": restarts,
           "calibration": {"steps": cal["steps"], "seconds": cal["seconds"], "steps_per_s": cal["steps_per_s"]},
           "kills": killed["kills"], "main_kills": killed["main_kills"],
           "restarts_survived": killed["worker_restarts_logged"],
           "exact": killed["exact"] and calm["exact"], "logs_consistent": killed["logs"]["consistent"],
           "killed_run": killed, "undisturbed_run": calm}
    emit(out, args.out)


if __name__ == "__main__":
    main()
