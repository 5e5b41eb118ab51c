"""The hogwild CNN actor-learner's replay: the learner backpropagates through the
activations its actor's batch-1 forwards kept (models.ActivationTape) instead of running
the CNN forward again, through autograd (ActorCritic.replay) or, for a softmax policy, in
closed form with no graph (ActorCriticAlgorithm.gradients). Both must give the gradient of
the ordinary path, and neither may be used when the tape is not a record of this rollout
at these parameters."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from asyncrl.algos import make_algorithm
from asyncrl.config import Config
from asyncrl.flat import attach_flat_grads_, flatten_params_
from asyncrl.learner import compute_grads
from asyncrl.nets import ActorCritic
from asyncrl.rollout import EpisodeSegmentCollector


@pytest.fixture(autouse=True)
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class ImageEnv(gym.Env):
    """Random byte images, random rewards, an episode of `length` steps; truncated instead
    of terminated when `truncate` (then s_T is bootstrapped from)."""

    def __init__(self, shape=(4, 84, 84), length=12, truncate=False, continuous=False):
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32) if continuous else gym.spaces.Discrete(6)
        self.length, self.truncate = length, truncate
        self.rng = np.random.default_rng(1)
        self.t = 0

    def _obs(self):
        return self.rng.integers(0, 256, self.observation_space.shape, dtype=np.uint8)

    def reset(self, seed=None, options=None):
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        return self._obs(), float(self.rng.normal()), end and not self.truncate, end and self.truncate, {}


def _setup(env: gym.Env, t_max: int = 5, **cfg):
    cfg = Config(algo="a3c", env="x", t_max=t_max, **cfg)
    algo = make_algorithm(cfg)
    torch.manual_seed(0)
    model = algo.build_model(env.observation_space, env.action_space)
    flat = flatten_params_(model)
    grad = attach_flat_grads_(model)
    with torch.no_grad():                 # a less uniform policy: larger policy gradients
        model.policy.weight.normal_(0.0, 0.1)
    policy = algo.make_policy(model, np.random.default_rng(0))
    if policy.tape is not None:
        policy.tape.watch(flat)           # as the hogwild worker does with theta'
    return algo, model, flat, grad, policy, EpisodeSegmentCollector(env, t_max, 0)


def _grads(algo, model, grad, ro):
    grad.zero_()
    loss, stats = algo.loss(model, ro)
    loss.backward()
    return float(loss.detach()), grad.clone()


def _both(algo, model, grad, ro):
    """(loss, gradient) with the rollout's tape, then without it (the ordinary forward)."""
    replayed = _grads(algo, model, grad, ro)
    tape, ro.tape = ro.tape, None
    ordinary = _grads(algo, model, grad, ro)
    ro.tape = tape
    return replayed, ordinary


@pytest.mark.parametrize("shape,t_max,truncate", [((4, 84, 84), 5, False), ((4, 84, 84), 5, True),
                                                  ((84, 84, 4), 5, False), ((4, 84, 84), 1, False),
                                                  ((84, 84), 3, False), ((2, 45, 53), 4, True)])
def test_replay_gives_the_gradient_of_a_second_forward(shape, t_max, truncate):
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(shape, length=7, truncate=truncate), t_max)
    assert policy.tape is not None
    lengths = set()
    for _ in range(6):                    # segments of t_max steps and shorter ones at episode ends
        ro, _ = collector.collect(policy, t_max)
        T = ro.length
        lengths.add((T, bool(ro.terminated[-1, 0]), bool(ro.truncated[-1, 0])))
        assert ro.tape.holds(ro.obs[:T, 0], model.torso)
        (l1, g1), (l2, g2) = _both(algo, model, grad, ro)
        # the tape holds NumPy's activations (models.NumpyCNN), equal to torch's to float32
        # rounding (about 1e-6 here), so the losses agree to that, not bit for bit
        assert l1 == pytest.approx(l2, rel=1e-5, abs=1e-5)
        assert float(g2.abs().max()) > 1e-3           # a gradient to compare
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=2e-5)
    if t_max > 1:                         # both kinds of segment were compared
        assert len({T for T, _, _ in lengths}) > 1 and any(e or c for _, e, c in lengths)


def _closed_form(algo, model, grad, ro):
    """(statistics, gradient) of the closed form, into a gradient full of garbage first: it
    must write every element."""
    grad.fill_(1e3)
    stats = algo.gradients(model, ro)
    return stats, grad.clone()


@pytest.mark.parametrize("shape,t_max,truncate", [((4, 84, 84), 5, False), ((4, 84, 84), 5, True),
                                                  ((84, 84, 4), 5, False), ((4, 84, 84), 1, False),
                                                  ((84, 84), 3, False), ((2, 45, 53), 4, True)])
def test_the_closed_form_gives_the_gradient_and_statistics_of_the_loss(shape, t_max, truncate):
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(shape, length=7, truncate=truncate), t_max)
    kinds = set()
    for _ in range(6):                    # full segments, and shorter ones ending an episode
        ro, _ = collector.collect(policy, t_max)
        kinds.add((ro.length, bool(ro.terminated[-1, 0]), bool(ro.truncated[-1, 0])))
        stats, g1 = _closed_form(algo, model, grad, ro)
        assert stats is not None          # it applied
        tape, ro.tape = ro.tape, None     # the ordinary path: a torch forward and autograd
        grad.zero_()
        loss, want_stats = algo.loss(model, ro)
        loss.backward()
        ro.tape = tape
        assert float(grad.abs().max()) > 1e-3
        torch.testing.assert_close(g1, grad, rtol=1e-4, atol=2e-5)
        assert stats == pytest.approx({k: float(v) for k, v in want_stats.items()}, rel=1e-5, abs=1e-5)
    if t_max > 1:
        assert len({T for T, _, _ in kinds}) > 1 and any(e or c for _, e, c in kinds)


def test_the_learner_takes_the_closed_form_where_it_applies(monkeypatch):
    """compute_grads: the closed form for a held tape, with no loss built and no torch CNN
    forward (V(s_T) through the acting NumPy mirror, once); the loss for anything else."""
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=100))
    ro, _ = collector.collect(policy, 5)
    losses, rows, seen = [], [], []
    orig_loss, orig_forward = type(algo).loss, type(model.torso).forward
    monkeypatch.setattr(type(algo), "loss", lambda self, *a: losses.append(1) or orig_loss(self, *a))
    monkeypatch.setattr(type(model.torso), "forward",
                        lambda self, x, tape=None: rows.append(x.shape[0]) or orig_forward(self, x, tape))
    features = ro.tape.features
    ro.tape.features = lambda obs: seen.append(obs.ctypes.data) or features(obs)
    compute_grads(algo, model, ro, grad, 40.0)
    assert losses == [] and rows == [] and seen == [ro.obs[5].data_ptr()]
    want = grad.clone()
    with torch.no_grad():
        flat.add_(0.0)                    # a write into theta': the tape no longer holds
    compute_grads(algo, model, ro, grad, 40.0)
    assert losses == [1] and rows == [6]
    torch.testing.assert_close(grad, want, rtol=1e-4, atol=2e-5)


def test_no_closed_form_without_a_held_tape_or_for_a_gaussian_policy():
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=100))
    ro, _ = collector.collect(policy, 5)
    policy(ro.obs[5].numpy())             # a sixth forward: no record of the segment
    assert algo.gradients(model, ro) is None
    ro.tape = None
    assert algo.gradients(model, ro) is None
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=100, continuous=True))
    ro, _ = collector.collect(policy, 5)
    assert ro.tape.holds(ro.obs[:5, 0], model.torso) and algo.gradients(model, ro) is None


def test_replay_runs_no_torch_cnn_forward(monkeypatch):
    """With the tape, the learner runs no torch forward of the CNN: V(s_T) goes through the
    acting NumPy mirror (one call of tape.features, on s_T), and equals the torch forward's."""
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=100))
    ro, _ = collector.collect(policy, 5)
    rows, seen = [], []
    orig = type(model.torso).forward

    def counting(self, x, tape=None):
        rows.append(x.view(-1, x.shape[-1]).shape[0] if x.dim() > 1 else 1)
        return orig(self, x, tape)
    monkeypatch.setattr(type(model.torso), "forward", counting)
    features = ro.tape.features
    ro.tape.features = lambda obs: seen.append(obs.ctypes.data) or features(obs)
    _grads(algo, model, grad, ro)
    assert rows == [] and seen == [ro.obs[5].data_ptr()]
    with torch.no_grad():
        torch.testing.assert_close(model.bootstrap_value(ro.tape, ro.obs[5]), model(ro.obs[5])[1],
                                   rtol=1e-5, atol=1e-5)
    ro.tape = None
    rows.clear()
    _grads(algo, model, grad, ro)
    assert rows == [6]                    # the ordinary path: s_0..s_5 in one batch


def test_a_tape_is_not_replayed_after_the_parameters_change():
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=100))
    ro, _ = collector.collect(policy, 5)
    assert ro.tape.holds(ro.obs[:5, 0], model.torso)
    with torch.no_grad():
        flat.add_(0.01)                   # an update (or a pull) after acting
    assert not ro.tape.holds(ro.obs[:5, 0], model.torso)
    (l1, g1), (l2, g2) = _both(algo, model, grad, ro)
    assert l1 == l2 and torch.equal(g1, g2)          # both took the ordinary path


def test_a_tape_is_not_replayed_after_an_extra_forward_or_for_other_rows():
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=100))
    ro, _ = collector.collect(policy, 5)
    obs = ro.obs[:5, 0]
    assert not ro.tape.holds(ro.obs[1:5, 0], model.torso)        # 4 rows: not this segment
    assert not ro.tape.holds(obs.clone(), model.torso)           # equal values, other memory
    policy(ro.obs[5].numpy())                                     # a sixth acting forward
    assert not ro.tape.holds(obs, model.torso)
    ro2, _ = collector.collect(policy, 5)                         # the next segment clears it
    assert ro2.tape.holds(ro2.obs[:5, 0], model.torso)


@pytest.mark.parametrize("kind", ["greedy", "mlp", "separate-torsos"])
def test_only_a_sampling_cnn_actor_with_one_torso_keeps_a_tape(kind):
    env = ImageEnv()
    if kind == "mlp":
        cfg = Config(algo="a3c", env="x", net="mlp")
    elif kind == "separate-torsos":
        cfg = Config(algo="a3c", env="x", shared_torso=False)
    else:
        cfg = Config(algo="a3c", env="x")
    algo = make_algorithm(cfg)
    model: ActorCritic = algo.build_model(env.observation_space, env.action_space)
    assert algo.make_policy(model, np.random.default_rng(0)).tape is not None or kind in ("mlp", "separate-torsos")
    policy = algo.make_policy(model, np.random.default_rng(0), greedy=kind == "greedy")
    assert policy.tape is None


def test_a_batch_actor_keeps_a_segment_of_rows_per_env():
    """The sync executor's policy (n_envs lockstep envs) keeps t_max x n_envs rows."""
    env = ImageEnv()
    algo = make_algorithm(Config(algo="a2c", env="x", t_max=5))
    model = algo.build_model(env.observation_space, env.action_space)
    policy = algo.make_policy(model, np.random.default_rng(0), n_envs=16)
    assert policy.tape is not None and policy.tape.rows == 80 and policy.rows_independent


def test_gaussian_policy_on_images_replays_too():
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=7, continuous=True))
    assert policy.tape is not None
    for _ in range(3):
        ro, _ = collector.collect(policy, 5)
        (l1, g1), (l2, g2) = _both(algo, model, grad, ro)
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=2e-5)


def test_an_unwatched_tape_is_never_replayed():
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=100))
    policy.tape._flat = None              # as a policy made outside a hogwild worker
    ro, _ = collector.collect(policy, 5)
    assert not ro.tape.holds(ro.obs[:5, 0], model.torso)


def test_the_hogwild_worker_loop_replays_every_full_segment(monkeypatch):
    """run_worker itself, in this process: its learner takes each segment's gradient in
    closed form from the tape (every segment here), and training changes the shared
    parameters."""
    import multiprocessing as mp
    import queue as queue_mod

    from asyncrl.envs import EnvFactory
    from asyncrl.executors.counter import StepCounter
    from asyncrl.executors.worker import WorkerSpec, run_worker
    from asyncrl.optim import build_optimizer

    cfg = Config(algo="a3c", env="x", t_max=5, workers=1)
    env = ImageEnv(length=1000)
    model = make_algorithm(cfg).build_model(env.observation_space, env.action_space)
    params = flatten_params_(model).clone()
    start = params.clone()
    ctx = mp.get_context("fork")
    spec = WorkerSpec(cfg, EnvFactory(lambda: ImageEnv(length=1000)), params, None,
                      build_optimizer(cfg, params.numel()), StepCounter(ctx, 0, 40, 1), (0, 40), 0.0, 0)
    calls = []
    orig = ActorCritic.replay_grads

    def spy(self, tape, obs, *rest):
        calls.append(obs.shape[0])
        return orig(self, tape, obs, *rest)
    monkeypatch.setattr(ActorCritic, "replay_grads", spy)
    run_worker(0, spec, queue_mod.Queue())
    assert calls == [5] * 8               # 40 steps: 8 segments of 5, every one in closed form
    assert not torch.equal(params, start)


def test_replay_without_flat_gradients_returns_the_fc_gradient_to_autograd():
    """With attached flat gradients the fc weight's gradient is accumulated in place; without
    them (.grad None) it goes back through autograd: the same gradients either way."""
    algo, model, flat, grad, policy, collector = _setup(ImageEnv(length=100))
    ro, _ = collector.collect(policy, 5)
    _, want = _grads(algo, model, grad, ro)
    for p in model.parameters():
        p.grad = None
    loss, _ = algo.loss(model, ro)
    loss.backward()
    got = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert ro.tape.holds(ro.obs[:5, 0], model.torso)   # the same tape served both


# --------------------------------------------------------------------------- sync (A2C)
def _image_env(i: int, length: int, truncate: bool) -> ImageEnv:
    env = ImageEnv(length=length + i % 2, truncate=truncate)   # episodes end at different steps
    env.rng = np.random.default_rng(10 + i)                    # and every env has its own images
    return env


def _sync_setup(B: int = 4, t_max: int = 5, length: int = 7, truncate: bool = False, split: bool = False):
    from asyncrl.vector import SplitVectorEnv
    from asyncrl.rollout import VectorSegmentCollector

    fns = [lambda i=i: _image_env(i, length, truncate) for i in range(B)]
    venv = (SplitVectorEnv(fns, 2, copy=False) if split else
            gym.vector.SyncVectorEnv(fns, copy=False, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP))
    algo = make_algorithm(Config(algo="a2c", env="x", t_max=t_max))
    torch.manual_seed(0)
    model = algo.build_model(venv.single_observation_space, venv.single_action_space)
    flat = flatten_params_(model)
    grad = attach_flat_grads_(model)
    with torch.no_grad():
        model.policy.weight.normal_(0.0, 0.1)
    policy = algo.make_policy(model, np.random.default_rng(0), n_envs=B)
    policy.tape.watch(flat)               # as the sync executor does
    return algo, model, flat, grad, policy, VectorSegmentCollector(venv, t_max, 0)


@pytest.mark.parametrize("truncate", [False, True])
def test_sync_replay_gives_the_gradient_of_a_second_forward(truncate):
    """A2C's batched learner replays the lockstep acting forwards (one per step, B rows
    each) instead of a forward over the [T, B] observations: the same loss and gradient,
    with episodes ending inside segments (terminated, or truncated: bootstrapped from the
    true final observation) and a shorter last segment."""
    algo, model, flat, grad, policy, collector = _sync_setup(truncate=truncate)
    ends = finals = 0
    for n in (5, 5, 5, 3):
        ro, _ = collector.collect(policy, n)
        assert ro.tape is policy.tape and ro.tape.holds(ro.obs[:n], model.torso)
        ends += int((ro.terminated | ro.truncated).sum())
        finals += ro.final_obs is not None
        (l1, g1), (l2, g2) = _both(algo, model, grad, ro)
        assert l1 == pytest.approx(l2, rel=1e-5, abs=1e-5)
        assert float(g2.abs().max()) > 1e-3
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=2e-5)
    assert ends >= 4 and (finals > 0) == truncate


def test_sync_learner_replays_and_runs_no_forward_over_the_segment(monkeypatch):
    """With a held tape the loss calls the model's replay, and the CNN forward runs only on
    the B rows of V(s_T) (no graph)."""
    algo, model, flat, grad, policy, collector = _sync_setup()
    ro, _ = collector.collect(policy, 5)
    rows = []
    orig = type(model.torso).forward

    def spy(self, x, tape=None):
        rows.append((x.shape[0], torch.is_grad_enabled()))
        return orig(self, x, tape)
    monkeypatch.setattr(type(model.torso), "forward", spy)
    loss, _ = algo.loss(model, ro)
    assert rows == [(4, False)]


def test_forwards_of_groups_of_envs_are_held_in_row_order():
    """A vector env that steps groups of envs while the next group's actions are chosen
    (SplitVectorEnv.step_acting) runs one forward per group: the tape holds them when they
    tile each step's rows in order, and not otherwise."""
    algo, model, flat, grad, policy, collector = _sync_setup(B=4)
    ro, _ = collector.collect(policy, 2)
    obs = ro.obs[:2]
    tape = policy.tape
    for order, held in (([(0, 0, 1), (0, 1, 4), (1, 0, 3), (1, 3, 4)], True),
                        ([(0, 1, 4), (0, 0, 1), (1, 0, 3), (1, 3, 4)], False),    # groups swapped
                        ([(0, 0, 1), (0, 1, 4), (1, 0, 3)], False),                # a group missing
                        ([(0, 0, 4), (1, 0, 4), (1, 0, 4)], False)):               # a step twice
        tape.clear()
        for t, a, b in order:
            policy(obs[t, a:b].numpy())
        assert tape.holds(obs, model.torso) == held, order
    tape.clear()
    for t, a, b in [(0, 0, 1), (0, 1, 4), (1, 0, 3), (1, 3, 4)]:
        policy(obs[t, a:b].numpy())
    (l1, g1), (l2, g2) = _both(algo, model, grad, ro)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=2e-5)


def test_group_calls_choose_the_actions_of_one_call():
    """rows_independent: sampling on consecutive groups of rows draws what one call on all
    rows draws (the Gumbel noise is taken in row order)."""
    algo, model, flat, grad, policy, collector = _sync_setup(B=4)
    obs = np.random.default_rng(3).integers(0, 256, (4, 4 * 84 * 84)).astype(np.uint8)
    a = [algo.make_policy(model, np.random.default_rng(7), n_envs=4) for _ in range(2)]
    whole = np.concatenate([a[0](obs) for _ in range(5)])
    parts = np.concatenate([np.concatenate([a[1](obs[:1]), a[1](obs[1:])]) for _ in range(5)])
    assert np.array_equal(whole, parts) and len(set(whole.tolist())) > 1


def test_a_sync_run_of_one_env_bootstraps_cut_episodes_from_their_final_observation():
    """B = 1 under the sync executor: episodes are cut inside segments (autoreset), where the
    hogwild path's bootstrap from obs[T] would be wrong; the learner (closed form or loss)
    must then take the path that reads final_obs, and agree with the forward everywhere."""
    algo, model, flat, grad, policy, collector = _sync_setup(B=1, truncate=True)
    cut = 0
    for _ in range(8):
        ro, _ = collector.collect(policy, 5)
        (l1, g1), (l2, g2) = _both(algo, model, grad, ro)
        assert l1 == pytest.approx(l2, rel=1e-5, abs=1e-5)
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=2e-5)
        if ro.final_obs is not None:
            cut += 1
            assert algo.gradients(model, ro) is None
        else:
            stats, g3 = _closed_form(algo, model, grad, ro)
            assert stats is not None
            torch.testing.assert_close(g3, g2, rtol=1e-4, atol=2e-5)
    assert cut >= 2


def test_a_split_vector_env_steps_while_groups_act_and_the_learner_replays_them():
    """SplitVectorEnv.step_acting under the collector: one forward per group per step (the
    worker's group first), held by the tape, and the replayed gradient is the forward's."""
    algo, model, flat, grad, policy, collector = _sync_setup(B=4, split=True)
    try:
        for n in (5, 5, 3):
            ro, _ = collector.collect(policy, n)
            assert policy.tape.k == 2 * n and ro.tape.holds(ro.obs[:n], model.torso)
            (l1, g1), (l2, g2) = _both(algo, model, grad, ro)
            assert l1 == pytest.approx(l2, rel=1e-5, abs=1e-5)
            torch.testing.assert_close(g1, g2, rtol=1e-4, atol=2e-5)
    finally:
        collector.venv.close()
