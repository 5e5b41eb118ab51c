"""asyncrl.budget: the memory a run needs, from its config and the env's spaces, against the
memory free here; the parameter count is the real network's."""
import gymnasium as gym
import numpy as np
import pytest

from asyncrl.algos import make_algorithm
from asyncrl.budget import available_memory, check_memory, estimate, memory_problem, model_size
from asyncrl.config import Config
from asyncrl.errors import ConfigError

CARTPOLE = gym.spaces.Box(-5, 5, (4,), np.float32), gym.spaces.Discrete(2)
PONG = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6)
PENDULUM = gym.spaces.Box(-8, 8, (3,), np.float32), gym.spaces.Box(-2, 2, (1,), np.float32)
CHAIN = gym.spaces.Discrete(5), gym.spaces.Discrete(2)


@pytest.mark.parametrize("changes,spaces", [
    ({}, CARTPOLE),
    ({"shared_torso": "yes"}, CARTPOLE),
    ({"net": "lstm", "lstm_size": 32}, CARTPOLE),
    ({"algo": "one-step-q", "hidden": [16, 8]}, CARTPOLE),
    ({}, PONG),
    ({"net": "lstm", "lstm_size": 64}, PONG),
    ({"algo": "n-step-q"}, PONG),
    ({"hidden": [32]}, PENDULUM),
    ({"net": "lstm", "lstm_size": 8}, PENDULUM),
    ({"algo": "one-step-sarsa"}, CHAIN),
    ({"net": "mlp", "hidden": [8]}, (gym.spaces.Box(0, 255, (2, 40, 40), np.uint8), gym.spaces.Discrete(3))),
])
def test_the_parameter_count_is_the_real_networks(changes, spaces):
    cfg = Config(env="x", **changes)
    model = make_algorithm(cfg).build_model(*spaces)
    assert model_size(cfg, *spaces)[0] == sum(p.numel() for p in model.parameters())


def test_the_issues_pathological_runs_do_not_fit():
    """t-max at its bound with many workers on Pong's frames: terabytes, refused naming the
    numbers; a CartPole run of the defaults fits in a gigabyte."""
    huge = Config(env="x", t_max=100_000, workers=1024, executor="sync", algo="a2c")
    problem = memory_problem(huge, *PONG, available=64 * 2**30)
    assert problem is not None and "\n" not in problem
    assert problem.startswith("this run needs about ") and "more than the 64.0 GB free here" in problem
    assert "rollouts" in problem and "t-max 100,000 x 1,024 workers" in problem
    small = Config(env="x", workers=2)
    assert memory_problem(small, *CARTPOLE, available=2**30) is None
    assert estimate(small, *CARTPOLE).total < 2**30
    assert memory_problem(huge, *PONG, available=None) is None        # unknown: nothing refused


def test_a_large_model_names_its_parameters():
    cfg = Config(env="x", hidden=[100_000, 5000], workers=8, executor="hogwild", optimizer="rmsprop")
    e = estimate(cfg, *CARTPOLE)
    assert e.params > 500_000_000 and e.copies == 1 + 8 + 2 * 8
    problem = memory_problem(cfg, *CARTPOLE, available=8 * 2**30)
    assert f"{e.params:,} parameters x {e.copies} copies" in problem


def test_check_memory_reads_this_machine():
    free = available_memory()
    assert free is None or free > 0
    check_memory(Config(env="x", workers=1), *CARTPOLE)
    with pytest.raises(ConfigError, match="this run needs about .* free here"):
        check_memory(Config(env="x", t_max=100_000, workers=1024, executor="sync", algo="a2c", frame_stack=4), *PONG)


def test_an_agent_that_does_not_fit_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    import asyncrl
    import asyncrl.budget as budget

    monkeypatch.setattr(budget, "available_memory", lambda: 10 * 2**20)     # 10 MB free
    with pytest.raises(ConfigError, match=r"this run needs about .* more than the 10.0 MB free here"):
        asyncrl.A3C("CartPole-v1", workers=2, run_dir=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()
