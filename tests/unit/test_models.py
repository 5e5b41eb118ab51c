"""The acting paths equal the model's own forward."""
import numpy as np
import pytest
import torch

from asyncrl.config import Config
from asyncrl.nets import ActorCritic, QNetwork, mlp_torso, numpy_scores
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
    from asyncrl.nets import AtariCNN

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


# ---------------------------------------------------------------- NumPy CNN (acting at batch 1)
CNN_SHAPES = [((4, 84, 84), np.uint8), ((84, 84, 4), np.uint8), ((84, 84), np.uint8),
              ((3, 50, 61), np.float32), ((2, 37, 39), np.float32)]


def _cnn_models(shape, dtype):
    from asyncrl.nets import AtariCNN
    torch.manual_seed(0)
    scale = 1.0 / 255.0 if dtype == np.uint8 else 1.0
    ac = ActorCritic(AtariCNN(shape, scale), 256, 6)
    q = QNetwork(AtariCNN(shape, scale), 256, 4)
    with torch.no_grad():                     # non-zero biases and a policy head of some size
        for m in (ac, q):
            for p in m.parameters():
                if p.dim() == 1:
                    p.normal_(0.0, 0.1)
        ac.policy.weight.normal_(0.0, 0.1)
    return ac, q


def _images(shape, dtype, n=1, seed=0):
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    if dtype == np.uint8:
        return rng.integers(0, 256, (n, d), dtype=np.uint8)
    return rng.random((n, d), dtype=np.float32)


@pytest.mark.parametrize("shape,dtype", CNN_SHAPES)
def test_numpy_cnn_mirror_equals_torch(shape, dtype):
    """One observation acts through NumPy (models.NumpyCNN), for every image layout the CNN
    takes ([C, H, W], [H, W, C], [H, W]; sizes not multiples of the strides), bytes and floats,
    and gives the torch forward's outputs to float32 rounding."""
    from asyncrl.nets import NumpyCNN
    ac, q = _cnn_models(shape, dtype)
    for model, f in ((ac, numpy_scores(ac.torso, ac.policy, ac.policy_out)), (q, numpy_scores(q.torso, q.q, q))):
        assert isinstance(f, NumpyCNN)
        forward = model.policy_out if model is ac else model
        for seed in range(3):
            x = _images(shape, dtype, seed=seed)
            with torch.no_grad():
                ref = forward(torch.from_numpy(x)).numpy()
            got = f(x)
            assert got.shape == ref.shape == (1, 6 if model is ac else 4) and got.dtype == np.float32
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
            assert np.abs(ref).max() > 0.1           # outputs of some size were compared


def test_numpy_cnn_reads_parameters_live_and_sends_batches_to_torch():
    ac, _ = _cnn_models((4, 84, 84), np.uint8)
    f = numpy_scores(ac.torso, ac.policy, ac.policy_out)
    x = _images((4, 84, 84), np.uint8)
    before = f(x).copy()
    with torch.no_grad():                     # in place, as an update or a pull writes theta'
        ac.torso.conv1.weight.mul_(1.5)
        ac.torso.conv2.bias.add_(0.2)
        ac.torso.fc.weight.mul_(0.9)
        ac.policy.bias.add_(1.0)
        ref = ac.policy_out(torch.from_numpy(x)).numpy()
    assert np.abs(ref - before).max() > 0.1
    np.testing.assert_allclose(f(x), ref, rtol=1e-5, atol=1e-5)
    xs = _images((4, 84, 84), np.uint8, n=3)
    with torch.no_grad():
        np.testing.assert_allclose(f(xs), ac.policy_out(torch.from_numpy(xs)).numpy(), rtol=1e-5, atol=1e-5)


def test_numpy_cnn_keeps_the_activations_the_torch_forward_keeps():
    """With a tape, each batch-1 forward fills the tape's next row with conv1's, conv2's and
    the fc layer's ReLU outputs and the observation's address, as the torch forward does;
    a forward beyond the segment's rows makes the tape no record of one."""
    from asyncrl.nets import ActivationTape
    ac, _ = _cnn_models((4, 84, 84), np.uint8)
    xs = _images((4, 84, 84), np.uint8, n=3, seed=5)
    tapes = [ActivationTape(ac.torso, 3), ActivationTape(ac.torso, 3)]
    fast = numpy_scores(ac.torso, ac.policy, None, tapes[0])
    with torch.no_grad():
        for t in range(3):
            fast(xs[t:t + 1])
            ac.policy_out(torch.from_numpy(xs[t:t + 1]), tapes[1])
    a, b = tapes
    assert a.n == b.n == 3 and a._addr == b._addr == [xs[t:t + 1].ctypes.data for t in range(3)]
    for name in ("h1", "h2", "h3"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-5)
        assert float(getattr(b, name).abs().max()) > 0.1
    assert a.holds(torch.from_numpy(xs), ac.torso) is False      # watches no parameters
    fast(xs[:1])
    assert a.n == a.rows + 1                                      # 4 forwards: not a segment's record


def test_workers_run_numpy_blas_on_one_thread():
    """executors.single_threaded() (a worker's first act) limits NumPy's BLAS, whose matrix
    products the CNN acts with, to one thread as well as torch; math_threads(n) sets and
    restores both. Run in a child so the limit does not stay in this process."""
    import subprocess
    import sys
    code = ("from threadpoolctl import threadpool_info\n"
            "import torch\n"
            "from asyncrl.threads import math_threads, single_threaded\n"
            "blas = lambda: [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
            "before = blas()\n"
            "with math_threads(1):\n"
            "    inside = blas() + [torch.get_num_threads()]\n"
            "assert blas() == before, (blas(), before)\n"
            "single_threaded()\n"
            "print(before, inside, blas() + [torch.get_num_threads()])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "OPENBLAS_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    before, inside, after = (eval(s) for s in out.stdout.strip().replace("] [", "]|[").split("|"))
    assert before and all(n == 2 for n in before)            # there is a BLAS with 2 threads to limit
    assert all(n == 1 for n in inside) and all(n == 1 for n in after)
