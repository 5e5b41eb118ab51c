"""Exact tests for the Gaussian policy of continuous (1-D Box) actions.

The policy head outputs [..., 2A] = (mean mu, pre-softplus variance raw);
var = softplus(raw) + VAR_EPS. Closed forms, per dimension (summed over the A dimensions):
    log N(a; mu, var) = -1/2 ((a - mu)^2 / var + log(2 pi var))
    H                 =  1/2 log(2 pi e var)
    d logp / d mu     =  (a - mu) / var
    d logp / d raw    =  (-1/(2 var) + (a - mu)^2 / (2 var^2)) * sigmoid(raw)
    d H / d raw       =  1/(2 var) * sigmoid(raw)          (d H / d mu = 0)
Acting samples mu + sqrt(var) * N(0, 1) unclipped (greedy: mu); only what an environment
receives is clipped to the bounds (ActionBuffer.for_env, Agent.act).
"""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import asyncrl
import asyncrl.algos.actor_critic as ac_mod
from asyncrl.algos.actor_critic import (ActorCriticAlgorithm, gaussian_log_prob_entropy,
                                        policy_gradient_loss)
from asyncrl.algos.value_based import ValueBasedAlgorithm
from asyncrl.api import A3C
from asyncrl.config import Config
from asyncrl.errors import EnvError
from asyncrl.nets import VAR_EPS, gaussian_mean_var, mean_center_half
from asyncrl.rollout import ActionBuffer, EpisodeSegmentCollector, Rollout

LOG_2PI = math.log(2.0 * math.pi)


def raw_for_var(var: float) -> float:
    """The pre-softplus value whose softplus(raw) + VAR_EPS is `var` (float64 exact enough)."""
    v = var - VAR_EPS
    return v + math.log(-math.expm1(-v))


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logp_entropy_grads(out, actions):
    """(logp, entropy, d logp.sum()/d out, d entropy.sum()/d out) as float64 numpy."""
    out = torch.tensor(out, dtype=torch.float64, requires_grad=True)
    logp, ent = gaussian_log_prob_entropy(out, torch.tensor(actions, dtype=torch.float64))
    g_logp, = torch.autograd.grad(logp.sum(), out, retain_graph=True)
    g_ent, = torch.autograd.grad(ent.sum(), out)
    return logp.detach().numpy(), ent.detach().numpy(), g_logp.numpy(), g_ent.numpy()


# --------------------------------------------------------------------------- closed forms
def test_mean_var_split_and_softplus():
    """gaussian_mean_var: the first A outputs are the mean as is, the last A softplus + VAR_EPS."""
    out = torch.tensor([[0.5, -2.0, 0.0, 3.0]], dtype=torch.float64)
    mu, var = gaussian_mean_var(out)
    np.testing.assert_array_equal(mu.numpy(), [[0.5, -2.0]])
    np.testing.assert_allclose(var.numpy(), [[math.log(2.0) + VAR_EPS, math.log1p(math.e ** 3) + VAR_EPS]],
                               rtol=0, atol=1e-14)
    assert VAR_EPS == 1e-5
    # a very negative raw variance still gives a positive variance (log stays finite)
    _, var = gaussian_mean_var(torch.tensor([[0.0, -200.0]], dtype=torch.float64))
    assert var.item() == pytest.approx(VAR_EPS, rel=1e-12)


def test_unit_variance_hand_computed():
    """mu=0, var=1, a=1: logp = -(1 + ln 2pi)/2 = -1.4189385..., H = ln(2 pi e)/2 = 1.4189385...;
    d logp/d mu = 1, d logp/d var = -1/2 + 1/2 = 0 (so d/d raw = 0), dH/d raw = sigmoid(raw)/2."""
    raw = raw_for_var(1.0)
    logp, ent, g_logp, g_ent = logp_entropy_grads([[0.0, raw]], [[1.0]])
    assert logp[0] == pytest.approx(-1.4189385332046727, abs=1e-12)
    assert ent[0] == pytest.approx(1.4189385332046727, abs=1e-12)
    np.testing.assert_allclose(g_logp, [[1.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(g_ent, [[0.0, 0.5 * sigmoid(raw)]], atol=1e-12)


def test_variance_four_hand_computed():
    """mu=1, var=4, a=-1: (a-mu)^2/var = 1 so logp = -(1 + ln 8pi)/2, H = ln(8 pi e)/2;
    d logp/d mu = -2/4 = -0.5, d logp/d var = -1/8 + 4/32 = 0."""
    raw = raw_for_var(4.0)
    logp, ent, g_logp, g_ent = logp_entropy_grads([[1.0, raw]], [[-1.0]])
    assert logp[0] == pytest.approx(-0.5 * (1.0 + math.log(8.0 * math.pi)), abs=1e-12)
    assert ent[0] == pytest.approx(0.5 * math.log(8.0 * math.pi * math.e), abs=1e-12)
    np.testing.assert_allclose(g_logp, [[-0.5, 0.0]], atol=1e-9)
    np.testing.assert_allclose(g_ent, [[0.0, sigmoid(raw) / 8.0]], atol=1e-12)


def test_action_at_the_mean_hand_computed():
    """a = mu: logp = -ln(2 pi var)/2, d logp/d mu = 0, d logp/d raw = -sigmoid(raw)/(2 var)."""
    raw = 2.0
    var = softplus(raw) + VAR_EPS
    logp, ent, g_logp, _ = logp_entropy_grads([[-1.0, raw]], [[-1.0]])
    assert logp[0] == pytest.approx(-0.5 * math.log(2.0 * math.pi * var), abs=1e-12)
    assert ent[0] == pytest.approx(0.5 * math.log(2.0 * math.pi * math.e * var), abs=1e-12)
    np.testing.assert_allclose(g_logp, [[0.0, -sigmoid(raw) / (2.0 * var)]], atol=1e-12)


ONE_D = [  # (mu, raw, a)
    (0.3, 0.0, 1.0),
    (0.0, -3.0, 0.5),      # small variance (softplus(-3) ~ 0.049): a big (a - mu)^2 / var term
    (-0.7, 1.2, -2.5),
    (2.0, 5.0, 2.1),
    (0.0, -15.0, 0.001),   # variance ~ VAR_EPS: the epsilon matters
]


def closed_form_1d(mu, raw, a):
    var = softplus(raw) + VAR_EPS
    logp = -0.5 * ((a - mu) ** 2 / var + math.log(2.0 * math.pi * var))
    ent = 0.5 * math.log(2.0 * math.pi * math.e * var)
    dlogp_dmu = (a - mu) / var
    dlogp_draw = (-1.0 / (2.0 * var) + (a - mu) ** 2 / (2.0 * var ** 2)) * sigmoid(raw)
    dent_draw = 1.0 / (2.0 * var) * sigmoid(raw)
    return logp, ent, dlogp_dmu, dlogp_draw, dent_draw


@pytest.mark.parametrize("mu,raw,a", ONE_D)
def test_one_dimension_against_closed_forms(mu, raw, a):
    """1-D log-prob, entropy and their gradients w.r.t. mean and raw variance (chained
    through softplus' derivative sigmoid) equal the closed forms."""
    logp, ent, g_logp, g_ent = logp_entropy_grads([[mu, raw]], [[a]])
    ref_logp, ref_ent, d_mu, d_raw, dh_raw = closed_form_1d(mu, raw, a)
    assert logp[0] == pytest.approx(ref_logp, rel=1e-12, abs=1e-12)
    assert ent[0] == pytest.approx(ref_ent, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(g_logp[0], [d_mu, d_raw], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_ent[0], [0.0, dh_raw], rtol=1e-10, atol=1e-12)


def test_two_dimensions_sum_the_independent_dimensions():
    """2-D: out = [mu1, mu2, raw1, raw2]; logp and entropy are the sums of the 1-D closed
    forms, and each dimension's gradient is its own 1-D gradient, in the [mu..., raw...] layout."""
    (m1, r1, a1), (m2, r2, a2) = ONE_D[0], ONE_D[2]
    logp, ent, g_logp, g_ent = logp_entropy_grads([[m1, m2, r1, r2]], [[a1, a2]])
    c1, c2 = closed_form_1d(m1, r1, a1), closed_form_1d(m2, r2, a2)
    assert logp[0] == pytest.approx(c1[0] + c2[0], rel=1e-12)
    assert ent[0] == pytest.approx(c1[1] + c2[1], rel=1e-12)
    np.testing.assert_allclose(g_logp[0], [c1[2], c2[2], c1[3], c2[3]], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_ent[0], [0.0, 0.0, c1[4], c2[4]], rtol=1e-10, atol=1e-12)


def test_two_dimensions_hand_computed():
    """mu = (0, 1), var = (1, 4), a = (1, -1): each dimension's (a-mu)^2/var is 1, so
    logp = -(2 + ln 2pi + ln 8pi)/2 and H = (ln 2pie + ln 8pie)/2."""
    logp, ent, _, _ = logp_entropy_grads([[0.0, 1.0, raw_for_var(1.0), raw_for_var(4.0)]], [[1.0, -1.0]])
    assert logp[0] == pytest.approx(-0.5 * (2.0 + LOG_2PI + math.log(8.0 * math.pi)), abs=1e-12)
    assert ent[0] == pytest.approx(0.5 * (math.log(2 * math.pi * math.e) + math.log(8 * math.pi * math.e)),
                                   abs=1e-12)


def test_matches_torch_normal_over_a_batch():
    """Over a [T=3, B=4, A=2] batch (random mean, raw variance, actions) log-prob and
    entropy equal torch.distributions.Normal's, summed over the action dimensions, and so
    do their gradients w.r.t. the head output."""
    g = torch.Generator().manual_seed(0)
    out = (torch.randn(3, 4, 4, generator=g, dtype=torch.float64) * 2.0).requires_grad_(True)
    actions = torch.randn(3, 4, 2, generator=g, dtype=torch.float64) * 3.0
    logp, ent = gaussian_log_prob_entropy(out, actions)
    assert logp.shape == (3, 4) and ent.shape == (3, 4)
    mu = out[..., :2]
    std = (torch.nn.functional.softplus(out[..., 2:]) + VAR_EPS).sqrt()
    dist = torch.distributions.Normal(mu, std)
    ref_logp, ref_ent = dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)
    torch.testing.assert_close(logp, ref_logp, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ent, ref_ent, rtol=1e-12, atol=1e-12)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64)
    gl, = torch.autograd.grad((w * logp + 0.3 * w * ent).sum(), out)
    gr, = torch.autograd.grad((w * ref_logp + 0.3 * w * ref_ent).sum(), out)
    torch.testing.assert_close(gl, gr, rtol=1e-10, atol=1e-12)


def test_float32_is_close_to_float64():
    """The float32 computation (what training uses) agrees with float64 to ~1e-5 relative."""
    out64 = torch.tensor([[0.3, -1.0, 0.0, -3.0], [2.0, 0.5, 5.0, 1.0]], dtype=torch.float64)
    a64 = torch.tensor([[1.0, 0.5], [-1.0, 0.4]], dtype=torch.float64)
    l64, h64 = gaussian_log_prob_entropy(out64, a64)
    l32, h32 = gaussian_log_prob_entropy(out64.float(), a64.float())
    torch.testing.assert_close(l32.double(), l64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h32.double(), h64, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the loss
def test_policy_gradient_loss_two_step_gaussian_by_hand():
    """T=2, B=1, A=1. Step 0: mu=0, var=1, a=1; step 1: mu=1, var=4, a=-1 (both (a-mu)^2/var = 1).
    With L0 = 1 + ln 2pi, L1 = 1 + ln 8pi: logp = (-L0/2, -L1/2), H = (L0/2, L1/2).
    V = (0.5, 1.0), R = (2.0, 0.0): advantages (1.5, -1.0).
        policy  = -(1.5 * -L0/2 + -1 * -L1/2) = 0.75 L0 - 0.5 L1
        entropy = (L0 + L1)/2 ; value = 1.5^2 + 1^2 = 3.25
    and d loss / d mu_t = -A_t (a_t - mu_t)/var_t = (-1.5, -0.5)."""
    beta, c = 0.1, 0.5
    out = torch.tensor([[[0.0, raw_for_var(1.0)]], [[1.0, raw_for_var(4.0)]]], dtype=torch.float64,
                       requires_grad=True)
    actions = torch.tensor([[[1.0]], [[-1.0]]], dtype=torch.float64)
    values = torch.tensor([[0.5], [1.0]], dtype=torch.float64, requires_grad=True)
    returns = torch.tensor([[2.0], [0.0]], dtype=torch.float64)
    logp, ent = gaussian_log_prob_entropy(out, actions)
    loss, stats = policy_gradient_loss(logp, ent, values, returns, beta, c)
    L0, L1 = 1.0 + LOG_2PI, 1.0 + math.log(8.0 * math.pi)
    policy, entropy, value = 0.75 * L0 - 0.5 * L1, 0.5 * (L0 + L1), 3.25
    assert stats["loss/policy"].item() == pytest.approx(policy, abs=1e-12)
    assert stats["loss/entropy"].item() == pytest.approx(entropy, abs=1e-12)
    assert stats["loss/value"].item() == pytest.approx(value, abs=1e-12)
    assert loss.item() == pytest.approx(policy - beta * entropy + c * value, abs=1e-12)
    g_out, g_v = torch.autograd.grad(loss, (out, values))
    np.testing.assert_allclose(g_out[..., 0].numpy(), [[-1.5], [-0.5]], atol=1e-9)
    np.testing.assert_allclose(g_v.numpy(), [[-2 * c * 1.5], [-2 * c * -1.0]], atol=1e-12)


# --------------------------------------------------------------------------- acting
OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)


def continuous_model(low=-2.0, high=2.0, A=2, seed=0, **cfg):
    torch.manual_seed(seed)
    algo = ActorCriticAlgorithm(Config(env="x", hidden=[8], **cfg))
    model = algo.build_model(OBS, gym.spaces.Box(low, high, (A,), np.float32))
    assert model.continuous and model.policy.out_features == 2 * A
    return algo, model


def constant_head(model, mu, raw):
    """Make the head output the constant (mu, raw) whatever the observation."""
    with torch.no_grad():
        model.policy.weight.zero_()
        model.policy.bias.copy_(torch.tensor(list(mu) + list(raw)))


def obs_batch(n, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3)).astype(np.float32)


def test_samples_have_the_policy_mean_and_variance():
    """20,000 draws of a 2-D policy with mu = (0.5, -1.0), var = (softplus(0), softplus(1.5))
    + VAR_EPS: sample means within 5 standard errors, sample variances within 5%, and the two
    dimensions uncorrelated."""
    algo, model = continuous_model()
    mu, raw = (0.5, -1.0), (0.0, 1.5)
    constant_head(model, mu, raw)
    policy = algo.make_policy(model, np.random.default_rng(123))
    n = 20_000
    a = policy(obs_batch(n))
    assert a.shape == (n, 2) and a.dtype == np.float32
    var = np.array([softplus(r) + VAR_EPS for r in raw])
    np.testing.assert_array_less(np.abs(a.mean(0) - mu), 5 * np.sqrt(var / n))
    np.testing.assert_allclose(a.var(0), var, rtol=0.05)
    assert abs(np.corrcoef(a.T)[0, 1]) < 0.05


def test_sampling_is_reproducible_with_the_rng():
    """Two policies with equally seeded generators draw the same actions; another seed differs."""
    algo, model = continuous_model()
    x = obs_batch(5)
    a1 = algo.make_policy(model, np.random.default_rng(7))(x)
    a2 = algo.make_policy(model, np.random.default_rng(7))(x)
    a3 = algo.make_policy(model, np.random.default_rng(8))(x)
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)


def test_greedy_returns_the_mean():
    """greedy=True acts with the mean: the first A head outputs of the model's own forward."""
    algo, model = continuous_model()
    with torch.no_grad():
        model.policy.weight.mul_(1000.0)   # means far from 0, some beyond the bounds
    x = obs_batch(16)
    greedy = algo.make_policy(model, np.random.default_rng(0), greedy=True)
    with torch.no_grad():
        ref = model.policy_out(torch.from_numpy(x))[:, :2].numpy()
    a = greedy(x)
    assert a.shape == (16, 2)
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(greedy(x), a)          # deterministic
    assert np.abs(a).max() > 2.0                          # greedy actions are not clipped either


def test_samples_beyond_the_bounds_are_not_clipped():
    """mu = 3 (above the bound 2), small variance: the policy returns samples near 3."""
    algo, model = continuous_model(A=1)
    constant_head(model, (3.0,), (raw_for_var(0.01),))
    a = algo.make_policy(model, np.random.default_rng(0))(obs_batch(200))
    assert a.min() > 2.3 and abs(a.mean() - 3.0) < 0.05


def test_action_buffer_clips_what_the_env_receives_only():
    """ActionBuffer.for_env clips each dimension to its own bounds without touching the
    sampled array; discrete actions pass through."""
    space = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 5.0], np.float32))
    buf = ActionBuffer(space, t_max=3, batch=2)
    a = np.array([[3.0, -2.0], [-0.5, 7.5]], np.float32)
    before = a.copy()
    out = buf.for_env(a)
    np.testing.assert_array_equal(out, [[1.0, 0.0], [-0.5, 5.0]])
    np.testing.assert_array_equal(a, before)
    assert buf.actions.shape == (3, 2, 2) and buf.actions.dtype == torch.float32
    d = ActionBuffer(gym.spaces.Discrete(3), t_max=3, batch=2)
    assert d.for_env(np.array([2, 0])).tolist() == [2, 0] and d.actions.dtype == torch.int64


class RecordingBoxEnv(gym.Env):
    """Box(-2, 2, (1,)) actions; observation = step index; records the actions it receives;
    ends (truncated) after `length` steps; reward = received action."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (3,), np.float32)

    def __init__(self, length=4, low=-2.0, high=2.0):
        self.length = length
        self.action_space = gym.spaces.Box(low, high, (1,), np.float32)
        self.received: list[np.ndarray] = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.i = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.received.append(np.array(action, copy=True))
        self.i += 1
        return np.full(3, self.i / 10, np.float32), float(np.asarray(action).reshape(-1)[0]), False, \
            self.i >= self.length, {}


class Recording:
    """Wraps a policy, keeping a copy of every action batch it returned."""

    def __init__(self, policy):
        self.policy, self.out = policy, []

    def __call__(self, obs):
        a = self.policy(obs)
        self.out.append(np.array(a, copy=True))
        return a


def test_collector_stores_the_sample_and_sends_the_clipped_action():
    """EpisodeSegmentCollector: the rollout keeps the unclipped samples (mu = 3, above the
    bound 2), the env receives them clipped to 2, and rewards are the received actions."""
    algo, model = continuous_model(A=1)
    constant_head(model, (3.0,), (raw_for_var(0.25),))
    env = RecordingBoxEnv(length=4)
    col = EpisodeSegmentCollector(env, t_max=4, seed=0)
    policy = Recording(algo.make_policy(model, np.random.default_rng(0)))
    ro, finished = col.collect(policy, 4)
    sampled = np.concatenate(policy.out)                       # [4, 1]
    assert finished == (pytest.approx(float(np.clip(sampled, -2, 2).sum())), 4)
    assert ro.actions.shape == (4, 1, 1) and ro.actions.dtype == torch.float32
    np.testing.assert_array_equal(ro.actions[:, 0].numpy(), sampled)
    assert (sampled > 2.0).sum() >= 3                          # mostly beyond the bound
    np.testing.assert_array_equal(np.concatenate(env.received), np.clip(sampled, -2.0, 2.0).reshape(-1))
    np.testing.assert_allclose(ro.rewards[:, 0].numpy(), np.clip(sampled, -2.0, 2.0).reshape(-1))


def test_loss_uses_the_log_prob_of_the_stored_unclipped_action(monkeypatch):
    """ActorCriticAlgorithm.loss on a 2-step rollout whose stored actions (5.0, -4.0) lie
    outside the bounds [-2, 2]: its policy loss is -sum_t logN(a_t; mu_t, var_t) * (R_t - V_t)
    with the stored values, not with the clipped (2.0, -2.0)."""
    algo, model = continuous_model(A=1, gamma=0.9)
    obs = torch.from_numpy(obs_batch(3)).unsqueeze(1)               # [3, 1, 3]
    actions = torch.tensor([[[5.0]], [[-4.0]]])
    ro = Rollout(obs, actions, torch.tensor([[1.0], [0.5]]), torch.zeros(2, 1, dtype=torch.bool),
                 torch.zeros(2, 1, dtype=torch.bool))
    seen = []
    real = ac_mod.n_step_returns
    monkeypatch.setattr(ac_mod, "n_step_returns", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    loss, stats = algo.loss(model, ro)
    with torch.no_grad():
        out, v = model(obs.reshape(3, 3))
        returns = torch.tensor([[1.0 + 0.9 * (0.5 + 0.9 * v[2].item())], [0.5 + 0.9 * v[2].item()]])
        torch.testing.assert_close(seen[0], returns, rtol=1e-6, atol=1e-6)
        mu, var = gaussian_mean_var(out[:2])
        adv = returns[:, 0] - v[:2]

        def policy_loss(a):
            logp = -0.5 * ((a - mu[:, 0]) ** 2 / var[:, 0] + torch.log(2 * math.pi * var[:, 0]))
            return -(logp * adv).sum()
        expected = policy_loss(torch.tensor([5.0, -4.0]))
        clipped = policy_loss(torch.tensor([2.0, -2.0]))
    torch.testing.assert_close(stats["loss/policy"], expected, rtol=1e-5, atol=1e-5)
    assert abs(expected - clipped) > 1e-3                       # the distinction is visible
    entropy = 0.5 * (LOG_2PI + 1.0 + torch.log(var[:, 0])).sum()
    torch.testing.assert_close(stats["loss/entropy"], entropy, rtol=1e-5, atol=1e-5)
    assert loss.requires_grad


def make_agent(low=-0.5, high=1.5, **kw):
    return A3C(lambda: RecordingBoxEnv(length=3, low=low, high=high), workers=1, hidden=[8], **kw)


@pytest.mark.parametrize("deterministic", [True, False])
def test_agent_act_clips_to_the_bounds(deterministic):
    """Agent.act returns a float32 array of the action shape, clipped to [low, high] (here
    [-0.5, 1.5]): a mean of 5 gives 1.5, a mean of -5 gives -0.5, greedy or sampled."""
    agent = make_agent()
    obs = np.zeros(3, np.float32)
    for mean, expected in ((5.0, 1.5), (-5.0, -0.5)):
        constant_head(agent.model, (mean,), (raw_for_var(0.01),))
        a = agent.act(obs, deterministic=deterministic)
        assert isinstance(a, np.ndarray) and a.shape == (1,) and a.dtype == np.float32
        assert a[0] == expected


def test_agent_act_greedy_in_bounds_is_the_mean():
    """A mean inside the bounds is returned as is by greedy act()."""
    agent = make_agent()
    constant_head(agent.model, (0.25,), (0.0,))
    assert agent.act(np.zeros(3, np.float32))[0] == pytest.approx(0.25, abs=1e-7)


def test_agent_evaluate_continuous():
    """evaluate() runs continuous episodes with clipped actions: reward = received action =
    the clipped mean 1.5 for 3 steps -> return 4.5 every episode."""
    agent = make_agent()
    constant_head(agent.model, (5.0,), (0.0,))
    ev = agent.evaluate(2)
    assert ev["returns"] == [pytest.approx(4.5), pytest.approx(4.5)] and ev["mean_length"] == 3.0


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("algo", ["one-step-q", "one-step-sarsa", "n-step-q"])
def test_value_based_methods_refuse_continuous_actions(algo):
    """A value-based method's check_spaces raises EnvError naming the env and Discrete."""
    vb = ValueBasedAlgorithm(Config(env="x", algo=algo))
    with pytest.raises(EnvError, match="needs Discrete actions") as info:
        vb.check_spaces(OBS, gym.spaces.Box(-2.0, 2.0, (1,), np.float32), "Pendulum-v1")
    assert "Pendulum-v1" in str(info.value) and "a3c or a2c" in str(info.value)


@pytest.mark.parametrize("algo", ["one-step-q", "one-step-sarsa", "n-step-q"])
def test_value_based_methods_refuse_lstm(algo):
    """Config.validate refuses --net lstm for the value-based methods, and accepts it for a3c/a2c."""
    problems = Config(env="x", algo=algo, net="lstm").validate()
    assert any(f"net 'lstm' is available for a3c and a2c, not {algo}" in p for p in problems)
    for ok in ("a3c", "a2c"):
        assert Config(env="x", algo=ok, net="lstm").validate() == []


@pytest.mark.parametrize("space", [gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32),
                                   gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
                                   gym.spaces.Box(np.array([-1.0, -np.inf], np.float32),
                                                  np.array([1.0, 1.0], np.float32))])
def test_actor_critic_refuses_non_vector_or_unbounded_boxes(space):
    """The Gaussian policy needs a 1-D Box with finite bounds on every dimension."""
    with pytest.raises(EnvError, match="1-D Box with finite bounds"):
        ActorCriticAlgorithm(Config(env="x")).check_spaces(OBS, space, "e")


# --------------------------------------------------------------------------- the bounded mean
# --gaussian-mean tanh: mu = center + half * tanh(raw_mu), center = (high + low) / 2 and
# half = (high - low) / 2 per dimension; the variance as before. d mu / d raw_mu =
# half * (1 - tanh(raw_mu)^2).
CAR = (np.array([-1.0, 0.0, 0.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32))   # CarRacing's bounds


def tanh_model(low=CAR[0], high=CAR[1], seed=0):
    torch.manual_seed(seed)
    algo = ActorCriticAlgorithm(Config(env="x", hidden=[8], gaussian_mean="tanh"))
    model = algo.build_model(OBS, gym.spaces.Box(low, high, dtype=np.float32))
    return algo, model


def test_bounded_mean_hand_computed():
    """Bounds [-1, 1] and [0, 1]: raw means (0.5, -2) give mu = (tanh 0.5, 0.5 - 0.5 tanh 2)
    = (0.46211715726000974, 0.017986209962091555); the variances are softplus + VAR_EPS as
    with the linear mean. With a = (1, 0) and var = (1, 1): d logp / d raw_mu = (a - mu) / var
    * half * (1 - tanh^2) = (0.5378828427 * 0.7864477330, -0.0179862100 * 0.0353254124)."""
    squash = (torch.tensor([0.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 0.5], dtype=torch.float64))
    raw1 = raw_for_var(1.0)
    out = torch.tensor([[0.5, -2.0, raw1, raw1]], dtype=torch.float64, requires_grad=True)
    mu, var = gaussian_mean_var(out, squash)
    np.testing.assert_allclose(mu.detach().numpy(), [[0.46211715726000974, 0.017986209962091555]],
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(var.detach().numpy(), [[1.0, 1.0]], rtol=0, atol=1e-12)
    logp, ent = gaussian_log_prob_entropy(out, torch.tensor([[1.0, 0.0]], dtype=torch.float64), squash)
    assert logp.item() == pytest.approx(-0.5 * ((1 - 0.46211715726000974) ** 2 + 0.017986209962091555 ** 2)
                                        - LOG_2PI, abs=1e-12)
    assert ent.item() == pytest.approx(LOG_2PI + 1.0, abs=1e-12)       # the variance alone
    g, = torch.autograd.grad(logp.sum(), out)
    np.testing.assert_allclose(g[0, :2].numpy(), [0.5378828427399903 * 0.7864477329659274,
                                                  -0.017986209962091555 * 0.035325412426582214],
                               rtol=1e-10, atol=1e-14)


def test_bounded_mean_never_leaves_the_bounds():
    """Raw means from -1e4 to 1e4 give means inside [low, high] of each dimension, at the
    bounds only when tanh saturates; without the squash they would be the raw means."""
    squash = (torch.tensor([0.0, 0.5, 0.5]), torch.tensor([1.0, 0.5, 0.5]))
    raw = torch.tensor([-1e4, -3.0, 0.0, 3.0, 1e4])
    out = torch.cat([raw[:, None].expand(5, 3), torch.zeros(5, 3)], 1)
    mu, _ = gaussian_mean_var(out, squash)
    assert (mu >= torch.tensor([-1.0, 0.0, 0.0])).all() and (mu <= 1.0).all()
    np.testing.assert_array_equal(mu[0].numpy(), [-1.0, 0.0, 0.0])
    np.testing.assert_array_equal(mu[-1].numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(mu[2].numpy(), [0.0, 0.5, 0.5])


def test_the_model_holds_the_bounds_without_saving_them():
    """build_model with gaussian_mean tanh: mean_squash is (center, half) of the action space;
    the state dict is the linear model's (the bounds come back from the env, not the
    checkpoint), and a checkpoint of either loads into the other."""
    _, model = tanh_model()
    center, half = model.mean_squash
    np.testing.assert_array_equal(center.numpy(), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(half.numpy(), [1.0, 0.5, 0.5])
    _, linear = continuous_model(low=CAR[0], high=CAR[1], A=3)
    assert linear.mean_squash is None
    assert list(model.state_dict()) == list(linear.state_dict())
    model.load_state_dict(linear.state_dict())
    linear.load_state_dict(model.state_dict())
    assert model.to(torch.float64).mean_squash[0].dtype == torch.float64        # buffers follow the model


def test_bounded_policy_acts_with_the_squashed_mean():
    """make_policy of a tanh model: greedy acts with center + half * tanh(raw mean) of the
    model's own forward (NumPy, as gaussian_mean_var in torch), inside the bounds even where
    the raw means are far outside; sampling draws around that mean with the head's variance."""
    algo, model = tanh_model()
    with torch.no_grad():
        model.policy.weight.mul_(1000.0)
    x = obs_batch(64)
    greedy = algo.make_policy(model, np.random.default_rng(0), greedy=True)
    with torch.no_grad():
        out = model.policy_out(torch.from_numpy(x))
        ref = gaussian_mean_var(out, model.mean_squash)[0].numpy()
    a = greedy(x)
    np.testing.assert_allclose(a, ref, rtol=1e-6, atol=1e-6)
    assert np.abs(out[:, :3].numpy()).max() > 5.0                      # raw means far out of bounds
    assert (a >= CAR[0]).all() and (a <= CAR[1]).all()
    constant_head(model, (0.0, 2.0, -1.0), (raw_for_var(0.04),) * 3)
    n = 20_000
    s = algo.make_policy(model, np.random.default_rng(3))(obs_batch(n))
    mean = [0.0, 0.5 + 0.5 * math.tanh(2.0), 0.5 - 0.5 * math.tanh(1.0)]
    np.testing.assert_array_less(np.abs(s.mean(0) - mean), 5 * math.sqrt(0.04 / n))
    np.testing.assert_allclose(s.var(0), 0.04, rtol=0.05)


def test_bounded_loss_uses_the_squashed_mean():
    """ActorCriticAlgorithm.loss of a tanh model: the policy loss is -sum_t logN(a_t; mu_t,
    var_t) (R_t - V_t) with mu_t the squashed mean of the head's output."""
    algo, model = tanh_model()
    obs = torch.from_numpy(obs_batch(3)).unsqueeze(1)
    actions = torch.tensor([[[0.9, 0.2, 0.0]], [[-0.4, 1.0, 0.3]]])
    ro = Rollout(obs, actions, torch.tensor([[1.0], [0.5]]), torch.zeros(2, 1, dtype=torch.bool),
                 torch.zeros(2, 1, dtype=torch.bool))
    _, stats = algo.loss(model, ro)
    with torch.no_grad():
        out, v = model(obs.reshape(3, 3))
        returns = torch.tensor([1.0 + 0.99 * (0.5 + 0.99 * v[2].item()), 0.5 + 0.99 * v[2].item()])
        raw_mu, var = out[:2, :3], F.softplus(out[:2, 3:]) + VAR_EPS
        mu = torch.tensor([0.0, 0.5, 0.5]) + torch.tensor([1.0, 0.5, 0.5]) * torch.tanh(raw_mu)
        logp = -0.5 * ((actions[:, 0] - mu) ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)
        expected = -(logp * (returns - v[:2])).sum()
        unsquashed = -0.5 * ((actions[:, 0] - raw_mu) ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)
    torch.testing.assert_close(stats["loss/policy"], expected, rtol=1e-5, atol=1e-5)
    assert abs(expected + (unsquashed * (returns - v[:2])).sum()) > 1e-4      # the squash is visible


def test_bounded_mean_with_discrete_actions_is_refused():
    """gaussian_mean tanh with a Discrete action space: one EnvError line naming the value, the
    env and its actions, and what is accepted."""
    algo = ActorCriticAlgorithm(Config(env="x", gaussian_mean="tanh"))
    with pytest.raises(EnvError) as info:
        algo.check_spaces(OBS, gym.spaces.Discrete(2), "CartPole-v1")
    msg = str(info.value)
    assert "\n" not in msg and "gaussian-mean tanh" in msg and "'CartPole-v1'" in msg
    assert "Discrete(2)" in msg and "linear" in msg
    ActorCriticAlgorithm(Config(env="x")).check_spaces(OBS, gym.spaces.Discrete(2), "CartPole-v1")


def test_bounds_too_wide_for_float32_are_refused_with_the_bounded_mean():
    """Finite float64 bounds of +-1e300: their half-width is inf in float32, so gaussian_mean tanh
    refuses them in one line (the linear mean takes them); float32's own extremes still fit."""
    wide = gym.spaces.Box(-1e300, 1e300, (1,), np.float64)
    with pytest.raises(EnvError) as info:
        ActorCriticAlgorithm(Config(env="x", gaussian_mean="tanh")).check_spaces(OBS, wide, "Wide-v0")
    assert "\n" not in str(info.value) and "too wide for float32" in str(info.value) and "'Wide-v0'" in str(info.value)
    ActorCriticAlgorithm(Config(env="x")).check_spaces(OBS, wide, "Wide-v0")
    big = float(np.finfo(np.float32).max)
    center, half = mean_center_half(np.array([-big, 0.0]), np.array([big, big]))
    assert np.isfinite(center).all() and np.isfinite(half).all()
    np.testing.assert_array_equal(half, np.array([big, big / 2], np.float32))


def test_a_bounded_agent_loaded_onto_other_bounds_is_refused(tmp_path):
    """asyncrl.load(path, env=...) of a gaussian_mean tanh agent: an env whose action bounds
    differ from the saved ones (same shape) is refused, naming both; the same bounds load. A
    linear-mean agent loads onto other bounds as before (only the clip differs)."""
    saved = make_agent(gaussian_mean="tanh").save(str(tmp_path / "tanh.pt"))
    with pytest.raises(EnvError, match=r"action space Box\(-1.0, 1.0, .*was trained with Box\(-0.5, 1.5"):
        asyncrl.load(saved, env=lambda: RecordingBoxEnv(length=3, low=-1.0, high=1.0))
    agent = asyncrl.load(saved, env=lambda: RecordingBoxEnv(length=3, low=-0.5, high=1.5))
    np.testing.assert_array_equal(agent.model.mean_squash[0].numpy(), [0.5])
    linear = make_agent().save(str(tmp_path / "linear.pt"))
    asyncrl.load(linear, env=lambda: RecordingBoxEnv(length=3, low=-1.0, high=1.0))
