"""Short learning tests: fixed seeds, generous budgets and margins (marked slow)."""
from __future__ import annotations

import csv
import os
import statistics

import gymnasium as gym
import numpy as np
import pytest
import torch

import asyncrl
from asyncrl.config import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow


def _best_greedy(make, seeds=(0, 1), good_enough=float("inf")) -> float:
    """Train with each seed until one is good enough; the best greedy evaluation (10 episodes).
    Hogwild runs are not reproducible (interleaving depends on machine load), so a learning
    test gets a second seed rather than depending on one interleaving."""
    best = float("-inf")
    for seed in seeds:
        agent = make(seed)
        agent.learn()
        best = max(best, agent.evaluate(10)["mean_return"])
        if best >= good_enough:
            break
    return best


def _value_losses(run_dir: str, after_step: int) -> list[float]:
    with open(os.path.join(run_dir, "metrics.csv")) as fh:
        return [float(r["loss/value"]) for r in csv.DictReader(fh)
                if int(r["step"]) > after_step and int(r["updates"]) > 0]


def test_a3c_defaults_learn_cartpole_with_a_bounded_value(tmp_path):
    """A3C with every hyperparameter at its default (2 workers, 300k steps): the greedy policy
    scores >= 100 (random play ~22), the value loss stays bounded after 150k steps and V
    never exceeds what CartPole's returns allow (1/(1-gamma) = 100). The former default MLP
    (ReLU, one torso shared by policy and value) failed all three: its value loss was 2.2e4
    at 150k steps and 2e5 by 130k in another run (README), and the better greedy policy of
    seeds 0 and 1 scored 18.2 and 21.1 in two runs here. Hogwild runs differ: seeds 0-3 of these defaults
    scored 130-500 greedy at 300k steps, with median value losses of 80-1,100 after 150k and
    V at most 100 (those still learning have the larger losses)."""
    agents = []

    def make(seed):
        agents.append(asyncrl.A3C("CartPole-v1", workers=2, run_dir=str(tmp_path / f"run{seed}"), seed=seed,
                                  eval_episodes=0, steps=300_000))
        return agents[-1]

    assert _best_greedy(make, good_enough=100.0) >= 100.0
    agent = agents[-1]
    losses = _value_losses(agent.config.run_dir, after_step=150_000)
    assert losses and statistics.median(losses) < 5_000.0, losses
    env = gym.make("CartPole-v1")
    obs, states = env.reset(seed=7)[0], []
    for _ in range(2000):                    # the states the greedy policy visits
        states.append(obs)
        obs, _, term, trunc, _ = env.step(agent.act(obs))
        if term or trunc:
            obs = env.reset()[0]
    with torch.no_grad():
        values = agent.model(torch.as_tensor(np.array(states), dtype=torch.float32))[1]
    assert float(values.max()) <= 110.0, float(values.max())


def test_a3c_learns_a_chain():
    """On a 5-state chain with reward only at the right end, the greedy policy walks right
    (the optimal return 1 in 4 steps)."""
    agent = asyncrl.A3C("toy_envs:Chain-v0", workers=2, lr=3e-3, gamma=0.9, eval_episodes=0, seed=1)
    agent.learn(8000)
    res = agent.evaluate(5)
    assert res["mean_return"] == 1.0 and res["mean_length"] == 4.0, res


def test_a3c_with_the_bounded_gaussian_mean_learns_a_target_action():
    """--gaussian-mean tanh through the whole run (2 hogwild workers, the continuous preset): on
    a one-step task whose reward is -(a - 0.6)^2, the greedy action after 5,000 steps is within
    0.1 of 0.6, inside the bounds [-1, 1] (seeds 0 and 1 gave 0.611 and 0.614 here; the untrained
    policy's mean is near 0)."""
    agent = asyncrl.A3C("toy_envs:TargetAction-v0", workers=2, gaussian_mean="tanh", eval_episodes=0, seed=0)
    agent.learn(5000)
    action = agent.act(np.ones(2, np.float32))
    assert agent.model.mean_squash is not None
    assert abs(float(action[0]) - 0.6) < 0.1, action


def test_a2c_solves_cartpole(tmp_path):
    """A2C, the sync executor with 8 environments and configs/cartpole-a2c.yaml (stops once the
    last-100 training mean reaches 475): the greedy policy scores >= 475 over 20 episodes.
    A2C on the CPU is deterministic, so one seed suffices (seed 0 solves at 73,800 steps here;
    seeds 0-4 all evaluated at 500)."""
    cfg = load_config_file(os.path.join(ROOT, "configs", "cartpole-a2c.yaml"))
    cfg.update(eval_episodes=0, device="cpu", seed=0)
    agent = asyncrl.A2C("CartPole-v1", run_dir=str(tmp_path / "run"), **cfg)
    agent.learn()
    assert agent.config.workers == 8 and agent.resolved["executor"] == "sync"
    assert agent.global_step < 500_000, "did not reach a training mean of 475 within the budget"
    assert agent.evaluate(20)["mean_return"] >= 475.0


def test_a3c_lstm_defaults_remember_a_cue(tmp_path):
    """The memory task asyncrl.pomdp:CueMemory-v0 (the cue 7 steps before the reward; a policy
    without memory averages 0, tests/unit/test_pomdp.py): A3C-LSTM with every hyperparameter at
    its default (the classic preset) and 2 workers, stopped once the mean of the last 100
    training episodes reaches 0.95, names the cue in >= 90 of 100 greedy episodes (mean return
    >= 0.8). Measured here: seed 0 passed 0.9 at about 64k steps (benchmarks/memory_defaults.py
    has three seeds)."""
    def make(seed):
        return asyncrl.A3C("asyncrl.pomdp:CueMemory-v0", workers=2, net="lstm", seed=seed, eval_episodes=0,
                           stop_return=0.95, steps=200_000, run_dir=str(tmp_path / f"run{seed}"))

    best = float("-inf")
    for seed in (0, 1):
        agent = make(seed)
        agent.learn()
        best = max(best, agent.evaluate(100, seed=123)["mean_return"])
        if best >= 0.8:
            break
    assert best >= 0.8, best
