"""Episode success (asyncrl.success): the scenario rules, the wrapper that applies them, and
evaluations' success rate from info["is_success"]."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import toy_envs  # noqa: F401  (registers the toy ids)
from asyncrl.envs import EnvFactory
from asyncrl.evaluate import evaluate_policy
from asyncrl.success import EpisodeSuccess, success_rule, with_success


class Scripted(gym.Env):
    """Rewards from a list, one per step; the episode ends after the last one."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, rewards, info=None):
        self.rewards, self.info = list(rewards), info or {}

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        r = self.rewards[self.t]
        self.t += 1
        end = self.t == len(self.rewards)
        return np.zeros(1, np.float32), r, end, False, dict(self.info) if end else {}


def _episode(env):
    env.reset(seed=0)
    while True:
        *_, term, trunc, info = env.step(0)
        if term or trunc:
            return info


def test_the_rules_are_found_by_id_prefix():
    assert success_rule("VizdoomMyWayHome-v1") is not None
    assert success_rule("vizdoom.gymnasium_wrapper:VizdoomMyWayHome-v0") is not None
    assert success_rule("CartPole-v1") is None and success_rule(None) is None
    rule = success_rule("VizdoomMyWayHome-v1")
    assert rule(1.0 - 0.0001 * 300) and not rule(-0.21) and not rule(0.0)


def test_the_wrapper_says_success_from_the_episodes_return_on_its_last_step_only():
    rule = success_rule("VizdoomMyWayHome-v1")
    env = EpisodeSuccess(Scripted([-0.0001] * 5 + [1.0]), rule)
    assert _episode(env) == {"is_success": True}
    env = EpisodeSuccess(Scripted([-0.0001] * 6), rule)
    assert _episode(env) == {"is_success": False}
    env.reset(seed=0)
    assert env.step(0)[4] == {}                     # not on the steps before the last
    # the total restarts with each episode: a second failing one is not lifted by the first
    env = EpisodeSuccess(Scripted([0.6, -0.1]), rule)
    assert _episode(env) == {"is_success": True}
    env.unwrapped.rewards = [-0.1, -0.1]
    assert _episode(env) == {"is_success": False}


def test_an_env_that_says_it_itself_is_believed():
    env = EpisodeSuccess(Scripted([-1.0], info={"is_success": True}), success_rule("VizdoomMyWayHome-v1"))
    assert _episode(env) == {"is_success": True}
    plain = Scripted([1.0])
    assert with_success(plain, "CartPole-v1") is plain


def test_an_evaluation_counts_the_episodes_that_said_success():
    rng = np.random.default_rng(3)
    result = evaluate_policy(lambda obs: int(rng.integers(2)), EnvFactory("ChainWithSuccess-v0"), 40, seed=0)
    reached = [r == 1.0 for r in result["returns"]]          # the chain pays 1 exactly at its end
    assert 0 < sum(reached) < 40                              # both kinds occur
    assert result["success_rate"] == pytest.approx(sum(reached) / 40)


def test_an_evaluation_of_an_env_that_says_nothing_has_no_success_rate():
    result = evaluate_policy(lambda obs: 1, EnvFactory("Chain-v0"), 3, seed=0)
    assert "success_rate" not in result


def test_my_way_home_says_success_and_a_timeout_is_a_failure(tmp_path, monkeypatch):
    pytest.importorskip("vizdoom")
    monkeypatch.chdir(tmp_path)                     # ViZDoom writes its _vizdoom.ini here
    factory = EnvFactory("VizdoomMyWayHome-v1")
    result = evaluate_policy(lambda obs: 0, factory, 1, seed=0)    # turning left on the spot: the 2100-tic timeout
    assert result["returns"][0] == pytest.approx(-0.21, abs=1e-3)
    assert result["success_rate"] == 0.0
