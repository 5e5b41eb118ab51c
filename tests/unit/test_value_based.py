"""Exact tests for the value-based methods (asyncrl.algos.value_based): one-step Q-learning,
one-step SARSA and n-step Q-learning (paper, Algorithms 1-2), their epsilon-greedy policy,
the target-network copy rule (crossed_period) and the SARSA segment collector.

Q values are controlled exactly: observations are one-hot state indicators over 5 states,
and a network is a table, Q(s_k, .) = TABLE[k] (forward(x) = x @ TABLE). Targets come from
TARGET (theta-), the taken Q values from ONLINE (theta'). gamma = 0.9 throughout.

    TARGET  a0    a1    a2   | max        ONLINE  a0   a1   a2
    s0     1.0   2.0   0.0   | 2.0        s0     0.5  1.0  0.0
    s1     3.0  -1.0   2.0   | 3.0        s1     1.0  0.0  2.0
    s2     0.5   4.0   1.0   | 4.0        s2     0.0  1.0  3.0
    s3     2.0   2.5  -3.0   | 2.5        s3     2.0  1.0  0.0
    s4    -1.0   0.0   6.0   | 6.0        s4     1.0  1.0  1.0

s4 has the largest values, so bootstrapping from it by mistake (e.g. after a terminal
step) changes a target by a lot.
"""
import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import asyncrl.algos.value_based as vb
from asyncrl.algos.value_based import (EpsilonGreedy, ValueBasedAlgorithm, draw_final_epsilons,
                                       epsilon_at)
from asyncrl.config import Config
from asyncrl.errors import EnvError
from asyncrl.learner import crossed_period
from asyncrl.nets import QNetwork
from asyncrl.rollout import EpisodeSegmentCollector, Rollout

GAMMA = 0.9
N_STATES = 5
TARGET = [[1.0, 2.0, 0.0],
          [3.0, -1.0, 2.0],
          [0.5, 4.0, 1.0],
          [2.0, 2.5, -3.0],
          [-1.0, 0.0, 6.0]]
ONLINE = [[0.5, 1.0, 0.0],
          [1.0, 0.0, 2.0],
          [0.0, 1.0, 3.0],
          [2.0, 1.0, 0.0],
          [1.0, 1.0, 1.0]]
ALGOS = ("one-step-q", "one-step-sarsa", "n-step-q")


class TableQ(nn.Module):
    """Q(s_k, .) = table[k] for a one-hot observation of state k (the table is a parameter)."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=torch.float32))

    def forward(self, x):
        return x @ self.table


def onehot(states):
    """float32 one-hot rows for a (nested) list of state indices: [..., N_STATES]."""
    return torch.eye(N_STATES)[torch.tensor(states)]


def make_rollout(states, actions, rewards, terminated=None, truncated=None, final=None, next_actions=None):
    """A Rollout from lists: states [T+1][B], actions/rewards/flags [T][B]; final: [(t, b, state)]."""
    T, B = len(actions), len(actions[0])
    zeros = [[0] * B for _ in range(T)]
    ro = Rollout(obs=onehot(states),
                 actions=torch.tensor(actions, dtype=torch.int64),
                 rewards=torch.tensor(rewards, dtype=torch.float32),
                 terminated=torch.tensor(terminated or zeros, dtype=torch.bool),
                 truncated=torch.tensor(truncated or zeros, dtype=torch.bool))
    if final:
        ro.final_idx = torch.tensor([[t, b] for t, b, _ in final], dtype=torch.int64)
        ro.final_obs = onehot([s for _, _, s in final])
    if next_actions is not None:
        ro.next_actions = torch.tensor(next_actions, dtype=torch.int64)
    return ro


def algo_for(name, **kw):
    return ValueBasedAlgorithm(Config(env="x", algo=name, gamma=GAMMA, **kw))


def spy_targets(monkeypatch):
    """Record (function name, output) of every one_step_targets / n_step_returns call in loss()."""
    seen = []
    for fname in ("one_step_targets", "n_step_returns"):
        real = getattr(vb, fname)

        def spy(*args, _real=real, _name=fname, **kwargs):
            out = _real(*args, **kwargs)
            seen.append((_name, out.detach().clone()))
            return out

        monkeypatch.setattr(vb, fname, spy)
    return seen


def reference_loss(states, actions, y):
    """sum_t (y_t - ONLINE[s_t, a_t])^2, averaged over B, in float64 from the lists."""
    T, B = len(actions), len(actions[0])
    per_env = [sum((y[t][b] - ONLINE[states[t][b]][actions[t][b]]) ** 2 for t in range(T)) for b in range(B)]
    return sum(per_env) / B


# --------------------------------------------------------------------------- target cases
# Each case: algo, rollout kwargs, the hand-computed targets y [T][B].
CASES = {
    # y_t = r_t + 0.9 * max_a TARGET[s_{t+1}]: 1+.9*3, -1+.9*4, .5+.9*2.5, 2+.9*6
    "q_plain_T4": ("one-step-q",
                   dict(states=[[0], [1], [2], [3], [4]], actions=[[0], [2], [1], [0]],
                        rewards=[[1.0], [-1.0], [0.5], [2.0]]),
                   [[3.7], [2.6], [2.75], [7.4]]),
    # col 0 terminates at its last step (y = r, s4 not read: 3 not 3+5.4);
    # col 1 is truncated at its last step and still bootstraps from obs[3] = s0 (1 + .9*2)
    "q_terminal_truncated_B2": ("one-step-q",
                                dict(states=[[0, 3], [1, 2], [2, 1], [4, 0]], actions=[[1, 2], [0, 1], [2, 0]],
                                     rewards=[[1.0, -1.0], [2.0, 0.5], [3.0, 1.0]],
                                     terminated=[[0, 0], [0, 0], [1, 0]], truncated=[[0, 0], [0, 0], [0, 1]]),
                                [[3.7, 2.6], [5.6, 3.2], [3.0, 2.8]]),
    # truncated at t=0 with obs[1] = s1 already the next episode's start: bootstrap from
    # final_obs = s4 (1 + .9*6), not from s1 (would be 1 + .9*3)
    "q_final_obs_mid": ("one-step-q",
                        dict(states=[[0], [1], [2], [3]], actions=[[0], [0], [0]], rewards=[[1.0], [2.0], [3.0]],
                             truncated=[[1], [0], [0]], final=[(0, 0, 4)]),
                        [[6.4], [5.6], [5.25]]),
    # y_t = r_t + 0.9 * TARGET[s_{t+1}, a_{t+1}], last from next_actions:
    # 1+.9*(-1), -1+.9*.5, .5+.9*(-3), 2+.9*0  (Q-learning would give 3.7, 2.6, 2.75, 7.4)
    "sarsa_plain_T4": ("one-step-sarsa",
                       dict(states=[[0], [1], [2], [3], [4]], actions=[[0], [1], [0], [2]],
                            rewards=[[1.0], [-1.0], [0.5], [2.0]], next_actions=[1]),
                       [[0.1], [-0.55], [-2.2], [2.0]]),
    # terminal last step: y = r = 3 (next action 2 in s4 would give 3 + 5.4)
    "sarsa_terminal": ("one-step-sarsa",
                       dict(states=[[0], [1], [2], [4]], actions=[[1], [2], [0]], rewards=[[1.0], [2.0], [3.0]],
                            terminated=[[0], [0], [1]], next_actions=[2]),
                       [[2.8], [2.45], [3.0]]),
    # truncated last step: bootstraps from TARGET[s4, next_action=2] = 6: 3 + 5.4
    "sarsa_truncated": ("one-step-sarsa",
                        dict(states=[[0], [1], [2], [4]], actions=[[1], [2], [0]], rewards=[[1.0], [2.0], [3.0]],
                             truncated=[[0], [0], [1]], next_actions=[2]),
                        [[2.8], [2.45], [8.4]]),
    # R3 = 2+.9*6 = 7.4; R2 = .5+.9*7.4 = 7.16; R1 = -1+.9*7.16 = 5.444; R0 = 1+.9*5.444 = 5.8996
    "nstep_plain_T4": ("n-step-q",
                       dict(states=[[0], [1], [2], [3], [4]], actions=[[0], [2], [1], [0]],
                            rewards=[[1.0], [-1.0], [0.5], [2.0]]),
                       [[5.8996], [5.444], [7.16], [7.4]]),
    # terminated at the end: R3 = 2; R2 = .5+1.8 = 2.3; R1 = -1+2.07 = 1.07; R0 = 1+.963 = 1.963
    "nstep_terminal_T4": ("n-step-q",
                          dict(states=[[0], [1], [2], [3], [4]], actions=[[0], [2], [1], [0]],
                               rewards=[[1.0], [-1.0], [0.5], [2.0]], terminated=[[0], [0], [0], [1]]),
                          [[1.963], [1.07], [2.3], [2.0]]),
    # B=2. col 0: R2 = 3+.9*2.5 = 5.25; R1 = 2+.9*5.25 = 6.725; R0 = 1+.9*6.725 = 7.0525.
    # col 1 truncated after t=0, obs[1] = s3 is the next episode's start, final_obs = s2:
    # R2 = 1+.9*2 = 2.8; R1 = .5+.9*2.8 = 3.02; R0 = -1+.9*4 = 2.6 (not -1+.9*3.02, not -1+.9*2.5)
    "nstep_final_obs_mid_B2": ("n-step-q",
                               dict(states=[[0, 4], [1, 3], [2, 2], [3, 0]], actions=[[0, 1], [1, 0], [2, 2]],
                                    rewards=[[1.0, -1.0], [2.0, 0.5], [3.0, 1.0]],
                                    truncated=[[0, 1], [0, 0], [0, 0]], final=[(0, 1, 2)]),
                               [[7.0525, 2.6], [6.725, 3.02], [5.25, 2.8]]),
    # B=2, col 1 truncated at the last step with final_obs = s2 (obs[2] = s0 is the next start):
    # col 0: R1 = 1+.9*2.5 = 3.25, R0 = 1+.9*3.25 = 3.925; col 1: R1 = -1+.9*4 = 2.6, R0 = 2+.9*2.6 = 4.34
    "nstep_final_obs_last_B2": ("n-step-q",
                                dict(states=[[0, 1], [1, 3], [3, 0]], actions=[[0, 2], [0, 1]],
                                     rewards=[[1.0, 2.0], [1.0, -1.0]], truncated=[[0, 0], [0, 1]],
                                     final=[(1, 1, 2)]),
                                [[3.925, 4.34], [3.25, 2.6]]),
    # vectorised layout, terminal mid-segment (obs[2] = s4 starts a new episode):
    # R2 = 3+.9*2.5 = 5.25; R1 = 2 (no bootstrap); R0 = 1+.9*2 = 2.8
    "nstep_terminal_mid": ("n-step-q",
                           dict(states=[[0], [1], [4], [3]], actions=[[0], [0], [0]], rewards=[[1.0], [2.0], [3.0]],
                                terminated=[[0], [1], [0]]),
                           [[2.8], [2.0], [5.25]]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_targets_and_loss(monkeypatch, case):
    """loss() builds exactly the hand-computed targets y and returns sum_t (y_t - Q)^2 averaged over B."""
    name, kw, y = CASES[case]
    seen = spy_targets(monkeypatch)
    loss, stats = algo_for(name).loss(TableQ(ONLINE), make_rollout(**kw), TableQ(TARGET))
    expected_fn = "n_step_returns" if name == "n-step-q" else "one_step_targets"
    assert [fn for fn, _ in seen] == [expected_fn]
    torch.testing.assert_close(seen[0][1], torch.tensor(y), rtol=0, atol=1e-5)
    assert loss.item() == pytest.approx(reference_loss(kw["states"], kw["actions"], y), abs=1e-4)
    assert set(stats) == set(ValueBasedAlgorithm.stat_keys)
    assert stats["loss/q"].item() == pytest.approx(loss.item())


def test_loss_hand_computed_one_step_q():
    """one-step Q, T=4: (3.7-.5)^2 + (2.6-2)^2 + (2.75-1)^2 + (7.4-2)^2 = 42.8225; q/taken = 5.5/4."""
    _, kw, _ = CASES["q_plain_T4"]
    loss, stats = algo_for("one-step-q").loss(TableQ(ONLINE), make_rollout(**kw), TableQ(TARGET))
    assert loss.item() == pytest.approx(10.24 + 0.36 + 3.0625 + 29.16, abs=1e-4)
    assert stats["q/taken"].item() == pytest.approx((0.5 + 2.0 + 1.0 + 2.0) / 4, abs=1e-6)


def test_loss_hand_computed_averages_over_envs():
    """one-step Q, B=2: col sums 7.29+21.16+0 = 28.45 and 6.76+4.84+3.24 = 14.84, mean 21.645."""
    _, kw, _ = CASES["q_terminal_truncated_B2"]
    loss, _ = algo_for("one-step-q").loss(TableQ(ONLINE), make_rollout(**kw), TableQ(TARGET))
    assert loss.item() == pytest.approx((28.45 + 14.84) / 2, abs=1e-4)


def test_loss_hand_computed_n_step():
    """n-step Q, T=4: (5.8996-.5)^2 + (5.444-2)^2 + (7.16-1)^2 + (7.4-2)^2."""
    _, kw, _ = CASES["nstep_plain_T4"]
    loss, _ = algo_for("n-step-q").loss(TableQ(ONLINE), make_rollout(**kw), TableQ(TARGET))
    assert loss.item() == pytest.approx(5.3996 ** 2 + 3.444 ** 2 + 6.16 ** 2 + 5.4 ** 2, abs=1e-3)


def test_online_gradient_hand_computed():
    """d loss / d ONLINE[s_t, a_t] = -2 (y_t - Q) at the taken entries, 0 elsewhere."""
    _, kw, _ = CASES["q_plain_T4"]
    model = TableQ(ONLINE)
    loss, _ = algo_for("one-step-q").loss(model, make_rollout(**kw), TableQ(TARGET))
    loss.backward()
    expected = torch.zeros(N_STATES, 3)
    expected[0, 0], expected[1, 2], expected[2, 1], expected[3, 0] = -6.4, -1.2, -3.5, -10.8
    torch.testing.assert_close(model.table.grad, expected, rtol=0, atol=1e-4)


def test_sarsa_with_final_obs_is_refused():
    """one-step SARSA cannot bootstrap a truncation whose final observation has no chosen action."""
    _, kw, _ = CASES["q_final_obs_mid"]
    with pytest.raises(ValueError, match="one-step-sarsa"):
        algo_for("one-step-sarsa").loss(TableQ(ONLINE), make_rollout(**kw, next_actions=[0]), TableQ(TARGET))


def test_n_step_mid_segment_truncation_without_final_obs(monkeypatch):
    """n-step Q: truncated after t=0 with no final_obs -> R0 = 1 + .9*max Q-(obs[1]=s1) = 3.7."""
    # R2 = 3 + .9*2.5 = 5.25; R1 = 2 + .9*5.25 = 6.725; R0 cut at the truncation: 1 + .9*3 = 3.7
    seen = spy_targets(monkeypatch)
    ro = make_rollout(states=[[0], [1], [2], [3]], actions=[[0], [0], [0]], rewards=[[1.0], [2.0], [3.0]],
                      truncated=[[1], [0], [0]])
    algo_for("n-step-q").loss(TableQ(ONLINE), ro, TableQ(TARGET))
    torch.testing.assert_close(seen[0][1], torch.tensor([[3.7], [6.725], [5.25]]), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- target network
@pytest.mark.parametrize("case", ["q_terminal_truncated_B2", "sarsa_plain_T4", "nstep_final_obs_mid_B2"])
def test_no_gradient_into_target_table(case):
    """After backward, the target's parameters have grad None and are unchanged; the model's have grads."""
    name, kw, _ = CASES[case]
    model, target = TableQ(ONLINE), TableQ(TARGET)
    loss, _ = algo_for(name).loss(model, make_rollout(**kw), target)
    loss.backward()
    assert target.table.grad is None
    assert torch.equal(target.table.detach(), torch.tensor(TARGET))
    assert model.table.grad is not None and torch.count_nonzero(model.table.grad) > 0


@pytest.mark.parametrize("name", ALGOS)
def test_no_gradient_into_target_qnetwork(name):
    """With real QNetworks (built by the algorithm), no target parameter gets a gradient or changes."""
    torch.manual_seed(0)
    algo = algo_for(name, hidden=[8])
    obs_space, act_space = gym.spaces.Box(-1.0, 1.0, (N_STATES,), np.float32), gym.spaces.Discrete(3)
    model, target = algo.build_model(obs_space, act_space), algo.build_model(obs_space, act_space)
    assert isinstance(model, QNetwork)
    before = [p.detach().clone() for p in target.parameters()]
    ro = make_rollout(states=[[0, 3], [1, 2], [2, 1], [4, 0]], actions=[[1, 2], [0, 1], [2, 0]],
                      rewards=[[1.0, -1.0], [2.0, 0.5], [3.0, 1.0]], next_actions=[0, 1])
    loss, _ = algo.loss(model, ro, target)
    loss.backward()
    assert all(p.grad is None for p in target.parameters())
    assert all(torch.equal(p.detach(), b) for p, b in zip(target.parameters(), before))
    assert all(p.grad is not None for p in model.parameters())
    assert any(torch.count_nonzero(p.grad) > 0 for p in model.parameters())


# --------------------------------------------------------------------------- crossed_period
@pytest.mark.parametrize("T,used,period,expected", [
    (1003, 5, 1000, True),    # 998 -> 1003 crosses 1000
    (1000, 5, 1000, True),    # 995 -> 1000 lands exactly on the multiple
    (1005, 5, 1000, False),   # 1000 -> 1005: the multiple was counted by the commit that reached it
    (999, 5, 1000, False),    # 994 -> 999: not yet
    (5, 5, 1000, False),      # 0 -> 5: step 0 is not a crossing
    (2500, 1600, 1000, True),  # 900 -> 2500 spans 1000 and 2000: one True
    (1000, 0, 1000, False),   # an empty commit never crosses
    (7, 1, 1, True),          # period 1: every step
])
def test_crossed_period_hand_cases(T, used, period, expected):
    """crossed_period is True iff (T - used, T] contains a multiple of period."""
    assert crossed_period(T, used, period) is expected


def test_crossed_period_once_per_multiple_simulation():
    """Random segment lengths committed from 0 to 100_000 with period 1000: exactly 100 crossings."""
    rng = np.random.default_rng(0)
    T, target, period = 0, 100_000, 1000
    crossings = []
    while T < target:
        used = min(int(rng.integers(1, 21)), target - T)
        T += used
        if crossed_period(T, used, period):
            crossings.append(T)
    assert T == target
    assert len(crossings) == 100
    # each crossing is the first commit at or past its multiple
    assert [c // period for c in crossings] == list(range(1, 101))
    assert all(c - c // period * period < 20 for c in crossings)


# --------------------------------------------------------------------------- epsilon
def test_epsilon_at_schedule():
    """Linear from 1 at step 0 to final at anneal_steps, then constant; anneal_steps=0 means final."""
    assert epsilon_at(0, 0.1, 100) == pytest.approx(1.0)
    assert epsilon_at(50, 0.1, 100) == pytest.approx(0.55)
    assert epsilon_at(100, 0.1, 100) == pytest.approx(0.1)
    assert epsilon_at(250, 0.1, 100) == pytest.approx(0.1)
    assert epsilon_at(0, 0.1, 0) == pytest.approx(0.1)
    assert epsilon_at(7, 0.5, 0) == pytest.approx(0.5)
    # array of finals at a quarter: 1 + (f - 1) * 0.25
    np.testing.assert_allclose(epsilon_at(25, np.array([0.1, 0.01, 0.5]), 100), [0.775, 0.7525, 0.875])
    np.testing.assert_allclose(epsilon_at(10**9, np.array([0.1, 0.01, 0.5]), 100), [0.1, 0.01, 0.5])


TABLE_Q = np.array([[0.0, 5.0, 1.0], [2.0, 0.0, 1.0], [0.0, 1.0, 3.0]], dtype=np.float32)  # argmax 1, 0, 2


def table_q_of(obs):
    return obs @ TABLE_Q


def test_epsilon_greedy_at_step_updates_epsilon():
    """EpsilonGreedy starts at 1 and at_step moves .epsilon along the schedule."""
    pol = EpsilonGreedy(table_q_of, 3, np.random.default_rng(0), np.array([0.1, 0.5]), 100)
    np.testing.assert_allclose(pol.epsilon, [1.0, 1.0])
    pol.at_step(50)
    np.testing.assert_allclose(pol.epsilon, [0.55, 0.75])
    pol.at_step(1000)
    np.testing.assert_allclose(pol.epsilon, [0.1, 0.5])


def test_epsilon_zero_is_greedy():
    """With epsilon 0 every action is the argmax of the Q values, row by row."""
    pol = EpsilonGreedy(table_q_of, 3, np.random.default_rng(0), np.zeros(3), 0)
    obs = np.eye(3, dtype=np.float32)
    for _ in range(200):
        np.testing.assert_array_equal(pol(obs), [1, 0, 2])


def test_epsilon_one_is_uniform():
    """With epsilon 1 the actions are uniform over all 3 (chi-square over 20k calls, seed 0)."""
    pol = EpsilonGreedy(table_q_of, 3, np.random.default_rng(0), np.ones(1), 0)
    obs = np.eye(3, dtype=np.float32)[:1]   # greedy action would be 1
    n = 20_000
    counts = np.bincount([int(pol(obs)[0]) for _ in range(n)], minlength=3)
    chi2 = (((counts - n / 3) ** 2) / (n / 3)).sum()
    assert chi2 < 20.0, counts   # df = 2: P(chi2 > 20) ~ 5e-5


def test_epsilon_half_mixes():
    """With epsilon 0.5 and 3 actions the greedy action has probability 0.5 + 0.5/3 = 2/3."""
    pol = EpsilonGreedy(table_q_of, 3, np.random.default_rng(1), np.full(10_000, 0.5), 0)
    obs = np.tile(np.eye(3, dtype=np.float32)[:1], (10_000, 1))
    freq = np.bincount(pol(obs), minlength=3) / 10_000
    np.testing.assert_allclose(freq, [1 / 6, 2 / 3, 1 / 6], atol=0.02)


# --------------------------------------------------------------------------- final epsilons
def test_draw_final_epsilons_frequencies():
    """30k draws of the paper's distribution land within 0.01 of 0.4 / 0.3 / 0.3."""
    eps = draw_final_epsilons(np.random.default_rng(0), 30_000, [0.1, 0.01, 0.5], [0.4, 0.3, 0.3])
    assert eps.shape == (30_000,)
    assert set(np.unique(eps)) == {0.1, 0.01, 0.5}
    for value, p in [(0.1, 0.4), (0.01, 0.3), (0.5, 0.3)]:
        assert np.mean(eps == value) == pytest.approx(p, abs=0.01)


def qnet_algo(**kw):
    algo = algo_for("one-step-q", hidden=[8], **kw)
    torch.manual_seed(0)
    model = algo.build_model(gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Discrete(3))
    return algo, model


def test_make_policy_draws_finals_from_configured_set():
    """make_policy's per-worker final epsilon is always one of the configured values; all appear."""
    algo, model = qnet_algo()
    drawn = set()
    for seed in range(60):
        pol = algo.make_policy(model, np.random.default_rng(seed), n_envs=1)
        assert isinstance(pol, EpsilonGreedy)
        assert pol.finals.shape == (1,)
        drawn.add(float(pol.finals[0]))
        np.testing.assert_allclose(pol.epsilon, [1.0])   # step 0 of the anneal
    assert drawn == {0.1, 0.01, 0.5}
    algo2, model2 = qnet_algo(epsilon_finals=[0.2, 0.05], epsilon_probs=[0.5, 0.5])
    drawn2 = {float(algo2.make_policy(model2, np.random.default_rng(s), n_envs=1).finals[0]) for s in range(40)}
    assert drawn2 == {0.2, 0.05}
    assert algo.make_policy(model, np.random.default_rng(0), n_envs=4).finals.shape == (4,)


def test_make_policy_greedy_matches_model_argmax():
    """The greedy policy and an annealed epsilon-0 policy both act argmax_a Q(s, a; model)."""
    algo, model = qnet_algo(epsilon_finals=[0.0], epsilon_probs=[1.0], epsilon_steps=10)
    obs = np.random.default_rng(0).uniform(-1, 1, (50, 4)).astype(np.float32)
    with torch.no_grad():
        best = model(torch.from_numpy(obs)).argmax(-1).numpy()
    np.testing.assert_array_equal(algo.make_policy(model, np.random.default_rng(0), greedy=True)(obs), best)
    pol = algo.make_policy(model, np.random.default_rng(0), n_envs=50)
    pol.at_step(10)
    np.testing.assert_allclose(pol.epsilon, np.zeros(50))
    np.testing.assert_array_equal(pol(obs), best)


# --------------------------------------------------------------------------- algorithm flags
@pytest.mark.parametrize("name,seg,next_action", [
    ("one-step-q", 3, False), ("one-step-sarsa", 3, True), ("n-step-q", 7, False)])
def test_segment_length_and_flags(name, seg, next_action):
    """One-step methods use async_update steps per segment, n-step t_max; only SARSA needs a_T."""
    algo = ValueBasedAlgorithm(Config(env="x", algo=name, t_max=7, async_update=3))
    assert algo.segment_length == seg
    assert algo.needs_next_action is next_action
    assert algo.uses_target_network is True


# --------------------------------------------------------------------------- SARSA collector
class CounterEnv(gym.Env):
    """obs = [steps taken in the episode]; reward = action; terminates after 7 steps."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.t = 0
        self.executed = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.executed.append(int(action))
        self.t += 1
        return np.array([float(self.t)], dtype=np.float32), float(action), self.t >= 7, False, {}


class ScriptedPolicy:
    """Records the observation of every call and returns the next scripted action."""

    def __init__(self, script):
        self.script, self.seen = list(script), []

    def __call__(self, obs):
        self.seen.append(float(obs[0, 0]))
        return np.array([self.script[len(self.seen) - 1]])


def test_collector_next_action_is_carried_over():
    """next_actions of a segment is executed first in the next one without a new policy call;
    after the episode ends the next segment starts with a fresh call."""
    env = CounterEnv()
    col = EpisodeSegmentCollector(env, 3, seed=0, next_action=True)
    pol = ScriptedPolicy([1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1])
    segs = []
    for _ in range(4):
        ro, fin = col.collect(pol, 3)
        segs.append(dict(obs=ro.obs[:, 0, 0].tolist(), actions=ro.actions[:, 0].tolist(),
                         next=ro.next_actions.tolist(), term=ro.terminated[:, 0].tolist(), fin=fin))
    # segment 1: calls on 0, 1, 2 and a_T on 3
    assert segs[0]["obs"] == [0, 1, 2, 3] and segs[0]["actions"] == [1, 0, 0] and segs[0]["next"] == [1]
    # segment 2 executes the pending a_T = 1 first: calls only on 4, 5 and a_T on 6
    assert segs[1]["obs"] == [3, 4, 5, 6] and segs[1]["actions"] == [1, 1, 0] and segs[1]["next"] == [1]
    # segment 3: the pending 1 ends the episode (7 steps); a_T is still chosen in the terminal obs
    assert segs[2]["obs"] == [6, 7] and segs[2]["actions"] == [1] and segs[2]["term"] == [True]
    assert segs[2]["next"] == [0] and segs[2]["fin"] == (4.0, 7)
    # segment 4: a new episode, whose first action comes from a fresh call on obs 0
    assert segs[3]["obs"] == [0, 1, 2, 3] and segs[3]["actions"] == [1, 1, 0] and segs[3]["next"] == [1]
    assert pol.seen == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]
    assert env.executed == [1, 0, 0, 1, 1, 0, 1, 1, 1, 0]
    for a, b in [(0, 1), (1, 2)]:
        assert segs[a]["next"][0] == segs[b]["actions"][0]


def test_collector_without_next_action():
    """Without next_action mode there is no a_T call and next_actions is None."""
    col = EpisodeSegmentCollector(CounterEnv(), 3, seed=0, next_action=False)
    pol = ScriptedPolicy([1, 0, 0, 1, 1, 0])
    ro1, _ = col.collect(pol, 3)
    assert ro1.next_actions is None
    ro2, _ = col.collect(pol, 3)
    assert ro2.actions[:, 0].tolist() == [1, 1, 0]
    assert pol.seen == [0, 1, 2, 3, 4, 5]


# --------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("name", ALGOS)
def test_check_spaces_rejects_box_actions(name):
    """A Box action space is an EnvError naming value-based methods and Discrete actions."""
    algo = algo_for(name)
    obs = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    with pytest.raises(EnvError) as info:
        algo.check_spaces(obs, gym.spaces.Box(-2.0, 2.0, (1,), np.float32), "Pendulum-v1")
    msg = str(info.value)
    assert "value-based" in msg and "Discrete" in msg and "Pendulum-v1" in msg
    algo.check_spaces(obs, gym.spaces.Discrete(2), "CartPole-v1")   # accepted
