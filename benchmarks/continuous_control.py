"""A3C with a Gaussian policy on continuous control, 2 hogwild workers: InvertedPendulum-v5
and HalfCheetah-v5 (Gymnasium's MuJoCo environments, `pip install -e .[mujoco]`) and the
classic Pendulum-v1. Each env has its config (configs/<env>-a3c.yaml) with its step budget;
each run ends with a greedy evaluation (the Gaussian's mean) over 20 episodes.
With --defaults, no config file: the `continuous` family preset that `--preset auto` picks
(its own step budget), beside a uniformly random policy's mean return over 20 episodes.
Prints one JSON object (and writes --out when given); with --plot-dir, writes each env's
learning curve (seed 0).

    python benchmarks/continuous_control.py [--envs InvertedPendulum-v5 ...] [--seeds 0 1 2] [--defaults]
                                            [--steps N] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, header, train_and_evaluate  # noqa: E402

ENVS = {"InvertedPendulum-v5": "inverted-pendulum-a3c", "Pendulum-v1": "pendulum-a3c",
        "HalfCheetah-v5": "halfcheetah-a3c"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--plot-dir", default=None, help="write <env>_a3c.png here (seed 0's curve)")
    ap.add_argument("--defaults", action="store_true", help="no config file: the defaults (preset auto)")
    ap.add_argument("--steps", type=int, default=None, help="override the budget (the config's or the preset's)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for env in args.envs:
            config = None if args.defaults else ENVS[env]
            more = {"steps": args.steps} if args.steps else {}
            rows = [train_and_evaluate("a3c", env, config, s, 20, run_dir=os.path.join(tmp, f"{env}-{s}"), **more)
                    for s in args.seeds]
            results[env] = {"config": "none (preset auto: continuous)" if args.defaults else f"configs/{config}.yaml",
                            "runs": rows,
                            "median_eval_mean_return": statistics.median(r["eval_mean_return"] for r in rows)}
            if args.defaults:
                results[env]["random_policy_mean_return"] = random_return(env, 20)
            if args.plot_dir:
                from asyncrl.plot import plot_runs

                plot_runs([os.path.join(tmp, f"{env}-{args.seeds[0]}")],
                          os.path.join(args.plot_dir, f"{ENVS[env].replace('-', '_')}.png"), window=20)
    out = {**header("continuous_control"), "workers": 2, "seeds": args.seeds, "results": results}
    if args.out:
        emit(out, args.out)
    else:
        print(json.dumps(out, indent=2))


def random_return(env_id: str, episodes: int, seed: int = 0) -> float:
    """Mean return of uniformly random actions over `episodes` episodes."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    total = 0.0
    for i in range(episodes):
        env.reset(seed=seed + i)
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += float(r)
            done = term or trunc
    env.close()
    return round(total / episodes, 1)


if __name__ == "__main__":
    main()
