"""Shared by the benchmark scripts: train one config on one seed, evaluate, keep the curve."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def header(name: str) -> dict:
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
    if changed:     # the code measured is not that commit's
        commit += "+uncommitted-src-changes"
    return {"benchmark": name, "commit": commit, "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__}


def emit(result: dict, path: str | None) -> None:
    """Print a benchmark's JSON, and write it to `path` too when one is given."""
    import json

    text = json.dumps(result, indent=2)
    print(text)
    if path:
        with open(path, "w") as fh:
            fh.write(text + "\n")


def train_and_evaluate(algo: str, env: str, config: str | None, seed: int, eval_episodes: int,
                       run_dir: str | None = None, **overrides) -> dict:
    """Train `algo` on `env` with configs/<config>.yaml (None: no config file, the defaults)
    (+ overrides), then a greedy evaluation of `eval_episodes` episodes. If run_dir is given
    the run folder is kept there."""
    from asyncrl.api import AGENTS
    from asyncrl.config import load_config_file

    cfg = {} if config is None else load_config_file(os.path.join(ROOT, "configs", f"{config}.yaml"))
    cfg.update(seed=seed, eval_episodes=0, **overrides)
    if run_dir and os.path.exists(run_dir):
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    agent = AGENTS[algo](env, run_dir=run_dir, **cfg)
    agent.learn()
    seconds = time.perf_counter() - t0
    ev = agent.evaluate(eval_episodes)
    return {"seed": seed, "steps": agent.global_step, "seconds": round(seconds, 1),
            "worker_restarts": agent.worker_restarts,
            "steps_per_s": round(agent.global_step / seconds),
            "train_return_last100": round(agent.recent_return, 1),
            "eval_mean_return": round(ev["mean_return"], 1), "eval_std_return": round(ev["std_return"], 1),
            "eval_min_return": round(ev["min_return"], 1), "eval_max_return": round(ev["max_return"], 1)}


def train_for_minutes(cmd: list[str], minutes: float, grace_s: float = 120.0) -> int:
    """Run an `asyncrl train ...` command line as a user would, for at most `minutes`: then
    SIGTERM (the run saves its checkpoint and exits 130; `--resume` continues it). Returns
    the exit code."""
    import signal

    proc = subprocess.Popen(cmd)
    try:
        proc.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace_s)
    return proc.returncode
