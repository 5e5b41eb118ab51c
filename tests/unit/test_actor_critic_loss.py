"""Exact tests for the A3C loss (asyncrl.algos.actor_critic).

Reduction: sum over time, mean over the B environments. Closed-form gradients
(per element, before the 1/B of the batch mean):
    d/dlogits [-log pi(a) * A]     = -(onehot(a) - pi) * A
    d/dlogits [-beta * H(pi)]      =  beta * pi * (log pi + H)
    d/dV      [c * (R - V)^2]      = -2 * c * (R - V)
"""
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from asyncrl.algos.actor_critic import ActorCriticAlgorithm, actor_critic_loss, categorical_loss_grads
from asyncrl.config import Config
from asyncrl.nets import ActorCritic
from asyncrl.rollout import Rollout
from helpers import spy_returns


def numpy_reference(logits, values, actions, returns, beta, c):
    """Loss, stats and gradients of the A3C loss computed independently in numpy (float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    returns = np.asarray(returns, dtype=np.float64)
    actions = np.asarray(actions)
    T, B, A = logits.shape
    z = logits - logits.max(-1, keepdims=True)
    pi = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    logp = np.log(pi)
    onehot = np.eye(A)[actions]
    logp_a = (logp * onehot).sum(-1)
    H = -(pi * logp).sum(-1)
    adv = returns - values
    policy = -(logp_a * adv).sum(0).mean()
    entropy = H.sum(0).mean()
    value = (adv ** 2).sum(0).mean()
    loss = policy - beta * entropy + c * value
    dlogits = (-(onehot - pi) * adv[..., None] + beta * pi * (logp + H[..., None])) / B
    dvalues = -2.0 * c * adv / B
    return loss, {"loss/policy": policy, "loss/entropy": entropy, "loss/value": value}, dlogits, dvalues


def run_loss(logits, values, actions, returns, beta, c):
    """Evaluate actor_critic_loss and return (loss, stats, dlogits, dvalues) as float64 numpy."""
    lg = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    v = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    loss, stats = actor_critic_loss(lg, v, torch.tensor(actions, dtype=torch.int64),
                                    torch.tensor(returns, dtype=torch.float64), beta, c)
    loss.backward()
    return loss.item(), {k: s.item() for k, s in stats.items()}, lg.grad.numpy(), v.grad.numpy()


def test_hand_computed_single_step_uniform_policy():
    """T=B=1, logits [0,0], a=0, V=1, R=3, beta=0.1, c=0.5: all values by hand."""
    loss, stats, dlogits, dvalues = run_loss([[[0.0, 0.0]]], [[1.0]], [[0]], [[3.0]], 0.1, 0.5)
    ln2 = math.log(2.0)
    # A = 2: policy = 2 ln2, entropy = ln2, value = 4 -> loss = 2 ln2 - 0.1 ln2 + 0.5*4
    assert loss == pytest.approx(1.9 * ln2 + 2.0, abs=1e-12)
    assert stats["loss/policy"] == pytest.approx(2 * ln2, abs=1e-12)
    assert stats["loss/entropy"] == pytest.approx(ln2, abs=1e-12)
    assert stats["loss/value"] == pytest.approx(4.0, abs=1e-12)
    # -(onehot - pi)*A = -([1,0]-[.5,.5])*2 = [-1, 1]; entropy gradient is 0 at the uniform policy
    np.testing.assert_allclose(dlogits, [[[-1.0, 1.0]]], atol=1e-12)
    np.testing.assert_allclose(dvalues, [[-2.0]], atol=1e-12)  # -2*0.5*(3-1)


def test_hand_computed_entropy_gradient_nonuniform():
    """T=B=1, logits [ln3, 0] (pi=[.75,.25]), beta=1, c=0, R=V: only the entropy term."""
    loss, stats, dlogits, dvalues = run_loss([[[math.log(3.0), 0.0]]], [[2.0]], [[1]], [[2.0]], 1.0, 0.0)
    H = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert loss == pytest.approx(-H, abs=1e-12)
    # beta * pi * (log pi + H)
    expected = [0.75 * (math.log(0.75) + H), 0.25 * (math.log(0.25) + H)]
    np.testing.assert_allclose(dlogits, [[expected]], atol=1e-12)
    np.testing.assert_allclose(dvalues, [[0.0]], atol=1e-12)


CASES = {
    "T3_B1": dict(logits=[[[0.2, -0.3]], [[1.0, 0.5]], [[-0.7, 0.4]]],
                  values=[[0.5], [1.5], [-0.2]], actions=[[1], [0], [1]],
                  returns=[[2.0], [1.0], [0.3]]),
    "T2_B2": dict(logits=[[[0.1, 0.9], [-1.2, 0.3]], [[0.0, 2.0], [0.6, -0.4]]],
                  values=[[0.4, -1.0], [2.0, 0.25]], actions=[[0, 1], [1, 0]],
                  returns=[[1.4, 0.5], [1.0, -0.75]]),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("beta,c", [(0.01, 0.5), (0.3, 1.0), (0.0, 0.0)])
def test_loss_and_gradients_match_numpy(name, beta, c):
    """Loss, stats and gradients w.r.t. logits and values equal the numpy closed forms."""
    case = CASES[name]
    args = (case["logits"], case["values"], case["actions"], case["returns"], beta, c)
    loss, stats, dlogits, dvalues = run_loss(*args)
    ref_loss, ref_stats, ref_dlogits, ref_dvalues = numpy_reference(*args)
    assert loss == pytest.approx(ref_loss, abs=1e-12)
    for k in ref_stats:
        assert stats[k] == pytest.approx(ref_stats[k], abs=1e-12), k
    np.testing.assert_allclose(dlogits, ref_dlogits, atol=1e-12)
    np.testing.assert_allclose(dvalues, ref_dvalues, atol=1e-12)


def test_closed_form_gradients_by_hand():
    """categorical_loss_grads (the hogwild CNN learner's NumPy path), T=1, logits [0,0], a=0,
    V=1, R=3, beta=0.1, c=0.5: the values of test_hand_computed_single_step_uniform_policy."""
    d_logits, d_values, stats = categorical_loss_grads(np.zeros((1, 2)), np.array([1.0]), np.array([0]),
                                                       np.array([3.0]), 0.1, 0.5)
    ln2 = math.log(2.0)
    np.testing.assert_allclose(d_logits, [[-1.0, 1.0]], atol=1e-12)
    np.testing.assert_allclose(d_values, [-2.0], atol=1e-12)
    assert stats == pytest.approx({"loss/policy": 2 * ln2, "loss/entropy": ln2, "loss/value": 4.0}, abs=1e-12)


def test_closed_form_entropy_gradient_by_hand():
    """categorical_loss_grads, logits [ln3, 0] (pi = [.75, .25]), a=1, beta=1, c=0, R=V: only
    the entropy term, beta * pi * (log pi + H): the values of
    test_hand_computed_entropy_gradient_nonuniform."""
    d_logits, d_values, stats = categorical_loss_grads(np.array([[math.log(3.0), 0.0]]), np.array([2.0]),
                                                       np.array([1]), np.array([2.0]), 1.0, 0.0)
    H = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    np.testing.assert_allclose(d_logits, [[0.75 * (math.log(0.75) + H), 0.25 * (math.log(0.25) + H)]], atol=1e-12)
    np.testing.assert_allclose(d_values, [0.0], atol=1e-12)
    assert stats == pytest.approx({"loss/policy": 0.0, "loss/entropy": H, "loss/value": 0.0}, abs=1e-12)


@pytest.mark.parametrize("beta,c", [(0.01, 0.5), (0.3, 1.0), (0.0, 0.0)])
def test_closed_form_gradients_equal_the_loss_gradients(beta, c):
    """categorical_loss_grads equals actor_critic_loss's autograd gradients and statistics
    (one environment: [T, A] and [T]), and the numpy reference; float32 as the learner runs it."""
    case = CASES["T3_B1"]
    args = (case["logits"], case["values"], case["actions"], case["returns"], beta, c)
    _, stats, dlogits, dvalues = run_loss(*args)
    logits, values, actions, returns = (np.asarray(case[k])[:, 0] for k in ("logits", "values", "actions", "returns"))
    got_dl, got_dv, got_stats = categorical_loss_grads(logits.astype(np.float32), values.astype(np.float32),
                                                       actions, returns.astype(np.float32), beta, c)
    assert got_dl.dtype == np.float32 and got_dv.dtype == np.float32
    np.testing.assert_allclose(got_dl, dlogits[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_dv, dvalues[:, 0], rtol=1e-5, atol=1e-6)
    assert got_stats == pytest.approx(stats, rel=1e-5, abs=1e-6)
    _, _, ref_dl, ref_dv = numpy_reference(*args)
    np.testing.assert_allclose(got_dl, ref_dl[:, 0], rtol=1e-5, atol=1e-6)


def test_reduction_is_sum_over_time_mean_over_batch():
    """Duplicating the batch column leaves the loss unchanged; repeating time doubles it."""
    base = CASES["T3_B1"]
    l1, *_ = run_loss(base["logits"], base["values"], base["actions"], base["returns"], 0.1, 0.5)
    dup_b = {k: [[row[0], row[0]] for row in v] for k, v in base.items()}
    l2, *_ = run_loss(dup_b["logits"], dup_b["values"], dup_b["actions"], dup_b["returns"], 0.1, 0.5)
    dup_t = {k: v + v for k, v in base.items()}
    l3, *_ = run_loss(dup_t["logits"], dup_t["values"], dup_t["actions"], dup_t["returns"], 0.1, 0.5)
    assert l2 == pytest.approx(l1, abs=1e-12)
    assert l3 == pytest.approx(2 * l1, abs=1e-12)


def test_advantage_is_detached_in_policy_term():
    """With beta = c = 0 the loss gives no gradient to the values (advantage detached)."""
    case = CASES["T2_B2"]
    lg = torch.tensor(case["logits"], dtype=torch.float64, requires_grad=True)
    v = torch.tensor(case["values"], dtype=torch.float64, requires_grad=True)
    loss, _ = actor_critic_loss(lg, v, torch.tensor(case["actions"]),
                                torch.tensor(case["returns"], dtype=torch.float64), 0.0, 0.0)
    gl, gv = torch.autograd.grad(loss, (lg, v), allow_unused=True)
    assert gv is None or torch.count_nonzero(gv) == 0
    assert torch.count_nonzero(gl) > 0


def test_stats_are_detached():
    """The reported statistics carry no graph."""
    case = CASES["T3_B1"]
    lg = torch.tensor(case["logits"], requires_grad=True)
    v = torch.tensor(case["values"], requires_grad=True)
    _, stats = actor_critic_loss(lg, v, torch.tensor(case["actions"]), torch.tensor(case["returns"]),
                                 0.01, 0.5)
    assert set(stats) == set(ActorCriticAlgorithm.stat_keys)
    assert all(not s.requires_grad for s in stats.values())


# ----------------------------------------------------------------- ActorCriticAlgorithm.loss

W_VALUE = torch.tensor([1.0, 2.0, 3.0, 4.0])  # V(x) = W_VALUE . x for x >= 0


def controlled_model(gamma=0.9):
    """Algorithm + ActorCritic with D=4, A=2, identity torso, V(x) = [1,2,3,4].x for x >= 0."""
    cfg = Config(env="x", hidden=[4], gamma=gamma, activation="relu", shared_torso="yes")
    algo = ActorCriticAlgorithm(cfg)
    model = algo.build_model(gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Discrete(2))
    assert isinstance(model, ActorCritic)
    with torch.no_grad():
        lin = model.torso[0]
        lin.weight.copy_(torch.eye(4))
        lin.bias.zero_()
        model.policy.weight.copy_(torch.tensor([[0.5, -0.5, 0.25, 0.0], [-0.25, 0.5, 0.0, 1.0]]))
        model.policy.bias.copy_(torch.tensor([0.1, -0.1]))
        model.value.weight.copy_(W_VALUE.unsqueeze(0))
        model.value.bias.zero_()
    return algo, model


def e(i, scale=1.0):
    """Scaled basis vector of R^4."""
    x = torch.zeros(4)
    x[i] = scale
    return x


def reference_loss_and_grads(algo, model, ro, returns):
    """Loss and parameter gradients with the model's own forward on obs[:T] and fixed returns."""
    T, B = ro.actions.shape
    logits, values = model(ro.obs[:T].reshape(T * B, -1))
    loss, stats = actor_critic_loss(logits.view(T, B, -1), values.view(T, B), ro.actions, returns,
                                    algo.cfg.entropy_beta, algo.cfg.value_coef)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return loss.detach(), stats, grads


def check_loss(monkeypatch, algo, model, ro, expected_returns):
    """loss() uses exactly `expected_returns` and its gradient ignores the bootstrap values."""
    seen = spy_returns(monkeypatch)
    loss, stats = algo.loss(model, ro)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected_returns, rtol=0, atol=1e-5)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref_loss, ref_stats, ref_grads = reference_loss_and_grads(algo, model, ro, expected_returns)
    torch.testing.assert_close(loss.detach(), ref_loss, rtol=0, atol=1e-5)
    for k in ref_stats:
        torch.testing.assert_close(stats[k], ref_stats[k].detach(), rtol=0, atol=1e-5)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=0, atol=1e-5)


def test_model_values_are_controlled():
    """Sanity: the controlled model's value head computes [1,2,3,4].x."""
    _, model = controlled_model()
    _, v = model(torch.stack([e(0), e(1), e(2, 2.0), e(3, 5.0)]))
    torch.testing.assert_close(v, torch.tensor([1.0, 2.0, 6.0, 20.0]))


def test_algorithm_loss_bootstraps_from_last_obs(monkeypatch):
    """Uncut segment: R bootstraps from V(obs[T]) = 4 (gamma 0.9, rewards 1)."""
    algo, model = controlled_model()
    obs = torch.stack([e(0), e(1), e(2), e(3)]).unsqueeze(1)  # V = 1, 2, 3, 4
    ro = Rollout(obs, torch.tensor([[0], [1], [0]]), torch.ones(3, 1),
                 torch.zeros(3, 1, dtype=torch.bool), torch.zeros(3, 1, dtype=torch.bool))
    # R2 = 1 + 0.9*4 = 4.6 ; R1 = 1 + 0.9*4.6 = 5.14 ; R0 = 1 + 0.9*5.14 = 5.626
    check_loss(monkeypatch, algo, model, ro, torch.tensor([[5.626], [5.14], [4.6]]))


def test_algorithm_loss_no_bootstrap_when_terminated(monkeypatch):
    """Terminated at the last step: V(obs[T]) is not used."""
    algo, model = controlled_model()
    obs = torch.stack([e(0), e(1), e(2), e(3, 10.0)]).unsqueeze(1)
    ro = Rollout(obs, torch.tensor([[0], [1], [0]]), torch.ones(3, 1),
                 torch.tensor([[False], [False], [True]]), torch.zeros(3, 1, dtype=torch.bool))
    # R2 = 1 ; R1 = 1.9 ; R0 = 2.71
    check_loss(monkeypatch, algo, model, ro, torch.tensor([[2.71], [1.9], [1.0]]))


def test_algorithm_loss_final_obs_mid_segment(monkeypatch):
    """A truncation at (t=1, b=0) bootstraps from V(final_obs)=20, not V(obs[2])=3."""
    algo, model = controlled_model()
    # column 0: obs V = 1, 2, 3 (next episode's first obs), 4 ; column 1: V = 2, 4, 6, 8
    obs = torch.stack([torch.stack([e(i), e(i, 2.0)]) for i in range(4)])  # [4, 2, 4]
    rewards = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]])
    trunc = torch.zeros(3, 2, dtype=torch.bool)
    trunc[1, 0] = True
    ro = Rollout(obs, torch.tensor([[0, 1], [1, 1], [0, 0]]), rewards,
                 torch.zeros(3, 2, dtype=torch.bool), trunc,
                 final_obs=e(3, 5.0).unsqueeze(0), final_idx=torch.tensor([[1, 0]]))
    # col 0: R2 = 3 + 0.9*4 = 6.6 ; R1 = 2 + 0.9*20 = 20 ; R0 = 1 + 0.9*20 = 19
    # col 1: R2 = 1 + 0.9*8 = 8.2 ; R1 = 7.38 ; R0 = 6.642
    expected = torch.tensor([[19.0, 6.642], [20.0, 7.38], [6.6, 8.2]])
    check_loss(monkeypatch, algo, model, ro, expected)


def test_algorithm_loss_final_obs_last_step_second_column(monkeypatch):
    """A truncation at (t=T-1, b=1) with final_obs replaces V(obs[T, 1]) by V(final_obs)."""
    algo, model = controlled_model()
    obs = torch.stack([torch.stack([e(i), e(i, 2.0)]) for i in range(3)])  # T=2, [3, 2, 4]
    trunc = torch.tensor([[False, False], [False, True]])
    ro = Rollout(obs, torch.tensor([[0, 1], [1, 0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]]),
                 torch.zeros(2, 2, dtype=torch.bool), trunc,
                 final_obs=e(0, 10.0).unsqueeze(0), final_idx=torch.tensor([[1, 1]]))
    # col 0: V(obs[2,0]) = 3 -> R1 = 1 + 2.7 = 3.7 ; R0 = 1 + 0.9*3.7 = 4.33
    # col 1: V(final) = 10 (not V(obs[2,1]) = 6) -> R1 = 1 + 9 = 10 ; R0 = 1 + 9 = 10
    expected = torch.tensor([[4.33, 10.0], [3.7, 10.0]])
    check_loss(monkeypatch, algo, model, ro, expected)
