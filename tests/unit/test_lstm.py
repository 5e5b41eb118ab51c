"""The LSTM core (--net lstm): step / unroll / resets / truncated BPTT, the NumPy acting
mirror RecurrentScores, the collectors' state0 / starts, and the recurrent loss.

Conventions under test (models.ActorCritic, rollout.Rollout):
  * unroll(obs [T, B, D], (h, c) [B, H], starts [T, B]) zeroes env b's state *before*
    step t where starts[t, b] (obs[t, b] is an episode's first observation), then steps;
    it returns the state *after* each step.
  * A segment's state0 is the state the actor had before obs[0]: a constant (no graph), so
    the gradient of a segment's loss flows through that segment's steps only.
  * Collectors zero an environment's acting state when its episode starts, and set
    starts[t + 1, b] when env b's episode ended at step t.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from asyncrl.algos.actor_critic import (ActorCriticAlgorithm, categorical_log_prob_entropy,
                                        gaussian_log_prob_entropy, policy_gradient_loss)
from asyncrl.config import Config
from asyncrl.envs import EnvFactory
from asyncrl.vector import make_vector_env
from asyncrl.nets import ActorCritic, RecurrentScores
from asyncrl.rollout import EpisodeSegmentCollector, Rollout, VectorSegmentCollector
from helpers import Wrapped, spy_returns

D, H, A = 3, 8, 2
OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (D,), np.float32)


def lstm_algo(**kw) -> ActorCriticAlgorithm:
    return ActorCriticAlgorithm(Config(env="x", net="lstm", lstm_size=H, hidden=[8], **{"activation": "relu", **kw}))


def lstm_model(seed: int = 0, continuous: bool = False, obs_space=OBS_SPACE, randomize: bool = True,
               **kw) -> tuple[ActorCriticAlgorithm, ActorCritic]:
    """An LSTM actor-critic (torso [8], core H=8). `randomize`: every parameter, biases
    included, is redrawn N(0, 0.5^2) so that no term of the cell can hide behind a zero."""
    torch.manual_seed(seed)
    algo = lstm_algo(**kw)
    action_space = gym.spaces.Box(-2.0, 2.0, (A,), np.float32) if continuous else gym.spaces.Discrete(A)
    model = algo.build_model(obs_space, action_space)
    assert model.recurrent and model.core.hidden_size == H and model.value_torso is None
    if randomize:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, 0.5)
    return algo, model


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def no_starts(T, B):
    return torch.zeros(T, B, dtype=torch.bool)


# --------------------------------------------------------------------------- (a) step = unroll
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_step_by_step_equals_unroll(dtype, tol):
    """model.step applied T=6 times to B=3 envs from a nonzero state gives unroll's policy
    outputs, values, and the states after every step (h and c)."""
    _, model = lstm_model()
    model.to(dtype)
    T, B = 6, 3
    obs = rand(T, B, D, seed=1, dtype=dtype)
    state0 = (rand(B, H, seed=2, dtype=dtype), rand(B, H, seed=3, dtype=dtype))
    with torch.no_grad():
        pi_u, v_u, (h_u, c_u) = model.unroll(obs, state0, no_starts(T, B))
        assert pi_u.shape == (T, B, A) and v_u.shape == (T, B) and h_u.shape == c_u.shape == (T, B, H)
        state = state0
        for t in range(T):
            pi, v, state = model.step(obs[t], state)
            torch.testing.assert_close(pi_u[t], pi, rtol=tol, atol=tol)
            torch.testing.assert_close(v_u[t], v, rtol=tol, atol=tol)
            torch.testing.assert_close(h_u[t], state[0], rtol=tol, atol=tol)
            torch.testing.assert_close(c_u[t], state[1], rtol=tol, atol=tol)


def test_step_equals_lstmcell_by_hand():
    """One step by hand: x = relu(W0 o + b0); gates = W_ih x + b_ih + W_hh h + b_hh split
    (i, f, g, o); c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c');
    policy = W_pi h' + b_pi, value = w_v . h' + b_v (float64)."""
    _, model = lstm_model()
    model.double()
    o = rand(2, D, seed=4, dtype=torch.float64)
    h, c = rand(2, H, seed=5, dtype=torch.float64), rand(2, H, seed=6, dtype=torch.float64)
    lin = model.torso[0]
    x = torch.relu(o @ lin.weight.T + lin.bias)
    core = model.core
    gates = x @ core.weight_ih_l0.T + core.bias_ih_l0 + h @ core.weight_hh_l0.T + core.bias_hh_l0
    i, f, g, og = gates.split(H, dim=1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h2 = torch.sigmoid(og) * torch.tanh(c2)
    with torch.no_grad():
        pi, v, (hh, cc) = model.step(o, (h, c))
    torch.testing.assert_close(hh, h2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cc, c2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pi, h2 @ model.policy.weight.T + model.policy.bias, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(v, (h2 @ model.value.weight.T + model.value.bias).squeeze(-1),
                               rtol=1e-12, atol=1e-12)


def test_initial_state_is_zero():
    """initial_state(B) is a pair of zero [B, H] tensors on the model's device."""
    _, model = lstm_model()
    h, c = model.initial_state(4)
    assert h.shape == c.shape == (4, H) and not h.any() and not c.any()
    assert h.device == model.value.weight.device


# --------------------------------------------------------------------------- (b) resets
@pytest.mark.parametrize("k", [1, 3, 5])
def test_reset_inside_a_segment_equals_two_separate_unrolls(k):
    """starts[k, 0] (env 0 of B=2 begins an episode at step k): env 0's outputs are those of
    unrolling obs[:k] from its state0, then obs[k:] from a zero state; env 1 is unaffected
    (equal to unrolling it alone without resets)."""
    _, model = lstm_model()
    model.double()
    T, B = 6, 2
    obs = rand(T, B, D, seed=7, dtype=torch.float64)
    h0, c0 = rand(B, H, seed=8, dtype=torch.float64), rand(B, H, seed=9, dtype=torch.float64)
    starts = no_starts(T, B)
    starts[k, 0] = True
    with torch.no_grad():
        pi, v, (hs, cs) = model.unroll(obs, (h0, c0), starts)
        a = model.unroll(obs[:k, :1], (h0[:1], c0[:1]), no_starts(k, 1))
        zero = model.initial_state(1)
        b = model.unroll(obs[k:, :1], (zero[0].double(), zero[1].double()), no_starts(T - k, 1))
        e1 = model.unroll(obs[:, 1:], (h0[1:], c0[1:]), no_starts(T, 1))
    for got, first, second, other in ((pi, a[0], b[0], e1[0]), (v, a[1], b[1], e1[1]),
                                      (hs, a[2][0], b[2][0], e1[2][0]), (cs, a[2][1], b[2][1], e1[2][1])):
        torch.testing.assert_close(got[:k, :1], first, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[k:, :1], second, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[:, 1:], other, rtol=1e-12, atol=1e-12)
    # the reset is visible: without it env 0 would differ from step k on
    with torch.no_grad():
        _, v_nr, _ = model.unroll(obs, (h0, c0), no_starts(T, B))
    assert not torch.allclose(v_nr[k:, 0], v[k:, 0])


def test_start_at_step_zero_ignores_state0():
    """starts[0, b]: env b's state0 is not used (its first step starts from zeros); the other
    env's state0 is."""
    _, model = lstm_model()
    model.double()
    T, B = 4, 2
    obs = rand(T, B, D, seed=10, dtype=torch.float64)
    h0, c0 = rand(B, H, seed=11, dtype=torch.float64), rand(B, H, seed=12, dtype=torch.float64)
    starts = no_starts(T, B)
    starts[0, 1] = True
    with torch.no_grad():
        _, v, _ = model.unroll(obs, (h0, c0), starts)
        _, v_zero, _ = model.unroll(obs, (h0 * torch.tensor([[1.0], [0.0]], dtype=torch.float64),
                                          c0 * torch.tensor([[1.0], [0.0]], dtype=torch.float64)),
                                    no_starts(T, B))
        _, v_keep, _ = model.unroll(obs, (h0, c0), no_starts(T, B))
    torch.testing.assert_close(v, v_zero, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(v[:, 1], v_keep[:, 1]) and torch.allclose(v[:, 0], v_keep[:, 0])


def test_unroll_does_not_modify_its_inputs():
    """unroll leaves state0 and obs untouched (the collector's buffers are reused)."""
    _, model = lstm_model()
    obs = rand(5, 2, D, seed=13)
    h0, c0 = rand(2, H, seed=14), rand(2, H, seed=15)
    starts = no_starts(5, 2)
    starts[2] = True
    copies = [x.clone() for x in (obs, h0, c0, starts)]
    with torch.no_grad():
        model.unroll(obs, (h0, c0), starts)
    for x, y in zip((obs, h0, c0, starts), copies):
        assert torch.equal(x, y)


# --------------------------------------------------------------------------- (c) truncated BPTT
def test_gradient_flows_through_the_earlier_steps_of_the_segment():
    """A loss on the last step's value has a nonzero gradient w.r.t. obs[0] (it reaches
    back through the recurrence), and its gradient w.r.t. W_hh differs from the one of an
    unroll that cuts the graph between steps (so it is not one-step backprop)."""
    _, model = lstm_model()
    T, B = 5, 2
    obs = rand(T, B, D, seed=16).requires_grad_(True)
    state0 = (rand(B, H, seed=17), rand(B, H, seed=18))
    _, v, _ = model.unroll(obs, state0, no_starts(T, B))
    g_obs, g_whh = torch.autograd.grad(v[T - 1].sum(), (obs, model.core.weight_hh_l0))
    assert g_obs[0].abs().sum() > 1e-6
    # reference: the same forward, state detached between steps
    h, c = state0
    for t in range(T):
        h, c = model.cell(model.torso(obs[t]), (h.detach(), c.detach()))
    v_cut = model.value(h).squeeze(-1)
    torch.testing.assert_close(v_cut, v[T - 1])                    # same numbers...
    g_whh_cut, = torch.autograd.grad(v_cut.sum(), model.core.weight_hh_l0)
    assert (g_whh - g_whh_cut).abs().max() > 1e-4                  # ...different gradient


def test_gradient_does_not_cross_an_episode_start():
    """starts[k, 0]: a loss on env 0's steps >= k has zero gradient w.r.t. env 0's earlier
    observations and its state0, and w.r.t. everything of env 1."""
    _, model = lstm_model()
    T, B, k = 6, 2, 3
    obs = rand(T, B, D, seed=19).requires_grad_(True)
    h0, c0 = rand(B, H, seed=20).requires_grad_(True), rand(B, H, seed=21).requires_grad_(True)
    starts = no_starts(T, B)
    starts[k, 0] = True
    pi, v, _ = model.unroll(obs, (h0, c0), starts)
    g_obs, g_h0, g_c0 = torch.autograd.grad(v[k:, 0].sum() + pi[k:, 0].sum(), (obs, h0, c0), allow_unused=True)
    assert not g_obs[:k].any() and not g_obs[:, 1].any()
    assert g_obs[k:, 0].abs().sum() > 0
    # unroll detaches the state it is given (truncated BPTT): no gradient reaches it at all
    assert g_h0 is None and g_c0 is None


def test_segment_state0_from_the_actor_is_a_constant():
    """The state0 an actor hands over (Policy.get_state after acting) carries no graph and
    does not require grad, so the loss's gradient stops at the segment's start; the loss
    and its parameter gradients are the same with state0 detached or turned into a leaf
    that requires grad (which then gets a gradient of its own, into nothing else)."""
    algo, model = lstm_model()
    policy = algo.make_policy(model, np.random.default_rng(0), n_envs=2)
    for t in range(4):
        policy(rand(2, D, seed=30 + t).numpy())
    h0, c0 = policy.get_state()
    assert not h0.requires_grad and h0.grad_fn is None and not c0.requires_grad and c0.grad_fn is None
    assert h0.abs().sum() > 0
    T = 3
    obs = rand(T + 1, 2, D, seed=22)

    def loss_and_grads(state0):
        ro = Rollout(obs, torch.tensor([[0, 1], [1, 1], [0, 0]]), rand(T, 2, seed=23),
                     torch.zeros(T, 2, dtype=torch.bool), torch.zeros(T, 2, dtype=torch.bool),
                     state0=state0, starts=no_starts(T + 1, 2))
        loss, _ = algo.loss(model, ro)
        return loss, torch.autograd.grad(loss, list(model.parameters()))

    loss_a, grads_a = loss_and_grads((h0, c0))
    leaf = (h0.clone().requires_grad_(True), c0.clone().requires_grad_(True))
    loss_b, grads_b = loss_and_grads(leaf)
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=0)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, rtol=0, atol=0)


# --------------------------------------------------------------------------- (d) RecurrentScores
def mirror_model(path: str, seed: int = 0) -> ActorCritic:
    _, model = lstm_model(seed=seed)
    if path == "torch":
        model.torso = Wrapped(model.torso)
    return model


RESETS = {2: [False, True, False], 4: [True, False, True], 5: [False, False, False], 6: [True, True, True]}


@pytest.mark.parametrize("path", ["numpy", "torch"])
def test_recurrent_scores_equals_model_step_with_resets(path):
    """B=3 envs, 8 steps, resets of some rows before steps 2, 4, 5 (none) and 6 (all):
    RecurrentScores' outputs and state() equal model.step's policy outputs and states."""
    model = mirror_model(path)
    rs = RecurrentScores(model, 3)
    assert (rs.torso_np is not None) == (path == "numpy")
    state = model.initial_state(3)
    for t in range(8):
        if t in RESETS:
            mask = np.array(RESETS[t])
            rs.reset(mask)
            keep = torch.from_numpy(~mask).float().unsqueeze(-1)
            state = (state[0] * keep, state[1] * keep)
        x = rand(3, D, seed=100 + t)
        out = rs(x.numpy())
        with torch.no_grad():
            pi, _, state = model.step(x, state)
        assert isinstance(out, np.ndarray) and out.shape == (3, A) and out.dtype == np.float32
        np.testing.assert_allclose(out, pi.numpy(), rtol=1e-5, atol=1e-6)
        h, c = rs.state()
        np.testing.assert_allclose(h.numpy(), state[0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c.numpy(), state[1].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", ["numpy", "torch"])
def test_recurrent_scores_reset_zeroes_only_masked_rows(path):
    """reset(mask) zeroes h and c of the masked rows and leaves the others bit for bit;
    reset() (no mask) and an all-False mask zero all rows / nothing."""
    model = mirror_model(path)
    rs = RecurrentScores(model, 3)
    for t in range(3):
        rs(rand(3, D, seed=200 + t).numpy())
    h, c = rs.state()
    assert (h.abs().sum(1) > 0).all()
    rs.reset(np.array([False, False, False]))
    assert torch.equal(rs.state()[0], h) and torch.equal(rs.state()[1], c)
    rs.reset(np.array([False, True, False]))
    h2, c2 = rs.state()
    assert not h2[1].any() and not c2[1].any()
    assert torch.equal(h2[[0, 2]], h[[0, 2]]) and torch.equal(c2[[0, 2]], c[[0, 2]])
    rs.reset()
    h3, c3 = rs.state()
    assert not h3.any() and not c3.any()


@pytest.mark.parametrize("path", ["numpy", "torch"])
def test_recurrent_scores_state_returns_copies(path):
    """state() is a copy: changing it does not change the acting state, and later acting
    steps (which update the state in place in the NumPy path) do not change it."""
    model = mirror_model(path)
    rs = RecurrentScores(model, 2)
    rs(rand(2, D, seed=300).numpy())
    h, c = rs.state()
    h_keep, c_keep = h.clone(), c.clone()
    h.add_(1.0)
    c.mul_(3.0)
    torch.testing.assert_close(rs.state()[0], h_keep, rtol=0, atol=0)
    torch.testing.assert_close(rs.state()[1], c_keep, rtol=0, atol=0)
    s = rs.state()
    rs(rand(2, D, seed=301).numpy())
    rs.reset(np.array([True, False]))
    torch.testing.assert_close(s[0], h_keep, rtol=0, atol=0)
    torch.testing.assert_close(s[1], c_keep, rtol=0, atol=0)
    assert isinstance(s[0], torch.Tensor) and s[0].dtype == torch.float32


def test_recurrent_scores_reads_parameters_live():
    """After an in-place update of the parameters (as a hogwild worker's pull does) the same
    RecurrentScores computes with the new values."""
    model = mirror_model("numpy")
    rs = RecurrentScores(model, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    x = rand(2, D, seed=400)
    out = rs(x.numpy())
    with torch.no_grad():
        pi, _, _ = model.step(x, model.initial_state(2))
    np.testing.assert_allclose(out, pi.numpy(), rtol=1e-5, atol=1e-6)


def test_policy_reset_and_get_state():
    """A recurrent Policy forwards reset_state / get_state to its RecurrentScores; a
    feed-forward one has no state (get_state() is None, reset_state() a no-op)."""
    algo, model = lstm_model()
    p = algo.make_policy(model, np.random.default_rng(0), n_envs=2)
    assert isinstance(p.recurrent, RecurrentScores)
    a = p(rand(2, D, seed=500).numpy())
    assert a.shape == (2,) and a.dtype.kind == "i"
    assert p.get_state()[0].abs().sum() > 0
    p.reset_state(np.array([True, False]))
    assert not p.get_state()[0][0].any() and p.get_state()[0][1].any()
    p.reset_state()
    assert not p.get_state()[0].any()
    ff = ActorCriticAlgorithm(Config(env="x", hidden=[8]))
    fp = ff.make_policy(ff.build_model(OBS_SPACE, gym.spaces.Discrete(A)), np.random.default_rng(0))
    assert fp.get_state() is None and fp.recurrent is None
    fp.reset_state()


@pytest.mark.parametrize("greedy", [True, False])
def test_recurrent_gaussian_policy(greedy):
    """A continuous LSTM policy acts with the Gaussian of model.step's head output: greedy
    gives the mean, sampling gives mean + sqrt(softplus(raw) + eps) * N(0, 1)."""
    algo, model = lstm_model(continuous=True)
    p = algo.make_policy(model, np.random.default_rng(5), greedy=greedy, n_envs=2)
    rng = np.random.default_rng(5)
    state = model.initial_state(2)
    for t in range(3):
        x = rand(2, D, seed=600 + t)
        a = p(x.numpy())
        with torch.no_grad():
            out, _, state = model.step(x, state)
        mu = out[:, :A].numpy()
        if greedy:
            np.testing.assert_allclose(a, mu, rtol=1e-5, atol=1e-6)
        else:
            std = np.sqrt(np.logaddexp(0.0, out[:, A:].numpy()) + 1e-5)
            np.testing.assert_allclose(a, mu + std * rng.standard_normal((2, A), dtype=np.float32),
                                       rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- (e) collectors
CARTPOLE_OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)


def cartpole_policy(n_envs: int, seed: int = 0):
    algo, model = lstm_model(seed=seed, obs_space=CARTPOLE_OBS)
    return algo, model, algo.make_policy(model, np.random.default_rng(seed), n_envs=n_envs)


def snapshot(ro: Rollout) -> dict:
    """Copies of a rollout's tensors (collectors return views into reused buffers)."""
    out = {}
    for k in ("obs", "actions", "rewards", "terminated", "truncated", "starts", "final_obs", "final_idx"):
        x = getattr(ro, k)
        out[k] = None if x is None else x.clone()
    out["state0"] = None if ro.state0 is None else tuple(s.clone() for s in ro.state0)
    return out


def test_episode_collector_state0_and_starts():
    """EpisodeSegmentCollector (hogwild) on CartPole-v1 with t_max=4: an episode's first
    segment has starts[0] = True and state0 = zeros (also after the acting state was
    nonzero); later segments of the same episode have starts[0] = False and a nonzero
    state0 equal to the actor's state after the previous segment, which is also the state
    the loss's unroll of that previous segment ends in; starts[1:] is never set."""
    _, model, policy = cartpole_policy(1)
    env = gym.make("CartPole-v1")
    col = EpisodeSegmentCollector(env, t_max=4, seed=0)
    first_of_episode = True
    seen_first = seen_later = seen_second_episode = 0
    prev = None
    episodes = 0
    for _ in range(40):
        ro, finished = col.collect(policy, 4)
        s = snapshot(ro)
        T = ro.length
        assert s["starts"].shape == (T + 1, 1) and s["starts"].dtype == torch.bool
        assert not s["starts"][1:].any()
        h0, c0 = s["state0"]
        assert h0.shape == c0.shape == (1, H)
        if first_of_episode:
            assert bool(s["starts"][0, 0])
            assert not h0.any() and not c0.any()
            seen_first += 1
            seen_second_episode += episodes > 0
        else:
            assert not bool(s["starts"][0, 0])
            assert h0.abs().sum() > 0
            torch.testing.assert_close(h0, prev["after"][0], rtol=0, atol=0)
            torch.testing.assert_close(c0, prev["after"][1], rtol=0, atol=0)
            # the learner's unroll of the previous segment ends in this very state
            with torch.no_grad():
                _, _, (hs, cs) = model.unroll(prev["obs"][:-1], prev["state0"], prev["starts"][:-1])
            torch.testing.assert_close(hs[-1], h0, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(cs[-1], c0, rtol=1e-5, atol=1e-6)
            seen_later += 1
        s["after"] = policy.get_state()
        prev = s
        first_of_episode = finished is not None
        episodes += finished is not None
    env.close()
    assert seen_first >= 2 and seen_later >= 5 and seen_second_episode >= 1


class StateSpy:
    """Wraps a recurrent policy; records the acting state before every call."""

    def __init__(self, policy):
        self.policy = policy
        self.before: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, obs):
        self.before.append(self.policy.get_state())
        return self.policy(obs)

    def reset_state(self, mask=None):
        self.policy.reset_state(mask)

    def get_state(self):
        return self.policy.get_state()


def test_vector_collector_state0_starts_and_resets():
    """VectorSegmentCollector (sync) on 3 CartPole-v1 envs, t_max=5, 20 segments:
      * the first segment: starts[0] all True, state0 zeros;
      * starts[t+1, b] == terminated[t, b] | truncated[t, b] (obs[t+1] begins b's next episode);
      * where starts[t, b] (t >= 1), the actor's state of env b before acting on obs[t] is
        zero, while the other envs' rows are not;
      * state0 is the actor's state before obs[0], and the next segment's starts[0] carries
        the last step's episode ends;
      * the learner's unroll(obs, state0, starts) reproduces the actor's states: hs[t] equals
        the actor's state after step t wherever env b did not start an episode at t+1.
    Both an episode end in the middle of a segment and at its last step must occur."""
    B, T = 3, 5
    _, model, policy = cartpole_policy(B, seed=1)
    venv = make_vector_env(EnvFactory("CartPole-v1"), B, "inline")
    col = VectorSegmentCollector(venv, T, seed=0)
    spy = StateSpy(policy)
    mid = at_end = 0
    carried = None
    try:
        for seg in range(20):
            spy.before.clear()
            ro, finished = col.collect(spy)
            s = snapshot(ro)
            starts, done = s["starts"], s["terminated"] | s["truncated"]
            assert starts.shape == (T + 1, B)
            if seg == 0:
                assert starts[0].all() and not s["state0"][0].any() and not s["state0"][1].any()
            else:
                assert torch.equal(starts[0], carried)
                for b in np.flatnonzero(carried.numpy()):
                    assert not s["state0"][0][b].any() and not s["state0"][1][b].any()
            assert torch.equal(starts[1:], done)
            assert sorted((t, b) for t, b, _, _ in finished) == sorted(map(tuple, done.nonzero().tolist()))
            for t in range(T):
                h_act, c_act = spy.before[t]
                if t == 0:
                    torch.testing.assert_close(h_act, s["state0"][0], rtol=0, atol=0)
                    torch.testing.assert_close(c_act, s["state0"][1], rtol=0, atol=0)
                for b in range(B):
                    if t >= 1 and starts[t, b]:
                        assert not h_act[b].any() and not c_act[b].any()
                        others = [o for o in range(B) if o != b and not starts[t, o]]
                        assert all(h_act[o].abs().sum() > 0 for o in others)
                        mid += 1
            at_end += int(done[T - 1].sum())
            with torch.no_grad():
                _, _, (hs, cs) = model.unroll(s["obs"][:T], s["state0"], starts[:T])
            after = spy.before[1:] + [policy.get_state()]
            for t in range(T):
                keep = ~starts[t + 1]
                torch.testing.assert_close(hs[t][keep], after[t][0][keep], rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(cs[t][keep], after[t][1][keep], rtol=1e-5, atol=1e-6)
            carried = starts[T].clone()
    finally:
        venv.close()
    assert mid >= 1 and at_end >= 1, (mid, at_end)


def test_feed_forward_rollouts_have_no_state():
    """Feed-forward policies give rollouts with state0 = starts = None (both collectors)."""
    algo = ActorCriticAlgorithm(Config(env="x", hidden=[8]))
    model = algo.build_model(CARTPOLE_OBS, gym.spaces.Discrete(2))
    env = gym.make("CartPole-v1")
    ro, _ = EpisodeSegmentCollector(env, 3, 0).collect(algo.make_policy(model, np.random.default_rng(0)), 3)
    assert ro.state0 is None and ro.starts is None
    env.close()
    venv = make_vector_env(EnvFactory("CartPole-v1"), 2, "inline")
    ro, _ = VectorSegmentCollector(venv, 3, 0).collect(algo.make_policy(model, np.random.default_rng(0), n_envs=2))
    assert ro.state0 is None and ro.starts is None
    venv.close()


# --------------------------------------------------------------------------- (f) the recurrent loss
def sequential_reference(model, ro):
    """Per environment, model.step over obs[0..T] from state0, zeroing the state before
    obs[t] where starts[t]: policy outputs [T+1, B, P], values [T+1, B], and the states
    after each step (lists over t of (h, c) [B, H])."""
    T1, B = ro.obs.shape[:2]
    h, c = ro.state0
    pis, vs, states = [], [], []
    for t in range(T1):
        keep = (~ro.starts[t]).float().unsqueeze(-1)
        h, c = h * keep, c * keep
        pi, v, (h, c) = model.step(ro.obs[t], (h, c))
        pis.append(pi)
        vs.append(v)
        states.append((h, c))
    return torch.stack(pis), torch.stack(vs), states


def truncated_rollout(continuous: bool):
    """T=3, B=2, gamma 0.9:
      env 0: truncated after step 1 (obs[2, 0] begins the next episode, starts[2, 0]);
             its true final observation is final_obs (final_idx (1, 0));
      env 1: terminated at step 0 (starts[1, 1]); goes on to obs[3].
    state0 is nonzero (the segment continues earlier episodes)."""
    T, B = 3, 2
    obs = rand(T + 1, B, D, seed=700)
    starts = no_starts(T + 1, B)
    starts[2, 0] = True
    starts[1, 1] = True
    term = torch.zeros(T, B, dtype=torch.bool)
    term[0, 1] = True
    trunc = torch.zeros(T, B, dtype=torch.bool)
    trunc[1, 0] = True
    actions = rand(T, B, A, seed=701) * 2.0 if continuous else torch.tensor([[0, 1], [1, 1], [0, 0]])
    return Rollout(obs, actions, torch.tensor([[1.0, 0.5], [2.0, -1.0], [0.25, 3.0]]), term, trunc,
                   final_obs=rand(1, D, seed=702) * 2.0, final_idx=torch.tensor([[1, 0]]),
                   state0=(rand(B, H, seed=703), rand(B, H, seed=704)), starts=starts)


@pytest.mark.parametrize("continuous", [False, True], ids=["softmax", "gaussian"])
def test_recurrent_loss_bootstraps_final_obs_with_the_state_after_step_t(monkeypatch, continuous):
    """The truncated step (t=1, b=0) bootstraps from model.step(final_obs, state after step 1
    of env 0) - not from a zero state nor from V(obs[2, 0]) (the next episode's start);
    returns by hand (gamma 0.9):
        env 0: R2 = r2 + g V(obs[3,0]);  R1 = r1 + g V_final;  R0 = r0 + g R1
        env 1: R2 = r2 + g V(obs[3,1]);  R1 = r1 + g R2;        R0 = r0 (terminated)
    and the loss and its parameter gradients equal policy_gradient_loss on the step-by-step
    outputs with these returns."""
    algo, model = lstm_model(continuous=continuous, gamma=0.9)
    ro = truncated_rollout(continuous)
    seen = spy_returns(monkeypatch)
    loss, stats = algo.loss(model, ro)
    assert len(seen) == 1
    with torch.no_grad():
        pis, vs, states = sequential_reference(model, ro)
        _, v_final, _ = model.step(ro.final_obs, (states[1][0][:1], states[1][1][:1]))
        _, v_final_zero, _ = model.step(ro.final_obs, model.initial_state(1))
    vf = v_final.item()
    # discriminating (the returns are compared to 1e-5):
    assert abs(vf - v_final_zero.item()) > 1e-4 and abs(vf - vs[2, 0].item()) > 1e-4
    g, r, v = 0.9, ro.rewards, vs
    R0_2 = r[2, 0] + g * v[3, 0]
    R0_1 = r[1, 0] + g * vf
    R0_0 = r[0, 0] + g * R0_1
    R1_2 = r[2, 1] + g * v[3, 1]
    R1_1 = r[1, 1] + g * R1_2
    R1_0 = r[0, 1]
    expected = torch.tensor([[R0_0, R1_0], [R0_1, R1_1], [R0_2, R1_2]])
    torch.testing.assert_close(seen[0], expected, rtol=1e-5, atol=1e-5)
    # the loss and gradients: reference from model.step outputs with these returns
    grads = torch.autograd.grad(loss, list(model.parameters()))
    pis, vs, _ = sequential_reference(model, ro)
    T = ro.length
    if continuous:
        logp, ent = gaussian_log_prob_entropy(pis[:T], ro.actions)
    else:
        logp, ent = categorical_log_prob_entropy(pis[:T], ro.actions)
    ref_loss, ref_stats = policy_gradient_loss(logp, ent, vs[:T], expected, algo.cfg.entropy_beta,
                                               algo.cfg.value_coef)
    ref_grads = torch.autograd.grad(ref_loss, list(model.parameters()))
    torch.testing.assert_close(loss.detach(), ref_loss.detach(), rtol=1e-5, atol=1e-5)
    for k in ref_stats:
        torch.testing.assert_close(stats[k], ref_stats[k], rtol=1e-5, atol=1e-5)
    for gr, rg in zip(grads, ref_grads):
        torch.testing.assert_close(gr, rg, rtol=1e-4, atol=1e-5)


def test_recurrent_loss_hogwild_segment_bootstraps_from_obs_T(monkeypatch):
    """An EpisodeSegmentCollector-style segment (B=1, T=3) truncated at its last step, no
    final_obs: obs[3] is the true final observation, bootstrapped with the state after step 2:
    R2 = r2 + g V(obs[3]); R1 = r1 + g R2; R0 = r0 + g R1."""
    algo, model = lstm_model(gamma=0.9)
    T = 3
    trunc = torch.zeros(T, 1, dtype=torch.bool)
    trunc[2, 0] = True
    starts = no_starts(T + 1, 1)
    ro = Rollout(rand(T + 1, 1, D, seed=800), torch.tensor([[0], [1], [1]]), torch.tensor([[1.0], [2.0], [3.0]]),
                 torch.zeros(T, 1, dtype=torch.bool), trunc,
                 state0=(rand(1, H, seed=801), rand(1, H, seed=802)), starts=starts)
    seen = spy_returns(monkeypatch)
    algo.loss(model, ro)
    with torch.no_grad():
        _, vs, _ = sequential_reference(model, ro)
    R2 = 3.0 + 0.9 * vs[3, 0].item()
    R1 = 2.0 + 0.9 * R2
    R0 = 1.0 + 0.9 * R1
    torch.testing.assert_close(seen[0], torch.tensor([[R0], [R1], [R2]]), rtol=1e-5, atol=1e-5)


def test_chunked_unroll_equals_the_per_step_unroll():
    """unroll(..., keep=[t...]) (nn.LSTM over chunks between episode starts, the learner's
    form) gives the per-step unroll's policy outputs and values, and at each kept step t
    its (h, c); with resets at different steps for the two envs, a kept step in a chunk's
    middle, at the segment's start and at its end; and the same parameter gradients."""
    _, model = lstm_model()
    T, B = 7, 2
    obs = rand(T, B, D, seed=40)
    state0 = (rand(B, H, seed=41), rand(B, H, seed=42))
    starts = no_starts(T, B)
    starts[2, 0] = True
    starts[5, 1] = True
    keep = [0, 3, 6]
    pi_a, v_a, (hs, cs) = model.unroll(obs, state0, starts)
    pi_b, v_b, states = model.unroll(obs, state0, starts, keep=keep)
    torch.testing.assert_close(pi_b, pi_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v_b, v_a, rtol=1e-5, atol=1e-6)
    assert sorted(states) == keep
    for t in keep:
        torch.testing.assert_close(states[t][0], hs[t], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(states[t][1], cs[t], rtol=1e-5, atol=1e-6)
    params = list(model.parameters())
    ga = torch.autograd.grad((v_a.sum() + pi_a.sum()), params)
    gb = torch.autograd.grad((v_b.sum() + pi_b.sum()), params)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
