"""Time to solve CartPole-v1: asyncrl A3C (2 hogwild workers) and asyncrl A2C (sync executor)
against Stable-Baselines3 A2C (RL-Zoo settings), in one run on this machine. Prints one JSON object.

A2C against A2C on the same settings: 8 environments, 5-step segments, MLP 64x64 tanh with
separate policy and value networks. Besides the time to solve, a throughput section trains
each for a fixed budget (--throughput-steps, no early stop) and reports env steps/s.
Both run in this process with torch.set_num_threads(1) (hogwild workers set it themselves).

Solved = the mean return of the last 100 *training* episodes first reaches 475.
Wall time counts from constructing the agent (process start-up included for asyncrl,
vectorised env creation for SB3) until the solve is detected and training has stopped.
Env steps are those at which the crossing episode ended (asyncrl: from episodes.csv;
SB3: at the rollout whose end detected it).

    python benchmarks/cartpole_time_to_solve.py [--seeds 0 1 2] [--budget STEPS] [--skip-sb3]

asyncrl uses configs/cartpole-a3c.yaml (the `make demo` settings) and configs/cartpole-a2c.yaml,
budgets included unless --budget is given; SB3 gets --budget or 500,000 steps (the RL-Zoo budget).
The defaults rows use no config file and no preset flag: asyncrl's `preset auto` (the classic
preset) with its default workers (the cores), and SB3's A2C with every argument at its default
(`A2C("MlpPolicy", env)` on one environment). --rows picks which rows run.

Do not run anything else on the machine meanwhile: these are wall-clock timings.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THRESHOLD = 475.0
#: row -> (algorithm, with its configs/ file, overrides); rows starting sb3 are Stable-Baselines3's
ROWS = {
    "asyncrl_a3c": ("a3c", True, {}),
    "asyncrl_a3c_shared_torso": ("a3c", True, {"shared_torso": True}),
    "asyncrl_a2c": ("a2c", True, {}),
    "asyncrl_a3c_defaults": ("a3c", False, {}),
    "asyncrl_a2c_defaults": ("a2c", False, {}),
    "sb3_a2c_rlzoo": None,
    "sb3_a2c_defaults": None,
}


def first_crossing(episodes_csv: str, window: int = 100) -> tuple[int, float] | None:
    with open(episodes_csv) as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["step"]))
    rets = [float(r["return"]) for r in rows]
    for i in range(window - 1, len(rets)):
        if sum(rets[i - window + 1:i + 1]) / window >= THRESHOLD:
            return int(rows[i]["step"]), float(rows[i]["wall_time"])
    return None


def run_asyncrl(seed: int, budget: int, overrides: dict, algo: str = "a3c", config: bool = True) -> dict:
    from asyncrl.api import AGENTS
    from asyncrl.config import load_config_file

    cfg = load_config_file(os.path.join(ROOT, "configs", f"cartpole-{algo}.yaml")) if config else {}
    if config:
        cfg.setdefault("workers", 2)
    cfg.update(eval_episodes=0, seed=seed, stop_return=THRESHOLD)
    cfg.update(overrides)
    if budget:
        cfg["steps"] = budget
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        agent = AGENTS[algo]("CartPole-v1", run_dir=os.path.join(tmp, "run"), **cfg)
        setup = time.perf_counter() - t0
        agent.learn()
        seconds = time.perf_counter() - t0
        crossing = first_crossing(os.path.join(tmp, "run", "episodes.csv"))
    return {"seed": seed, "solved": crossing is not None, "seconds": round(seconds, 2),
            "steps": crossing[0] if crossing else None,
            "seconds_at_crossing": round(setup + crossing[1], 2) if crossing else None,
            "steps_total": agent.global_step}


def run_sb3(seed: int, budget: int, stop: bool = True, defaults: bool = False) -> dict:
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class StopWhenSolved(BaseCallback):
        solved_at = None

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.ep_info_buffer
            if self.solved_at is None and len(buf) == buf.maxlen and \
                    sum(e["r"] for e in buf) / len(buf) >= THRESHOLD:
                self.solved_at = self.model.num_timesteps

        def _on_rollout_start(self) -> None:
            if stop and self.solved_at is not None:
                self.model.num_timesteps = budget  # ends learn() at the next check

    t0 = time.perf_counter()
    if defaults:                        # every argument at SB3's default: one env
        env = make_vec_env("CartPole-v1", n_envs=1, seed=seed)
        model = A2C("MlpPolicy", env, seed=seed, verbose=0)
    else:
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        model = A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, verbose=0)  # RL-Zoo hyperparameters
    cb = StopWhenSolved()
    model.learn(total_timesteps=budget, callback=cb)
    seconds = time.perf_counter() - t0
    return {"seed": seed, "solved": cb.solved_at is not None, "seconds": round(seconds, 2),
            "steps": cb.solved_at, "steps_total": model.num_timesteps}


def throughput(rows: list[dict]) -> dict:
    """Env steps per second over fixed-budget runs (agent construction included)."""
    rates = [r["steps_total"] / r["seconds"] for r in rows]
    return {"runs": [{"seed": r["seed"], "steps": r["steps_total"], "seconds": r["seconds"],
                      "steps_per_s": round(x)} for r, x in zip(rows, rates)],
            "median_steps_per_s": round(statistics.median(rates))}


def summarise(rows: list[dict]) -> dict:
    solved = [r for r in rows if r["solved"]]
    out = {"runs": rows, "solved": f"{len(solved)}/{len(rows)}"}
    if solved:
        out["median_seconds"] = round(statistics.median(r["seconds"] for r in solved), 2)
        out["median_steps"] = int(statistics.median(r["steps"] for r in solved))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=0, help="step budget (default: config's / 500k for SB3)")
    ap.add_argument("--throughput-steps", type=int, default=100_000,
                    help="budget of the fixed-length A2C throughput runs (0 skips them)")
    ap.add_argument("--skip-sb3", action="store_true")
    ap.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="which rows to run (default: all)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = [r for r in args.rows if not (args.skip_sb3 and r.startswith("sb3"))]
    results = {}
    for row in rows:
        if row.startswith("sb3"):
            results[row] = summarise([run_sb3(s, args.budget or 500_000, defaults=row == "sb3_a2c_defaults")
                                      for s in args.seeds])
        else:
            algo, config, overrides = ROWS[row]
            results[row] = summarise([run_asyncrl(s, args.budget, overrides, algo, config) for s in args.seeds])
    for sb3_row in ("sb3_a2c_rlzoo", "sb3_a2c_defaults"):
        sb3 = results.get(sb3_row, {}).get("median_seconds")
        for ours in [r for r in rows if r.startswith("asyncrl")]:
            a = results[ours].get("median_seconds")
            if a and sb3:
                results[f"{ours}_over_{sb3_row}_median_seconds"] = round(a / sb3, 3)
    if args.throughput_steps:
        n = args.throughput_steps
        tp = {"budget_steps": n, "asyncrl_a2c": throughput(
            [run_asyncrl(s, n, {"stop_return": float("inf")}, "a2c") for s in args.seeds])}
        if not args.skip_sb3:
            tp["sb3_a2c"] = throughput([run_sb3(s, n, stop=False) for s in args.seeds])
            tp["asyncrl_a2c_over_sb3_steps_per_s"] = round(
                tp["asyncrl_a2c"]["median_steps_per_s"] / tp["sb3_a2c"]["median_steps_per_s"], 2)
        results["a2c_throughput"] = tp
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = None
    print(json.dumps({"benchmark": "cartpole_time_to_solve", "threshold": THRESHOLD, "commit": commit,
                      "seeds": args.seeds, "cpus": os.cpu_count(), "python": platform.python_version(),
                      "torch": torch.__version__, "results": results}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
