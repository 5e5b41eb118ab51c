"""Exact tests for VectorSegmentCollector (the sync executor's [T, B] rollouts) on real
Gymnasium vector envs, built as the executor builds them (make_vector_env).

The toy envs (tests/toy_envs_vec.py) make every number hand-computable: CountEnv's
observation is [i, e] (step index within the episode, episodes this env started before)
and step i pays reward i; action 2 terminates, Count-v0 cuts an episode after 3 steps.
Segments are written below as one row per environment. The main expectations are checked
on every vector env kind that steps any env (inline SyncVectorEnv, subprocess
AsyncVectorEnv, threads ThreadedVectorEnv).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from asyncrl.envs import EnvFactory
from asyncrl.vector import make_vector_env
from asyncrl.rollout import VectorSegmentCollector


def make_collector(env_id: str, B: int, t_max: int, seed: int = 0, next_action: bool = False,
                   mode: str = "inline"):
    venv = make_vector_env(EnvFactory(env_id), B, mode)
    return venv, VectorSegmentCollector(venv, t_max, seed, next_action=next_action)


class Scripted:
    """A policy that returns fixed action rows in order and records what it was shown."""

    def __init__(self, rows):
        self.rows = [np.asarray(r, dtype=np.int64) for r in rows]
        self.seen: list[np.ndarray] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.seen.append(obs.copy())
        return self.rows[len(self.seen) - 1]


def by_env(x: torch.Tensor) -> list:
    """[T(+1), B, ...] -> nested lists, one per environment (as the docstrings write them)."""
    return x.transpose(0, 1).tolist()


# --------------------------------------------------------------------------- truncation
# Count-v0, B = 2, t_max = 4. env 0 always continues; env 1 ends its first episode with
# action 2 at t = 1. Segment 1 (4 steps), then segment 2 with n = 2:
#
#   seg 1   t:    0      1      2          3    | obs[4]
#   env 0 obs   [0,0]  [1,0]  [2,0]      [0,1]  | [1,1]    t=2: cut after 3 steps (r 1+2+3)
#         r       1      2      3 (trunc)  1                  final_obs [3,0] at (2, 0)
#   env 1 obs   [0,0]  [1,0]  [0,1]      [1,1]  | [2,1]    t=1: action 2, terminal (r 1+2)
#         r       1      2 (term) 1        2
#
#   seg 2   t:    0           1            | obs[2]
#   env 0 obs   [1,1]       [2,1]          | [0,2]     t=1: cut, final_obs [3,1] at (1, 0)
#         r       2           3 (trunc)
#   env 1 obs   [2,1]       [0,2]          | [1,2]     t=0: cut, final_obs [3,1] at (0, 1)
#         r       3 (trunc)   1
SEG1_ACTIONS = [[0, 0], [0, 2], [0, 0], [1, 1]]
SEG2_ACTIONS = [[1, 0], [0, 1]]


@pytest.fixture(params=["inline", "subprocess", "threads", "split"])
def two_segments(request):
    """Both segments, collected from an inline (SyncVectorEnv), a subprocess (AsyncVectorEnv),
    a threads (ThreadedVectorEnv) or a split (SplitVectorEnv) vector env: the collector must
    see the same thing from all."""
    venv, col = make_collector("toy_envs_vec:Count-v0", B=2, t_max=4, mode=request.param)
    policy = Scripted(SEG1_ACTIONS + SEG2_ACTIONS)
    ro1, fin1 = col.collect(policy)
    seg1 = {k: getattr(ro1, k).clone() if getattr(ro1, k) is not None else None
            for k in ("obs", "actions", "rewards", "terminated", "truncated", "final_obs", "final_idx",
                      "next_actions", "final_next_actions")}
    ro2, fin2 = col.collect(policy, 2)
    yield seg1, fin1, ro2, fin2, policy
    venv.close()


def test_segment_shapes_and_dtypes(two_segments):
    """A full segment is obs [T+1, B, D] float32, actions [T, B] int64, rewards [T, B] float32,
    terminated/truncated [T, B] bool; collect(policy, n) with n < t_max gives n rows."""
    seg1, _, ro2, _, _ = two_segments
    assert seg1["obs"].shape == (5, 2, 2) and seg1["obs"].dtype == torch.float32
    assert seg1["actions"].shape == (4, 2) and seg1["actions"].dtype == torch.int64
    assert seg1["rewards"].shape == (4, 2) and seg1["rewards"].dtype == torch.float32
    for k in ("terminated", "truncated"):
        assert seg1[k].shape == (4, 2) and seg1[k].dtype == torch.bool
    assert ro2.obs.shape == (3, 2, 2) and ro2.actions.shape == (2, 2) and ro2.rewards.shape == (2, 2)
    assert ro2.terminated.shape == ro2.truncated.shape == (2, 2)
    assert ro2.length == 2 and ro2.num_steps == 4


def test_first_segment_is_exact(two_segments):
    """Observations (autoreset in the same step), actions, rewards, and terminated vs
    truncated kept apart, exactly as the table above."""
    seg1, _, _, _, policy = two_segments
    assert by_env(seg1["obs"]) == [[[0, 0], [1, 0], [2, 0], [0, 1], [1, 1]],
                                   [[0, 0], [1, 0], [0, 1], [1, 1], [2, 1]]]
    assert seg1["actions"].tolist() == SEG1_ACTIONS
    assert by_env(seg1["rewards"]) == [[1, 2, 3, 1], [1, 2, 1, 2]]
    assert by_env(seg1["terminated"]) == [[False, False, False, False], [False, True, False, False]]
    assert by_env(seg1["truncated"]) == [[False, False, True, False], [False, False, False, False]]
    # the policy saw obs[t] at every step t, as [B, D] float32
    assert len(policy.seen) == 6
    for t in range(4):
        assert policy.seen[t].dtype == np.float32 and policy.seen[t].shape == (2, 2)
        assert np.array_equal(policy.seen[t], seg1["obs"][t].numpy())


def test_truncation_keeps_the_true_final_obs_and_a_terminal_step_records_none(two_segments):
    """At the cut (t=2, env 0) obs[3] is the NEXT episode's first observation [0, 1] while
    final_obs holds the true final one [3, 0] at final_idx (2, 0); env 1's terminal step
    (t=1) records no final observation."""
    seg1, _, _, _, _ = two_segments
    assert seg1["obs"][3, 0].tolist() == [0, 1]
    assert seg1["final_obs"].tolist() == [[3, 0]]
    assert seg1["final_idx"].tolist() == [[2, 0]]
    assert seg1["final_obs"].dtype == torch.float32 and seg1["final_idx"].dtype == torch.int64
    assert seg1["next_actions"] is None and seg1["final_next_actions"] is None


def test_finished_episodes_are_reported_with_position_return_and_length(two_segments):
    """Episodes that end are reported as (t, env, return, length): env 1's terminal episode
    (1 + 2 in 2 steps) at t=1, env 0's cut one (1 + 2 + 3 in 3 steps) at t=2; in segment 2
    the returns count the steps taken in segment 1 too."""
    _, fin1, _, fin2, _ = two_segments
    assert fin1 == [(1, 1, 3.0, 2), (2, 0, 6.0, 3)]
    assert fin2 == [(0, 1, 6.0, 3), (1, 0, 6.0, 3)]


def test_next_segment_continues_from_the_last_observation(two_segments):
    """Segment 2's obs[0] is segment 1's obs[T] (no reset between segments); two cuts in one
    segment are both recorded, in step order, with their (t, b) positions."""
    seg1, _, ro2, _, policy = two_segments
    assert torch.equal(ro2.obs[0], seg1["obs"][4])
    assert by_env(ro2.obs) == [[[1, 1], [2, 1], [0, 2]], [[2, 1], [0, 2], [1, 2]]]
    assert ro2.actions.tolist() == SEG2_ACTIONS
    assert by_env(ro2.rewards) == [[2, 3], [3, 1]]
    assert by_env(ro2.truncated) == [[False, True], [True, False]]
    assert not ro2.terminated.any()
    assert ro2.final_obs.tolist() == [[3, 1], [3, 1]]
    assert ro2.final_idx.tolist() == [[0, 1], [1, 0]]
    assert np.array_equal(policy.seen[4], seg1["obs"][4].numpy())


def test_a_segment_without_episode_ends_has_no_final_obs():
    """No cut in the segment: final_obs and final_idx are None (not empty tensors)."""
    venv, col = make_collector("toy_envs_vec:Count-v0", B=3, t_max=2)
    ro, fin = col.collect(Scripted([[0, 1, 0], [1, 1, 0]]))
    assert ro.final_obs is None and ro.final_idx is None and fin == []
    assert by_env(ro.rewards) == [[1, 2]] * 3
    venv.close()


def test_terminal_state_at_a_fixed_step():
    """CountTerm-v0 terminates when i reaches 3: terminated at t=2 in every env, never
    truncated, no final_obs; obs[3] is the next episode's first observation."""
    venv, col = make_collector("toy_envs_vec:CountTerm-v0", B=2, t_max=4)
    ro, fin = col.collect(Scripted([[0, 1]] * 4))
    assert by_env(ro.terminated) == [[False, False, True, False]] * 2
    assert not ro.truncated.any()
    assert ro.final_obs is None and ro.final_idx is None
    assert by_env(ro.obs) == [[[0, 0], [1, 0], [2, 0], [0, 1], [1, 1]]] * 2
    assert fin == [(2, 0, 6.0, 3), (2, 1, 6.0, 3)]
    venv.close()


def test_terminated_and_truncated_in_the_same_step_is_terminal():
    """CountBoth-v0 terminates at i = 3, which is also its time limit: both flags are set,
    the step is terminal (no final_obs to bootstrap from) and the episode is reported once."""
    venv, col = make_collector("toy_envs_vec:CountBoth-v0", B=2, t_max=3)
    ro, fin = col.collect(Scripted([[0, 0]] * 3))
    assert by_env(ro.terminated) == [[False, False, True]] * 2
    assert by_env(ro.truncated) == [[False, False, True]] * 2
    assert ro.final_obs is None and ro.final_idx is None
    assert fin == [(2, 0, 6.0, 3), (2, 1, 6.0, 3)]
    venv.close()


def test_environment_b_is_seeded_with_seed_plus_b():
    """The first reset seeds env b with seed + b (the sync executor's determinism contract):
    CartPole's first observations equal single envs reset with those seeds."""
    venv, col = make_collector("CartPole-v1", B=3, t_max=2, seed=7)
    ro, _ = col.collect(Scripted([[0, 1, 0], [1, 1, 0]]))
    for b in range(3):
        first, _ = gym.make("CartPole-v1").reset(seed=7 + b)
        assert np.array_equal(ro.obs[0, b].numpy(), first)
    venv.close()


# --------------------------------------------------------------------------- SARSA mode
class CallIndexed:
    """A policy whose action for env b on its k-th call is (k + b) % 2 (never 2, so
    episodes end only by the time limit), except the override rows given for some calls.
    Neighbouring calls give different actions, so using the wrong call's action shows."""

    def __init__(self, overrides=None):
        self.overrides = overrides or {}
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        k = len(self.calls)
        a = self.overrides.get(k, (k + np.arange(obs.shape[0])) % 2)
        a = np.asarray(a, dtype=np.int64)
        self.calls.append((obs.copy(), a.copy()))
        return a

    def action_for(self, b: int, obs_row) -> int:
        """The action this policy returned for env b when it was shown `obs_row` there
        (the row must have been shown exactly once)."""
        hits = [a[b] for o, a in self.calls if o[b].tolist() == list(obs_row)]
        assert len(hits) == 1, (b, obs_row, hits)
        return int(hits[0])


@pytest.mark.parametrize("mode", ["inline", "subprocess", "threads", "split"])
def test_sarsa_mode_next_actions_and_final_next_actions(mode):
    """next_action=True (SARSA), Count-v0, B=2, t_max=4; env 1 ends its first episode at t=0
    with action 2. Per final observation, final_next_actions holds what the policy returned
    for that final observation (one entry per final_obs, none for the terminal step);
    next_actions is the policy's action in obs[T], and it is the action executed first in
    the next segment (the policy is not asked again in obs[0]).

        seg 1  t:   0        1      2          3          | obs[4]
        env 0     [0,0]    [1,0]  [2,0]      [0,1]        | [1,1]   cut at t=2, final [3,0]
        env 1     [0,0](2) [0,1]  [1,1]      [2,1]        | [0,2]   terminal at t=0; cut at t=3, final [3,1]
    """
    venv, col = make_collector("toy_envs_vec:Count-v0", B=2, t_max=4, next_action=True, mode=mode)
    policy = CallIndexed({0: [0, 2]})
    ro, fin = col.collect(policy)
    assert fin == [(0, 1, 1.0, 1), (2, 0, 6.0, 3), (3, 1, 6.0, 3)]
    assert ro.final_idx.tolist() == [[2, 0], [3, 1]]
    assert ro.final_obs.tolist() == [[3, 0], [3, 1]]
    assert ro.final_next_actions.shape == (2,) and ro.final_next_actions.dtype == torch.int64
    expected = [policy.action_for(0, [3, 0]), policy.action_for(1, [3, 1])]
    assert ro.final_next_actions.tolist() == expected
    # by the call order (t0, t1, t2, final@t2, t3, final@t3, next): calls 3 and 5
    assert expected == [(3 + 0) % 2, (5 + 1) % 2] == [1, 0]
    # next_actions: the policy's last call, on obs[T]
    last_obs, last_a = policy.calls[-1]
    assert len(policy.calls) == 7
    assert np.array_equal(last_obs, ro.obs[4].numpy()) and ro.obs[4].tolist() == [[1, 1], [0, 2]]
    assert ro.next_actions.tolist() == last_a.tolist() == [0, 1]
    pending = ro.next_actions.clone()

    ro2, fin2 = col.collect(policy)
    assert torch.equal(ro2.actions[0], pending)                  # a_T executed first
    assert np.array_equal(policy.calls[7][0], ro2.obs[1].numpy())  # no fresh choice in obs[0]
    # seg 2: env 0 [1,1] -> [2,1] -> cut at t=1 (final [3,1]); env 1 [0,2] -> [1,2] -> [2,2] -> cut at t=2
    assert ro2.final_idx.tolist() == [[1, 0], [2, 1]]
    assert ro2.final_obs.tolist() == [[3, 1], [3, 2]]
    assert ro2.final_next_actions.tolist() == [policy.action_for(0, [3, 1]), policy.action_for(1, [3, 2])]
    assert ro2.next_actions.tolist() == policy.calls[-1][1].tolist()
    assert fin2 == [(1, 0, 6.0, 3), (2, 1, 6.0, 3)]
    venv.close()


def test_sarsa_mode_without_cuts_has_no_final_next_actions():
    """next_action=True but no truncation in the segment: next_actions is set,
    final_next_actions (and final_obs) are None."""
    venv, col = make_collector("toy_envs_vec:Count-v0", B=2, t_max=2, next_action=True)
    policy = CallIndexed()
    ro, _ = col.collect(policy)
    assert ro.final_obs is None and ro.final_next_actions is None
    assert ro.next_actions.tolist() == [0, 1]        # third call: (2 + b) % 2
    venv.close()


# --------------------------------------------------------------------------- Discrete observations
def test_discrete_observations_are_one_hot():
    """toy_envs:Chain-v0 (5 states, Discrete observations): rows are one-hot, D = 5. Env 0
    walks right and reaches the terminal end at t=3 (reward 1, 4 steps), then restarts at 0;
    env 1 walks 1, 0, 1, 2, 3 and never finishes."""
    venv, col = make_collector("toy_envs:Chain-v0", B=2, t_max=5)
    ro, fin = col.collect(Scripted([[1, 1], [1, 0], [1, 1], [1, 1], [1, 1]]))
    eye = torch.eye(5)
    assert ro.obs.shape == (6, 2, 5)
    assert torch.equal(ro.obs[:, 0], eye[[0, 1, 2, 3, 0, 1]])
    assert torch.equal(ro.obs[:, 1], eye[[0, 1, 0, 1, 2, 3]])
    assert by_env(ro.rewards) == [[0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]
    assert by_env(ro.terminated) == [[False, False, False, True, False], [False] * 5]
    assert not ro.truncated.any() and ro.final_obs is None
    assert fin == [(3, 0, 1.0, 4)]
    # the next segment starts from the last one-hot rows; env 1 reaches the end (and restarts)
    ro2, fin2 = col.collect(Scripted([[1, 1]] * 5), 1)
    assert ro2.obs.shape == (2, 2, 5)
    assert torch.equal(ro2.obs[0], eye[[1, 3]]) and torch.equal(ro2.obs[1], eye[[2, 0]])
    assert ro2.terminated.tolist() == [[False, True]] and fin2 == [(0, 1, 1.0, 6)]
    venv.close()
