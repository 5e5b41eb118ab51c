"""Short learning tests of the value-based methods (marked slow)."""
from __future__ import annotations

import os

import pytest

import asyncrl
from asyncrl.config import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method", ["n-step-q", "one-step-q", "one-step-sarsa"])
def test_value_based_methods_learn_cartpole(method, tmp_path):
    """Each asynchronous value-based method, 2 hogwild workers, its CartPole config, evaluated
    greedily every 20k steps in the background (5 episodes) and stopped once an evaluation
    reaches 200: best.pt (the snapshot of the best evaluation) then scores >= 150 over 10 fresh
    greedy episodes (random play ~22). Measured here with seeds 0 and 1: stopped at 61k-82k
    (n-step Q), 21k-181k (one-step Q), 41k-102k steps (SARSA), best.pt 201-496. The policy
    at the end of the run is not asserted: a Q-learner's greedy policy swings (n-step Q's
    scored 10-11 a few thousand steps after best.pt's 211-496), which is why best.pt is kept.
    The benchmark (benchmarks/cartpole_value_based.py) holds the >= 475 claim at the configs'
    full budgets. Hogwild runs are not reproducible, so a second seed is tried if needed."""
    cfg = load_config_file(os.path.join(ROOT, "configs", f"cartpole-{method}.yaml"))
    cfg.update(eval_episodes=5, eval_every=20_000, stop_eval_return=200.0)
    best = float("-inf")
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        asyncrl.api.AGENTS[method]("CartPole-v1", workers=2, seed=seed, run_dir=str(run), **cfg).learn()
        best = max(best, asyncrl.load(str(run / "checkpoints" / "best.pt")).evaluate(10)["mean_return"])
        if best >= 150.0:
            break
    assert best >= 150.0, best
