"""Soak: a long A3C run on CartPole-v1 with a random hogwild worker SIGKILLed every
--kill-every seconds, against an undisturbed run with the same config, seed and step
target. Reports the kills done, the restarts survived, each run's final global step
against the target (it must be exact), its wall time, and a greedy evaluation (20
episodes) of both final agents. Prints one JSON object and writes benchmarks/results/soak.json.

    python benchmarks/soak.py [--minutes 30] [--kill-every 60] [--seed 0]

The step target is sized from a short calibration run (same config) so that the
undisturbed run lasts about --minutes; the whole benchmark takes about twice that.
Out of CI; run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, header, train_and_evaluate  # noqa: E402

ENV, CONFIG, WORKERS = "CartPole-v1", "cartpole-a3c", 2


def own_workers() -> list[int]:
    """This process's children that are forks of it (the hogwild workers; not, say, a
    multiprocessing helper process, whose command line differs)."""
    from asyncrl.procs import child_pids

    def cmdline(pid: int) -> bytes:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return b""

    me = cmdline(os.getpid())
    return [pid for pid in child_pids(os.getpid()) if cmdline(pid) == me]


class Killer(threading.Thread):
    """SIGKILLs a random worker every `every` seconds until stopped."""

    def __init__(self, every: float, seed: int):
        super().__init__(daemon=True)
        self.every, self.rng, self.done = every, random.Random(seed), threading.Event()
        self.kills: list[int] = []

    def run(self) -> None:
        while not self.done.wait(self.every):
            workers = own_workers()
            if workers:
                victim = self.rng.choice(workers)
                try:
                    os.kill(victim, signal.SIGKILL)
                    self.kills.append(victim)
                except ProcessLookupError:
                    pass


def run(name: str, target: int, seed: int, tmp: str, restarts: int, kill_every: float | None) -> dict:
    killer = Killer(kill_every, seed) if kill_every else None
    if killer:
        killer.start()
    try:
        res = train_and_evaluate("a3c", ENV, CONFIG, seed, 20, run_dir=os.path.join(tmp, name), steps=target,
                                 workers=WORKERS, stop_return=float("inf"), max_worker_restarts=restarts)
    finally:
        if killer:
            killer.done.set()
            killer.join()
    import asyncrl

    final = asyncrl.load(os.path.join(tmp, name, "checkpoints", "final.pt"))
    res.update(target_steps=target, final_checkpoint_step=final.global_step,
               exact=final.global_step == target == res["steps"], kills=len(killer.kills) if killer else 0)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of each run (default: 30)")
    ap.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills (default: 60)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibrate-steps", type=int, default=200_000, help="steps of the sizing run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cal = train_and_evaluate("a3c", ENV, CONFIG, args.seed, 1, run_dir=os.path.join(tmp, "calibrate"),
                                 steps=args.calibrate_steps, workers=WORKERS, stop_return=float("inf"))
        target = max(int(cal["steps_per_s"] * args.minutes * 60) // 1000 * 1000, 1000)
        planned = int(args.minutes * 60 // args.kill_every)
        restarts = planned + 10          # each kill costs one restart; a run of about --minutes
        killed = run("killed", target, args.seed, tmp, restarts, args.kill_every)
        calm = run("undisturbed", target, args.seed, tmp, restarts, None)
    out = {**header("soak"), "env": ENV, "config": CONFIG, "workers": WORKERS, "seed": args.seed,
           "minutes": args.minutes, "kill_every_s": args.kill_every, "target_steps": target,
           "max_worker_restarts": restarts,
           "calibration": {"steps": cal["steps"], "seconds": cal["seconds"], "steps_per_s": cal["steps_per_s"]},
           "kills": killed["kills"], "restarts_survived": killed["worker_restarts"],
           "killed_run": killed, "undisturbed_run": calm}
    text = json.dumps(out, indent=2)
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "soak.json"), "w") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
