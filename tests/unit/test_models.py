"""The acting paths equal the model's own forward."""
import numpy as np
import torch

from asyncrl.config import Config
from asyncrl.models import ActorCritic, QNetwork, mlp_torso, numpy_scores
from helpers import Wrapped


def _obs(n=7, d=4):
    return np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)


def test_numpy_mirror_equals_torch_for_mlp_heads():
    """NumPy acting on views of the parameters gives the torch outputs (relu and tanh)."""
    for act in ("relu", "tanh"):
        torso, feat = mlp_torso(4, [16, 8], act)
        ac = ActorCritic(torso, feat, 3)
        q = QNetwork(mlp_torso(4, [16, 8], act)[0], 8, 3)
        x = _obs()
        with torch.no_grad():
            np.testing.assert_allclose(numpy_scores(ac.torso, ac.policy, ac.policy_out)(x),
                                       ac.policy_out(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(numpy_scores(q.torso, q.q, q)(x), q(torch.from_numpy(x)).numpy(),
                                       rtol=1e-5, atol=1e-6)


def test_numpy_mirror_reads_parameters_live():
    """After an in-place parameter update the same mirror sees the new values."""
    torso, feat = mlp_torso(4, [8], "tanh")
    ac = ActorCritic(torso, feat, 2)
    f = numpy_scores(ac.torso, ac.policy, ac.policy_out)
    with torch.no_grad():
        ac.policy.bias.add_(5.0)
        np.testing.assert_allclose(f(_obs()), ac.policy_out(torch.from_numpy(_obs())).numpy(), rtol=1e-5)


def test_fallback_for_other_torsos():
    """A torso the mirror does not know is run through torch."""
    torso, feat = mlp_torso(4, [8], "relu")
    ac = ActorCritic(Wrapped(torso), feat, 2)
    x = _obs()
    with torch.no_grad():
        np.testing.assert_allclose(numpy_scores(ac.torso, ac.policy, ac.policy_out)(x),
                                   ac.policy_out(torch.from_numpy(x)).numpy())


def test_actor_critic_default_torsos_separate_mlps_and_share_the_cnn():
    """By default an MLP policy and value get a torso each (tanh), while the CNN and an LSTM
    core are shared (the paper's Atari networks); --shared-torso / --no-shared-torso force it."""
    import gymnasium as gym

    from asyncrl.algos import make_algorithm
    from asyncrl.models import AtariCNN

    vec = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    img = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    acts = gym.spaces.Discrete(2)

    def build(obs_space, **kw):
        return make_algorithm(Config(algo="a3c", env="x", **kw)).build_model(obs_space, acts)

    mlp = build(vec)
    assert mlp.value_torso is not None and isinstance(mlp.torso[1], torch.nn.Tanh)
    assert build(vec, shared_torso="yes").value_torso is None
    assert build(vec, net="lstm").value_torso is None
    cnn = build(img)
    assert isinstance(cnn.torso, AtariCNN) and cnn.value_torso is None
    assert isinstance(build(img, shared_torso="no").value_torso, AtariCNN)
