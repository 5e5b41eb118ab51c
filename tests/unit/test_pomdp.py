"""The memory task asyncrl.pomdp:CueMemory-v0: what each step shows and pays, and why a
policy without memory cannot do better than chance."""
from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

from asyncrl.envs import env_api_problem
from asyncrl.pomdp import CueMemory


def _episode(env, policy, seed):
    obs, _ = env.reset(seed=seed)
    seen, total = [obs], 0.0
    while True:
        obs, reward, term, trunc, _ = env.step(policy(seen))
        total += reward
        seen.append(obs)
        if term or trunc:
            return seen, total


def test_cue_then_six_blanks_then_go():
    env = gym.make("asyncrl.pomdp:CueMemory-v0")
    seen, total = _episode(env, lambda seen: int(np.argmax(seen[0][:2])), seed=3)
    cue = int(np.argmax(seen[0][:2]))
    assert seen[0][cue] == 1.0 and seen[0].sum() == 1.0
    assert all(o.sum() == 0.0 for o in seen[1:7])                  # six blank observations
    assert list(seen[7]) == [0.0, 0.0, 1.0]                        # go
    assert len(seen) == 9 and total == 1.0                         # 8 actions; the 8th is paid
    assert env.spec.reward_threshold == 0.95


@pytest.mark.parametrize("answer", [0, 1])
def test_the_wrong_side_costs_one(answer):
    env = CueMemory()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        cue = int(np.argmax(obs[:2]))
        rewards = [env.step(answer)[1] for _ in range(8)]
        assert rewards[:7] == [0.0] * 7 and rewards[7] == (1.0 if answer == cue else -1.0)


def test_the_cue_is_a_fair_coin():
    env = CueMemory()
    cues = [int(np.argmax(env.reset(seed=s)[0][:2])) for s in range(400)]
    assert 160 < sum(cues) < 240


def test_no_memoryless_policy_beats_chance():
    """A memoryless policy answers the go observation [0, 0, 1] the same whatever the cue
    was, so over the two cues it scores +1 and -1: every one of them (each answer to the
    four distinct observations) averages exactly 0 over both cues."""
    observations = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    env = CueMemory()
    for answers in itertools.product((0, 1), repeat=4):
        table = dict(zip(observations, answers))
        totals = {}
        for seed in range(40):
            seen, total = _episode(env, lambda seen: table[tuple(float(x) for x in seen[-1])], seed)
            totals[int(np.argmax(seen[0][:2]))] = total
        assert sorted(totals.values()) == [-1.0, 1.0]


def test_delays_and_the_api():
    assert env_api_problem(CueMemory()) is None
    env = CueMemory(delay=0)                                   # cue and go in one observation
    obs, _ = env.reset(seed=0)
    assert obs[2] == 1.0 and obs[:2].sum() == 1.0
    _, reward, term, _, _ = env.step(int(np.argmax(obs[:2])))
    assert reward == 1.0 and term
    with pytest.raises(ValueError, match="delay must be >= 0, got -1"):
        CueMemory(delay=-1)
