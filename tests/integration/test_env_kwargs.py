"""--env-kwargs KEY=VALUE (env_kwargs= in the API, a mapping in a config file): keyword
arguments for gym.make of the env id, in every process that builds the env (workers,
evaluation, a resumed or loaded run), as CarRacing's discrete variant needs
(continuous=false). Bad pairs are refused in one line before anything starts."""
from __future__ import annotations

import csv
import os

import gymnasium as gym
import pytest
import yaml

import asyncrl
from asyncrl.config import Config
from asyncrl.errors import ConfigError, EnvError
from helpers import assert_refused_in_one_line, run_cli_forked


def test_pairs_are_read_as_yaml_values():
    cfg = Config.from_dict({"env_kwargs": ["continuous=false", "lap_complete_percent=0.95", "name=abc",
                                           "sizes=[1, 2]", "empty=", "rate=1e-3", "n=010", "none=null"]},
                           source="--env-kwargs")
    assert cfg.env_kwargs == {"continuous": False, "lap_complete_percent": 0.95, "name": "abc", "sizes": [1, 2],
                              "empty": "", "rate": 0.001, "n": 10, "none": None}
    assert Config.from_dict({"env_kwargs": {"continuous": False}}).env_kwargs == {"continuous": False}
    assert Config().env_kwargs == {} and Config.from_dict({"env_kwargs": None}).env_kwargs == {}


@pytest.mark.parametrize("bad", [["continuous"], ["=1"], ["a-b=1"], ["x=[1"], [3], {"x": (1, 2)}, {1: 2}])
def test_a_pair_that_is_not_key_equals_value_is_refused(bad):
    with pytest.raises(ConfigError, match=r"env-kwargs must be KEY=VALUE pairs"):
        Config.from_dict({"env_kwargs": bad}, source="--env-kwargs")


def test_a_factory_takes_no_env_kwargs_nor_a_vector_env_that_makes_its_own_games():
    with pytest.raises(EnvError, match=r"env-kwargs \(env_kwargs\) are for gym.make of an env id"):
        asyncrl.A3C(lambda: gym.make("CartPole-v1"), env_kwargs={"x": 1}, workers=1)
    with pytest.raises(ConfigError, match="vec_env 'ale' makes its games itself and takes no env_kwargs"):
        asyncrl.A2C("ALE/Pong-v5", vec_env="ale", env_kwargs={"mode": 0})


def test_the_cli_passes_them_to_every_env_and_keeps_them_for_resume_and_eval(tmp_path):
    """CartPole's sutton_barto_reward=true pays 0 a step and -1 at a fall: every training and
    evaluation episode's return is then <= 0 (the default pays +1 a step)."""
    run = str(tmp_path / "run")
    out = run_cli_forked([
        {"args": ["train", "a3c", "--env", "CartPole-v1", "--env-kwargs", "sutton_barto_reward=true", "--workers",
                  "2", "--steps", "2000", "--eval-episodes", "3", "--run-dir", run, "--quiet"], "cwd": str(tmp_path)},
        {"args": ["train", "--resume", "--run-dir", run, "--steps", "3000", "--quiet"], "cwd": str(tmp_path)},
        {"args": ["eval", run, "--episodes", "3"], "cwd": str(tmp_path)},
        {"args": ["train", "a3c", "--env", "CartPole-v1", "--env-kwargs", "nope=1", "--run-dir",
                  str(tmp_path / "bad"), "--quiet"], "cwd": str(tmp_path), "watch": str(tmp_path)},
        {"args": ["train", "a3c", "--env", "CartPole-v1", "--env-kwargs", "continuous", "--run-dir",
                  str(tmp_path / "bad"), "--quiet"], "cwd": str(tmp_path), "watch": str(tmp_path)},
    ])
    for r in out[:3]:
        assert r["returncode"] == 0, r["stderr"]
    with open(os.path.join(run, "config.yaml")) as fh:
        assert yaml.safe_load(fh)["env_kwargs"] == {"sutton_barto_reward": True}
    with open(os.path.join(run, "episodes.csv")) as fh:
        returns = [float(r["return"]) for r in csv.DictReader(fh)]
    assert len(returns) > 20 and max(returns) <= 0.0 and min(returns) == -1.0
    assert int(list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))[-1]["step"]) == 3000
    assert "mean return -1.00" in out[2]["stdout"] + out[2]["stderr"]
    assert_refused_in_one_line(out[3]["returncode"], out[3]["stdout"], out[3]["stderr"], "nope")
    assert_refused_in_one_line(out[4]["returncode"], out[4]["stdout"], out[4]["stderr"],
                               "env-kwargs must be KEY=VALUE pairs")
    assert not (tmp_path / "bad").exists()
    # another env given at load: the saved keyword arguments are not its own
    other = asyncrl.load(run, env=lambda: gym.make("CartPole-v1"))
    assert other.evaluate(2)["mean_return"] >= 1.0
