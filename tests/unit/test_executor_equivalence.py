"""The executors' equivalence (asyncrl/learner.py): a hogwild worker's learner computes
gradients on a local copy theta' pulled from the shared theta, the sync executor's learner
computes them on theta itself; nothing else differs. So for one fixed rollout both give
bit-identical gradients, and identical updates of parameters, optimiser statistics and
the target network.

Rollouts are collected once (random actions, fixed seeds) and cloned, then fed to both
learners, built from the same flat parameters (an agent's .params, as the executors get
them). The sync learner's loss averages over the B environments of a batch: its gradient
for B = 2 is the mean of the two B = 1 gradients.
"""
from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from asyncrl.api import AGENTS
from asyncrl.envs import EnvFactory
from asyncrl.learner import make_learner
from asyncrl.vector import make_vector_env
from asyncrl.optim import build_optimizer
from asyncrl.rollout import EpisodeSegmentCollector, Rollout, VectorSegmentCollector

ALGOS = ("a3c", "one-step-q", "one-step-sarsa", "n-step-q")
SCHEDULE = (0, 400)


def clone_rollout(ro: Rollout) -> Rollout:
    """A copy that owns its memory (collectors reuse their buffers)."""
    return Rollout(**{f.name: None if getattr(ro, f.name) is None else getattr(ro, f.name).clone()
                      for f in dataclasses.fields(ro)})


def make_agent(algo: str, env: str = "CartPole-v1", **hp):
    return AGENTS[algo](env, workers=1, eval_episodes=0, **hp)


def fixed_rollouts(agent, n: int = 12, seed: int = 3) -> list[Rollout]:
    """n B=1 segments of CartPole (time limit 13; action 1 w.p. 1/4, so the pole often falls
    first), as a hogwild worker collects them: whole t_max segments mid-episode, segments cut
    short by a terminal state, and segments cut short by the time limit (each kind at least
    once)."""
    env = gym.make("CartPole-v1", max_episode_steps=13)
    rng = np.random.default_rng(seed)
    col = EpisodeSegmentCollector(env, agent.algorithm.segment_length, seed,
                                  next_action=agent.algorithm.needs_next_action)
    out = []
    for _ in range(n):
        ro, _ = col.collect(lambda obs: (rng.random(1) < 0.25).astype(np.int64), agent.algorithm.segment_length)
        out.append(clone_rollout(ro))
    env.close()
    kinds = {("terminated" if ro.terminated[-1, 0] else "truncated" if ro.truncated[-1, 0] else "mid")
             for ro in out}
    assert kinds == {"terminated", "truncated", "mid"}, kinds
    return out


def twin_learners(agent, target_seed: int = 1, fused: bool = False):
    """(hogwild learner, sync learner, their (params, target, optimiser)), each learner on
    its own copy of the agent's parameters. The target network theta- starts different
    from theta (another seed's initialisation), so using the wrong one shows. fused: both
    RMSProp updates compiled (hogwild's with the mirror that refreshes theta')."""
    cfg = agent.config
    n = agent.params.numel()
    target0 = None
    if agent.target_params is not None:
        target0 = make_agent(agent.algo, cfg.env, seed=target_seed, **_hp(cfg)).params.clone()
        assert not torch.equal(target0, agent.params)
    learners, states = [], []
    for make in ("hogwild", "sync"):
        params = agent.params.clone()
        target = None if target0 is None else target0.clone()
        opt = build_optimizer(cfg, n)
        if fused:
            assert opt.use_fused("on", params, "cpu", mirror=make == "hogwild") == "on"
        if make == "hogwild":
            ln = make_learner(cfg, agent.observation_space, agent.action_space, params, target, opt,
                              SCHEDULE, 0, local_copy=True)
        else:
            ln = make_learner(cfg, agent.observation_space, agent.action_space, params, target, opt,
                              SCHEDULE, local_copy=False, device="cpu")
        learners.append(ln)
        states.append((params, target, opt))
    return learners, states


def _hp(cfg) -> dict:
    """The hyperparameters of `cfg` that change the loss or the update (for a twin agent)."""
    keys = ("gamma", "t_max", "async_update", "target_update", "max_grad_norm", "hidden", "lr")
    return {k: getattr(cfg, k) for k in keys}


def agent_for(algo: str, **hp):
    return make_agent(algo, gamma=0.9, target_update=23, hidden=[16, 16], lr=0.01, **hp)


@pytest.mark.parametrize("algo", ALGOS)
def test_learners_train_on_a_copy_or_on_the_parameters_themselves(algo):
    """The hogwild learner's model lives on a private copy theta' that pull() refreshes; the
    sync learner's model lives on the very tensor it was given (on the CPU: no copy)."""
    agent = agent_for(algo)
    (hog, syn), ((p_h, _, _), (p_s, _, _)) = twin_learners(agent)
    assert hog.local is not p_h and hog.params is p_h
    assert hog.local.data_ptr() != p_h.data_ptr()
    assert syn.local is p_s and syn.params is p_s
    assert all(p.data_ptr() >= p_s.data_ptr() and p.data_ptr() < p_s.data_ptr() + p_s.numel() * 4
               for p in syn.model.parameters())
    hog.pull()
    assert torch.equal(hog.local, p_h)


@pytest.mark.parametrize("algo", ALGOS)
def test_one_rollout_gives_identical_gradients(algo):
    """For each fixed B=1 rollout (mid-episode, terminal, truncated), the hogwild learner
    (after pull()) and the sync learner leave bit-identical flat gradients, pre-clip norms
    and loss statistics."""
    agent = agent_for(algo)
    (hog, syn), _ = twin_learners(agent)
    for ro in fixed_rollouts(agent):
        hog.pull()
        stats_h, norm_h = hog.gradients(ro)
        stats_s, norm_s = syn.gradients(ro)
        assert hog.grad.abs().sum() > 0
        assert torch.equal(hog.grad, syn.grad)
        assert norm_h == norm_s
        assert stats_h.keys() == stats_s.keys()
        for k in stats_h:
            assert torch.equal(stats_h[k], stats_s[k]), k


@pytest.mark.parametrize("algo,fused", [(a, False) for a in ALGOS] + [("a3c", True), ("n-step-q", True)])
def test_updates_leave_identical_parameters_and_optimiser_state(algo, fused):
    """update() of both learners over the same sequence of rollouts (hogwild pulling theta
    before each, as its worker does) leaves identical parameters, optimiser statistics,
    target network (copied when the step crosses a multiple of target_update = 23) and
    learning rate after every update; and it does change them. Also with the compiled
    (fused) RMSProp, whose hogwild form writes theta' as it goes: pull() is then a no-op."""
    if fused:
        from asyncrl.optim import _cpp_compiler

        if _cpp_compiler() is None:
            pytest.skip("no C++ compiler for torch.compile")
    agent = agent_for(algo)
    (hog, syn), ((p_h, t_h, o_h), (p_s, t_s, o_s)) = twin_learners(agent, fused=fused)
    target0 = None if t_h is None else t_h.clone()
    step = 0
    for ro in fixed_rollouts(agent):
        step += ro.num_steps
        hog.pull()
        assert hog.update(ro, step) is True
        assert syn.update(ro, step) is True
        assert torch.equal(p_h, p_s)
        assert torch.equal(hog.local, p_h)          # theta' refreshed by the update itself
        for k, v in o_h.state_dict().items():
            assert torch.equal(v, o_s.state_dict()[k]), k
        if t_h is not None:
            assert torch.equal(t_h, t_s)
        assert hog.lr == syn.lr
    assert not torch.equal(p_s, agent.params)
    assert float(o_s.square_avg.abs().sum()) > 0
    if target0 is not None:
        assert step > 23 and not torch.equal(t_s, target0)      # copied at least once
    assert hog.take_stats()[:3] == syn.take_stats()[:3]


def split_env(ro: Rollout, b: int) -> Rollout:
    """Environment b of a [T, B] rollout as a B=1 rollout (its final observations too)."""
    col = slice(b, b + 1)
    out = Rollout(ro.obs[:, col], ro.actions[:, col], ro.rewards[:, col], ro.terminated[:, col],
                  ro.truncated[:, col])
    if ro.next_actions is not None:
        out.next_actions = ro.next_actions[col]
    if ro.final_obs is not None:
        mine = ro.final_idx[:, 1] == b
        if mine.any():
            out.final_obs = ro.final_obs[mine]
            out.final_idx = torch.stack([ro.final_idx[mine, 0], torch.zeros_like(ro.final_idx[mine, 0])], 1)
            if ro.final_next_actions is not None:
                out.final_next_actions = ro.final_next_actions[mine]
    return out


@pytest.mark.parametrize("algo", ("a2c", "one-step-q", "one-step-sarsa", "n-step-q"))
def test_sync_gradient_of_two_envs_is_the_mean_of_their_gradients(algo):
    """max_grad_norm = 0 (no clipping): the sync learner's gradient for a B=2 rollout equals
    the mean of the gradients of its two B=1 halves (the loss sums over time and averages
    over environments), to float tolerance. The rollouts (Count-v0: time limit 3, action 2
    terminates) hold truncations mid-segment with final observations, and terminal steps."""
    agent = make_agent(algo, "toy_envs_vec:Count-v0", gamma=0.9, hidden=[16], max_grad_norm=0.0)
    (_, syn), _ = twin_learners(agent)
    venv = make_vector_env(EnvFactory("toy_envs_vec:Count-v0"), 2, "inline")
    col = VectorSegmentCollector(venv, agent.algorithm.segment_length, 5,
                                 next_action=agent.algorithm.needs_next_action)
    rng = np.random.default_rng(11)
    seen_final = seen_term = False
    for _ in range(6):
        ro, _ = col.collect(lambda obs: rng.integers(3, size=2))
        ro = clone_rollout(ro)
        seen_final |= ro.final_obs is not None
        seen_term |= bool(ro.terminated.any())
        syn.gradients(ro)
        g2 = syn.grad.clone()
        halves = []
        for b in range(2):
            syn.gradients(split_env(ro, b))
            halves.append(syn.grad.clone())
        mean = (halves[0] + halves[1]) / 2
        assert g2.abs().sum() > 0 and not torch.equal(halves[0], halves[1])
        torch.testing.assert_close(g2, mean, rtol=1e-5, atol=1e-5)
    venv.close()
    assert seen_final and seen_term
