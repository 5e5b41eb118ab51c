"""The sync executor's answer to a restarted env subprocess (executors/sync.py: leave_out,
rollout_columns): the columns of the restarted environments are dropped from that
segment's rollout, every other field follows (final observations renumbered), and the
episode the restart cut is not reported as finished."""
from __future__ import annotations

import torch

from asyncrl.executors.sync import leave_out, rollout_columns
from asyncrl.rollout import Rollout

T, B, D = 4, 3, 2


def rollout(recurrent: bool = True) -> Rollout:
    obs = torch.arange((T + 1) * B * D, dtype=torch.float32).view(T + 1, B, D)
    return Rollout(obs, torch.arange(T * B).view(T, B), torch.arange(T * B, dtype=torch.float32).view(T, B),
                   torch.zeros(T, B, dtype=torch.bool), torch.eye(T, B, dtype=torch.bool),
                   final_obs=torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]),
                   final_idx=torch.tensor([[0, 0], [1, 1], [2, 2]]),
                   next_actions=torch.tensor([7, 8, 9]), final_next_actions=torch.tensor([4, 5, 6]),
                   state0=(torch.arange(B * 2.0).view(B, 2), -torch.arange(B * 2.0).view(B, 2)) if recurrent else None,
                   starts=torch.ones(T + 1, B, dtype=torch.bool) if recurrent else None, tape=object())


def test_rollout_columns_keeps_the_chosen_envs_and_renumbers_their_final_observations():
    ro = rollout()
    out = rollout_columns(ro, [0, 2])
    assert torch.equal(out.obs, ro.obs[:, [0, 2]]) and torch.equal(out.actions, ro.actions[:, [0, 2]])
    assert torch.equal(out.rewards, ro.rewards[:, [0, 2]]) and out.num_steps == T * 2
    assert torch.equal(out.truncated, ro.truncated[:, [0, 2]])
    assert torch.equal(out.final_obs, torch.tensor([[1.0, 1.0], [3.0, 3.0]]))
    assert out.final_idx.tolist() == [[0, 0], [2, 1]]          # env 2 is column 1 now
    assert out.final_next_actions.tolist() == [4, 6] and out.next_actions.tolist() == [7, 9]
    assert torch.equal(out.state0[0], ro.state0[0][[0, 2]]) and torch.equal(out.state0[1], ro.state0[1][[0, 2]])
    assert out.starts.shape == (T + 1, 2) and out.tape is None
    assert ro.final_idx.tolist() == [[0, 0], [1, 1], [2, 2]]   # the collector's buffers untouched
    only1 = rollout_columns(rollout(recurrent=False), [1])
    assert only1.final_idx.tolist() == [[1, 0]] and only1.state0 is None and only1.starts is None
    none = rollout_columns(rollout(), [0])
    assert none.final_obs.tolist() == [[1.0, 1.0]]
    assert rollout_columns(rollout(), [1]).final_next_actions.tolist() == [5]


def test_leave_out_drops_the_restarted_envs_and_the_episodes_the_restart_cut():
    """Env 1 restarted at the segment's step 2 (vector env step 12, the segment began at 10):
    column 1 goes; its episode reported as finished at t=2 was the cut and goes; its episode
    that really ended at t=0 stays, as do env 0's."""
    finished = [(0, 1, 9.0, 9), (2, 1, 3.0, 3), (2, 0, 20.0, 20)]
    out, kept = leave_out(rollout(), finished, [(12, range(1, 2))], 10)
    assert out.rewards.shape == (T, 2) and torch.equal(out.rewards, rollout().rewards[:, [0, 2]])
    assert kept == [(0, 1, 9.0, 9), (2, 0, 20.0, 20)]
    out, kept = leave_out(rollout(), finished, [(11, range(0, 2)), (13, range(2, 3))], 10)
    assert out is None and kept == finished                   # no column left: no update
