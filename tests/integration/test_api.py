"""The Python API and the hogwild executor, end to end in small runs."""
from __future__ import annotations


import gymnasium as gym
import pytest
import torch

import asyncrl
from toy_envs import ExplodingCartPole
from asyncrl.errors import ConfigError, EnvError, WorkerError


def test_learn_hits_the_exact_step_count_with_a_lambda_env():
    """A zero-argument factory (a lambda, no registration) trains; T lands exactly on the target."""
    agent = asyncrl.A3C(lambda: gym.make("CartPole-v1"), workers=2, eval_episodes=0)
    agent.learn(1001)
    assert agent.global_step == 1001
    agent.learn(500)                       # a second call continues from where the first stopped
    assert agent.global_step == 1501


def test_learning_changes_the_shared_parameters_and_state_is_shared():
    """Workers update the agent's (shared) parameters and optimiser statistics."""
    agent = asyncrl.A3C("CartPole-v1", workers=2, eval_episodes=0)
    before = agent.params.clone()
    assert float(agent.optimizer.square_avg.abs().sum()) == 0.0
    agent.learn(600)
    assert agent.params.is_shared() and agent.optimizer.is_shared()
    assert not torch.equal(before, agent.params)
    assert float(agent.optimizer.square_avg.abs().sum()) > 0.0
    assert torch.isfinite(agent.params).all()


def test_save_load_round_trip_is_bit_exact(tmp_path):
    """save() then load() restores parameters, optimiser statistics, step and config exactly."""
    agent = asyncrl.A3C("CartPole-v1", workers=1, eval_episodes=0, lr=1e-3, hidden=[32])
    agent.learn(300)
    path = agent.save(str(tmp_path / "a.pt"))
    again = asyncrl.load(path)
    assert type(again) is asyncrl.A3C
    assert again.global_step == 300 and again.config == agent.config
    for (k1, v1), (k2, v2) in zip(agent.model.state_dict().items(), again.model.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    for k, v in agent.optimizer.state_dict().items():
        assert torch.equal(v, again.optimizer.state_dict()[k])
    obs, _ = gym.make("CartPole-v1").reset(seed=3)
    assert agent.act(obs) == again.act(obs)


def test_act_and_evaluate():
    """act() returns a valid action; evaluate() returns the contracted statistics."""
    agent = asyncrl.A3C("CartPole-v1", workers=1)
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    assert agent.act(obs) in (0, 1)
    res = agent.evaluate(3, seed=5)
    assert res["episodes"] == 3 and len(res["returns"]) == 3
    assert res["min_return"] <= res["mean_return"] <= res["max_return"]
    assert res == agent.evaluate(3, seed=5)  # greedy + seeded resets: reproducible


def test_discrete_observations_are_one_hot_encoded():
    """A Discrete observation space (toy chain) is accepted and trains."""
    agent = asyncrl.A3C("toy_envs:Chain-v0", workers=1, eval_episodes=0)
    agent.learn(200)
    assert agent.global_step == 200


@pytest.mark.parametrize("kwargs,expected", [
    ({"gamma": 0.0}, "gamma must be in (0, 1]"),
    ({"workers": 0}, "workers must be >= 1"),
    ({"learning_rate": 1.0}, "unknown hyperparameter 'learning_rate'; did you mean 'lr'"),
    ({"t_max": "five"}, "t_max must be int"),
])
def test_api_bad_hyperparameters(kwargs, expected):
    """Invalid hyperparameters raise ConfigError naming the value."""
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace("]", r"\]")):
        asyncrl.A3C("CartPole-v1", **kwargs)


def test_api_bad_env():
    with pytest.raises(EnvError, match=r"Gaussian policy needs a 1-D Box with finite bounds"):
        asyncrl.A3C("toy_envs:UnboundedAction-v0")
    with pytest.raises(EnvError, match=r"MultiDiscrete action space .*supports Discrete actions"):
        asyncrl.A2C("toy_envs:MultiDiscreteAction-v0")
    with pytest.raises(EnvError, match="unknown environment"):
        asyncrl.A3C("NoSuchEnv-v3")


def test_a_worker_that_keeps_failing_stops_the_run_with_its_traceback(tmp_path):
    """An exception in a worker's env (every env instance raises at its 50th step) gets the
    worker replaced, up to max_worker_restarts times; the next failure surfaces as a
    WorkerError naming the worker, the cause and the bound, and the latest checkpoint is
    still written at the step reached (nothing learned is lost)."""
    agent = asyncrl.A3C(ExplodingCartPole, workers=2, eval_episodes=0, max_worker_restarts=3,
                        run_dir=str(tmp_path / "run"))
    with pytest.raises(WorkerError, match=r"worker \d failed: RuntimeError: boom in env.step at step [\d,]+; "
                                          r"the run stops: 3 worker restarts already \(max-worker-restarts 3\)"):
        agent.learn(100_000)
    assert agent.worker_restarts == 3
    saved = asyncrl.load(str(tmp_path / "run" / "checkpoints" / "latest.pt"), env="CartPole-v1")
    assert 0 < saved.global_step == agent.global_step < 100_000
