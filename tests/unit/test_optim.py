"""Exact tests for the flat optimisers in asyncrl.optim."""
import math
import pickle

import numpy as np
import pytest
import torch

from asyncrl.config import Config
from asyncrl.errors import ConfigError
from asyncrl.optim import Adam, MomentumSGD, RMSprop, annealed_lr, build_optimizer

THETA0 = [1.0, -2.0, 3.0]
GRAD1 = [0.5, -1.0, 2.0]
GRAD2 = [-0.25, 0.3, 1.0]


def rms_reference(theta, g, grad, lr, alpha, eps):
    """One RMSProp step in numpy float64, epsilon inside the square root."""
    theta, g, grad = (np.asarray(x, dtype=np.float64) for x in (theta, g, grad))
    g = alpha * g + (1 - alpha) * grad ** 2
    return theta - lr * grad / np.sqrt(g + eps), g


def test_rmsprop_one_step_hand_computed():
    """One step from g0: g = a*g0 + (1-a)*grad^2, theta -= lr*grad/sqrt(g+eps)."""
    opt = RMSprop(3, alpha=0.9, eps=0.1, shared=True)
    opt.square_avg.copy_(torch.tensor([0.5, 1.0, 2.0]))
    theta = torch.tensor(THETA0)
    opt.step(theta, torch.tensor(GRAD1), lr=0.01)
    # g = [0.45 + 0.025, 0.9 + 0.1, 1.8 + 0.4]
    torch.testing.assert_close(opt.square_avg, torch.tensor([0.475, 1.0, 2.2]))
    expected = torch.tensor([1.0 - 0.01 * 0.5 / math.sqrt(0.575),
                             -2.0 + 0.01 * 1.0 / math.sqrt(1.1),
                             3.0 - 0.01 * 2.0 / math.sqrt(2.3)])
    torch.testing.assert_close(theta, expected, rtol=0, atol=1e-6)


def test_rmsprop_epsilon_inside_sqrt():
    """With g ~ 1e-12 the step is lr*grad/sqrt(g+eps) = 2e-3, not lr*grad/(sqrt(g)+eps) ~ 4e-3."""
    opt = RMSprop(1, alpha=0.999999, eps=0.25)
    theta = torch.tensor([0.0])
    opt.step(theta, torch.tensor([1e-3]), lr=1.0)
    # g = 1e-12 ~ 0 -> step = 1e-3 / sqrt(0.25) = 2e-3
    torch.testing.assert_close(theta, torch.tensor([-2e-3]), rtol=1e-5, atol=0)


def test_rmsprop_two_steps_match_numpy():
    """Two consecutive steps equal the numpy reference applied twice."""
    opt = RMSprop(3, alpha=0.99, eps=0.1, shared=True)
    opt.square_avg.copy_(torch.tensor([0.2, 0.0, 1.0]))
    theta = torch.tensor(THETA0)
    ref_theta, ref_g = THETA0, [0.2, 0.0, 1.0]
    for grad, lr in ((GRAD1, 7e-4), (GRAD2, 5e-4)):
        opt.step(theta, torch.tensor(grad), lr=lr)
        ref_theta, ref_g = rms_reference(ref_theta, ref_g, grad, lr, 0.99, 0.1)
    torch.testing.assert_close(theta.double(), torch.from_numpy(ref_theta), rtol=0, atol=1e-6)
    torch.testing.assert_close(opt.square_avg.double(), torch.from_numpy(ref_g), rtol=0, atol=1e-6)


def test_rmsprop_unshared_uses_row_rank_only():
    """shared=False, workers=3: rank 1 updates row 1 only; rows 0 and 2 stay untouched."""
    opt = RMSprop(3, alpha=0.9, eps=0.1, shared=False, workers=3)
    assert opt.square_avg.shape == (3, 3)
    opt.square_avg[0].fill_(7.0)
    opt.square_avg[2].fill_(9.0)
    opt.square_avg[1].copy_(torch.tensor([0.5, 1.0, 2.0]))
    theta = torch.tensor(THETA0)
    opt.step(theta, torch.tensor(GRAD1), lr=0.01, rank=1)
    ref_theta, ref_g = rms_reference(THETA0, [0.5, 1.0, 2.0], GRAD1, 0.01, 0.9, 0.1)
    torch.testing.assert_close(opt.square_avg[1].double(), torch.from_numpy(ref_g), rtol=0, atol=1e-6)
    torch.testing.assert_close(theta.double(), torch.from_numpy(ref_theta), rtol=0, atol=1e-6)
    assert torch.equal(opt.square_avg[0], torch.full((3,), 7.0))
    assert torch.equal(opt.square_avg[2], torch.full((3,), 9.0))


def test_rmsprop_unshared_rows_are_independent():
    """Two ranks stepping with different grads each keep their own statistics."""
    opt = RMSprop(2, alpha=0.5, eps=0.1, shared=False, workers=2)
    opt.step(torch.zeros(2), torch.tensor([2.0, 0.0]), lr=0.1, rank=0)
    opt.step(torch.zeros(2), torch.tensor([0.0, 4.0]), lr=0.1, rank=1)
    assert torch.equal(opt.square_avg, torch.tensor([[2.0, 0.0], [0.0, 8.0]]))


@pytest.mark.parametrize("shared", [True, False])
def test_rmsprop_in_slices_equals_one_pass(shared):
    """The CPU update runs CHUNK elements at a time: over 3 slices and a remainder, for shared
    statistics and for a per-worker row, it is bit-identical to the whole-array formula."""
    from asyncrl.optim import CHUNK

    n = 3 * CHUNK + 7
    gen = torch.Generator().manual_seed(0)
    theta0, g0 = torch.randn(n, generator=gen), torch.rand(n, generator=gen)
    grads = [torch.randn(n, generator=gen) for _ in range(2)]
    opt = RMSprop(n, alpha=0.99, eps=0.1, shared=shared, workers=2)
    row = opt.square_avg if shared else opt.square_avg[1]
    row.copy_(g0)
    theta = theta0.clone()
    ref_theta, ref_g = theta0.clone(), g0.clone()
    div_theta = theta0.clone()
    for grad, lr in zip(grads, (7e-4, 3e-4)):
        opt.step(theta, grad, lr=lr, rank=1)
        ref_g.mul_(0.99).addcmul_(grad, grad, value=0.01)
        div_theta.addcdiv_(grad, (ref_g + 0.1).sqrt(), value=-lr)
        ref_theta.addcmul_(grad, (ref_g + 0.1).rsqrt(), value=-lr)
    assert torch.equal(row, ref_g) and torch.equal(theta, ref_theta)
    # multiplying by rsqrt is dividing by sqrt to a rounding
    torch.testing.assert_close(theta, div_theta, rtol=1e-6, atol=1e-9)
    if not shared:
        assert not opt.square_avg[0].any()


def test_momentum_sgd_two_steps_hand_computed():
    """m <- 0.9 m + 0.1 grad, theta <- theta - lr m, on worker 1's own row (paper, supp. 7):
    step 1: m = 0.1 * [0.5, -1, 2] = [0.05, -0.1, 0.2], theta = [1, -2, 3] - 0.5 m
            = [0.975, -1.95, 2.9];
    step 2: m = 0.9 m + 0.1 * [-0.25, 0.3, 1] = [0.02, -0.06, 0.28], theta -= 0.1 m
            = [0.973, -1.944, 2.872]. Worker 0's row stays zero."""
    opt = MomentumSGD(3, momentum=0.9, workers=2)
    theta = torch.tensor(THETA0)
    opt.step(theta, torch.tensor(GRAD1), lr=0.5, rank=1)
    torch.testing.assert_close(opt.momentum_buf[1], torch.tensor([0.05, -0.1, 0.2]))
    torch.testing.assert_close(theta, torch.tensor([0.975, -1.95, 2.9]))
    opt.step(theta, torch.tensor(GRAD2), lr=0.1, rank=1)
    torch.testing.assert_close(opt.momentum_buf[1], torch.tensor([0.02, -0.06, 0.28]))
    torch.testing.assert_close(theta, torch.tensor([0.973, -1.944, 2.872]))
    assert not opt.momentum_buf[0].any()


def test_momentum_sgd_zero_momentum_is_plain_sgd_and_slices_equal_one_pass():
    """With alpha 0 the step is theta - lr grad exactly; over several CPU slices the update
    with momentum is bit-identical to the whole-array formula."""
    from asyncrl.optim import CHUNK

    theta = torch.tensor(THETA0)
    MomentumSGD(3, momentum=0.0).step(theta, torch.tensor(GRAD1), lr=0.5)
    assert torch.equal(theta, torch.tensor(THETA0) - 0.5 * torch.tensor(GRAD1))
    n = 2 * CHUNK + 3
    gen = torch.Generator().manual_seed(2)
    theta0, grads = torch.randn(n, generator=gen), [torch.randn(n, generator=gen) for _ in range(2)]
    opt, theta, m, ref = MomentumSGD(n, momentum=0.9), theta0.clone(), torch.zeros(n), theta0.clone()
    for g in grads:
        opt.step(theta, g, lr=1e-2)
        m.mul_(0.9).add_(g, alpha=0.1)
        ref.add_(m, alpha=-1e-2)
    assert torch.equal(theta, ref) and torch.equal(opt.momentum_buf[0], m)


@pytest.mark.parametrize("make", [lambda n: RMSprop(n, shared=True), lambda n: RMSprop(n, shared=False, workers=2),
                                  lambda n: Adam(n), lambda n: MomentumSGD(n, workers=2)])
def test_step_with_a_mirror_leaves_it_equal_to_the_updated_parameters(make):
    """A hogwild learner passes its theta' as `mirror`: after the step it equals the updated
    parameters bit for bit (over several CPU slices), and the update itself is the same as
    without a mirror."""
    from asyncrl.optim import CHUNK

    n = 2 * CHUNK + 5
    gen = torch.Generator().manual_seed(1)
    theta0, grad = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    a, b = make(n), make(n)
    with_mirror, without = theta0.clone(), theta0.clone()
    mirror = torch.full((n,), float("nan"))
    a.step(with_mirror, grad, 1e-3, rank=1, mirror=mirror)
    b.step(without, grad, 1e-3, rank=1)
    assert torch.equal(with_mirror, without) and not torch.equal(without, theta0)
    assert torch.equal(mirror, with_mirror)


def adam_reference(theta, grads, lrs, b1, b2, eps):
    """Adam with bias correction in numpy float64 over a sequence of steps."""
    theta = np.asarray(theta, dtype=np.float64)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, (grad, lr) in enumerate(zip(grads, lrs), start=1):
        grad = np.asarray(grad, dtype=np.float64)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta, m, v


def test_adam_two_steps_match_numpy():
    """Two Adam steps equal the closed form with bias correction."""
    opt = Adam(3, betas=(0.9, 0.999), eps=1e-8)
    theta = torch.tensor(THETA0)
    for grad in (GRAD1, GRAD2):
        opt.step(theta, torch.tensor(grad), lr=0.01)
    ref_theta, ref_m, ref_v = adam_reference(THETA0, [GRAD1, GRAD2], [0.01, 0.01], 0.9, 0.999, 1e-8)
    torch.testing.assert_close(theta.double(), torch.from_numpy(ref_theta), rtol=0, atol=1e-6)
    torch.testing.assert_close(opt.exp_avg.double(), torch.from_numpy(ref_m), rtol=0, atol=1e-7)
    torch.testing.assert_close(opt.exp_avg_sq.double(), torch.from_numpy(ref_v), rtol=0, atol=1e-7)
    assert opt.step_count.item() == 2.0


def test_adam_first_step_is_lr_sign():
    """Hand check: after one step the bias-corrected update is lr * g/|g| (eps negligible)."""
    opt = Adam(3, betas=(0.9, 0.999), eps=1e-8)
    theta = torch.tensor(THETA0)
    opt.step(theta, torch.tensor(GRAD1), lr=0.1)
    torch.testing.assert_close(theta, torch.tensor([0.9, -1.9, 2.9]), rtol=0, atol=1e-6)


def test_adam_matches_torch_adam():
    """Same data, three steps with non-default betas: equal to torch.optim.Adam to 1e-6."""
    gen = torch.Generator().manual_seed(0)
    theta0 = torch.randn(10, generator=gen)
    grads = [torch.randn(10, generator=gen) for _ in range(3)]
    ours = theta0.clone()
    opt = Adam(10, betas=(0.8, 0.99), eps=1e-6)
    p = torch.nn.Parameter(theta0.clone())
    ref = torch.optim.Adam([p], lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    for g in grads:
        opt.step(ours, g, lr=0.05)
        p.grad = g.clone()
        ref.step()
    torch.testing.assert_close(ours, p.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(opt.exp_avg, ref.state[p]["exp_avg"], rtol=0, atol=1e-6)
    torch.testing.assert_close(opt.exp_avg_sq, ref.state[p]["exp_avg_sq"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: RMSprop(5), lambda: RMSprop(5, shared=False, workers=3),
                                  lambda: Adam(5), lambda: MomentumSGD(5, workers=3)],
                         ids=["shared-rmsprop", "rmsprop", "adam", "sgd"])
def test_share_memory_marks_every_state_tensor(make):
    """share_memory_() moves every state tensor to shared memory and returns self."""
    opt = make()
    assert not opt.is_shared()
    assert opt.share_memory_() is opt
    assert opt.is_shared()
    assert all(v.is_shared() for v in opt.state_dict().values())


def test_state_dict_keys():
    """state_dict holds exactly the statistics (no scratch buffer, no hyperparameters)."""
    rms, adam = RMSprop(4), Adam(4)
    rms.step(torch.zeros(4), torch.ones(4), 0.1)
    adam.step(torch.zeros(4), torch.ones(4), 0.1)
    assert set(rms.state_dict()) == {"square_avg"}
    assert set(adam.state_dict()) == {"exp_avg", "exp_avg_sq", "step_count"}
    assert set(MomentumSGD(4).state_dict()) == {"momentum_buf"}


@pytest.mark.parametrize("make", [lambda: RMSprop(4, shared=False, workers=2), lambda: Adam(4),
                                  lambda: MomentumSGD(4, workers=2)], ids=["rmsprop", "adam", "sgd"])
def test_state_dict_round_trip(make):
    """load_state_dict copies values in; the next step then matches the source optimiser's."""
    src = make()
    for g in (torch.tensor([1.0, -2.0, 0.5, 3.0]), torch.tensor([0.1, 0.2, -0.3, 0.4])):
        src.step(torch.zeros(4), g, 0.01, rank=1)
    dst = make()
    dst.load_state_dict(src.state_dict())
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
        assert dst.state_dict()[k].data_ptr() != v.data_ptr(), "state must be copied, not aliased"
    a, b = torch.ones(4), torch.ones(4)
    g = torch.tensor([0.3, 0.3, -0.3, 1.0])
    src.step(a, g, 0.01, rank=1)
    dst.step(b, g, 0.01, rank=1)
    assert torch.equal(a, b)


def test_load_state_dict_rejects_mismatch():
    """Wrong keys or shapes raise ValueError."""
    with pytest.raises(ValueError):
        RMSprop(4).load_state_dict(Adam(4).state_dict())
    with pytest.raises(ValueError):
        RMSprop(4).load_state_dict(RMSprop(5).state_dict())
    with pytest.raises(ValueError):
        RMSprop(4).load_state_dict(RMSprop(4, shared=False, workers=2).state_dict())


@pytest.mark.parametrize("make", [lambda: RMSprop(4), lambda: Adam(4)], ids=["rmsprop", "adam"])
def test_pickle_drops_scratch_buffer(make):
    """Pickling keeps the statistics but not the per-process scratch buffer."""
    opt = make()
    opt.step(torch.zeros(4), torch.tensor([1.0, 2.0, 3.0, 4.0]), 0.1)
    assert opt._buf is not None
    clone = pickle.loads(pickle.dumps(opt))
    assert clone._buf is None
    assert opt._buf is not None, "pickling must not clear the original's buffer"
    for k, v in opt.state_dict().items():
        assert torch.equal(clone.state_dict()[k], v), k
    a, b = torch.ones(4), torch.ones(4)
    opt.step(a, torch.ones(4), 0.1)
    clone.step(b, torch.ones(4), 0.1)
    assert torch.equal(a, b)


@pytest.mark.parametrize("step,expected", [(0, 1e-3), (50, 5e-4), (75, 2.5e-4), (100, 0.0), (150, 0.0)])
def test_annealed_lr_linear_to_zero(step, expected):
    """Linear decay from lr at start to 0 at end, clamped at 0 past the end."""
    assert annealed_lr(1e-3, step, 0, 100, True) == pytest.approx(expected, abs=1e-15)


def test_annealed_lr_offset_start_and_disabled():
    """Decay measured from `start`; anneal=False or end <= start returns lr unchanged."""
    assert annealed_lr(1.0, 200, 100, 300, True) == pytest.approx(0.5)
    assert annealed_lr(1.0, 100, 100, 300, True) == 1.0
    assert annealed_lr(1.0, 250, 0, 100, False) == 1.0
    assert annealed_lr(1.0, 50, 100, 100, True) == 1.0


def test_build_optimizer_shared_rmsprop():
    """'shared-rmsprop' -> one shared row with the config's alpha and eps."""
    opt = build_optimizer(Config(env="x", optimizer="shared-rmsprop", rms_alpha=0.95, rms_eps=0.2), 7)
    assert isinstance(opt, RMSprop) and opt.shared and opt.name == "shared-rmsprop"
    assert (opt.alpha, opt.eps) == (0.95, 0.2)
    assert opt.square_avg.shape == (7,)


def test_build_optimizer_rmsprop_per_worker():
    """'rmsprop' -> one row of statistics per worker."""
    opt = build_optimizer(Config(env="x", optimizer="rmsprop", workers=3), 7)
    assert isinstance(opt, RMSprop) and not opt.shared and opt.name == "rmsprop"
    assert opt.square_avg.shape == (3, 7)


def test_build_optimizer_adam():
    """'adam' -> Adam with the config's betas and eps."""
    opt = build_optimizer(Config(env="x", optimizer="adam", adam_beta1=0.8, adam_beta2=0.99,
                                 adam_eps=1e-5), 7)
    assert isinstance(opt, Adam) and opt.name == "adam"
    assert (opt.beta1, opt.beta2, opt.eps) == (0.8, 0.99, 1e-5)
    assert opt.exp_avg.shape == (7,) and opt.exp_avg_sq.shape == (7,)


def test_build_optimizer_sgd_per_worker():
    """'sgd' -> momentum SGD with one momentum row per worker and the config's momentum."""
    opt = build_optimizer(Config(env="x", optimizer="sgd", workers=3, sgd_momentum=0.5), 7)
    assert isinstance(opt, MomentumSGD) and opt.name == "sgd" and opt.momentum == 0.5
    assert opt.momentum_buf.shape == (3, 7)


def test_build_optimizer_unknown_name():
    """An unknown optimiser name raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="lbfgs"):
        build_optimizer(Config(env="x", optimizer="lbfgs"), 7)


# ---------------------------------------------------------------- the fused (compiled) RMSProp
#: one size for every fused test (each size is a compile): 3 vectors of 16 and a tail of 5
FUSED_N = 53


def _fused_rms(shared=True, workers=1):
    from asyncrl.optim import _cpp_compiler

    if _cpp_compiler() is None:
        pytest.skip("no C++ compiler for torch.compile")
    opt = RMSprop(FUSED_N, alpha=0.99, eps=0.1, shared=shared, workers=workers)
    return opt


@pytest.mark.parametrize("mirror", [False, True])
def test_fused_rmsprop_two_steps_match_numpy_and_the_sliced_update(mirror):
    """use_fused('on') compiles the update; two steps then equal the float64 reference (to
    float32 rounding) and the unfused sliced update (to a rounding: the compiled loop may
    fuse a multiply-add); a mirror ends equal to the parameters."""
    gen = torch.Generator().manual_seed(1)
    theta0, g0 = torch.randn(FUSED_N, generator=gen), torch.rand(FUSED_N, generator=gen)
    grads = [torch.randn(FUSED_N, generator=gen) for _ in range(2)]
    fused, plain = _fused_rms(), RMSprop(FUSED_N, alpha=0.99, eps=0.1)
    assert fused.use_fused("on", theta0, "cpu", mirror=mirror) == "on"
    for opt in (fused, plain):
        opt.square_avg.copy_(g0)
    a, b = theta0.clone(), theta0.clone()
    m = torch.zeros(FUSED_N) if mirror else None
    ref_theta, ref_g = theta0.numpy(), g0.numpy()
    for grad, lr in zip(grads, (7e-4, 3e-4)):
        fused.step(a, grad, lr, mirror=m)
        plain.step(b, grad, lr)
        ref_theta, ref_g = rms_reference(ref_theta, ref_g, grad.numpy(), lr, 0.99, 0.1)
    torch.testing.assert_close(a.double(), torch.from_numpy(ref_theta), rtol=0, atol=1e-6)
    torch.testing.assert_close(fused.square_avg.double(), torch.from_numpy(ref_g), rtol=0, atol=1e-6)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(fused.square_avg, plain.square_avg, rtol=1e-6, atol=1e-7)
    assert not torch.equal(a, theta0)
    if mirror:
        assert torch.equal(m, a)


def test_fused_rmsprop_hand_computed_step_and_per_worker_row():
    """Per-worker statistics (rmsprop): rank 1's fused step updates row 1 by the hand formula
    g = a g0 + (1 - a) grad^2, theta -= lr grad / sqrt(g + eps); rows 0 and 2 are untouched."""
    opt = _fused_rms(shared=False, workers=3)
    theta = torch.zeros(FUSED_N)
    theta[:3] = torch.tensor(THETA0)
    assert opt.use_fused("on", theta, "cpu", mirror=False) == "on"
    opt.square_avg[0].fill_(7.0)
    opt.square_avg[2].fill_(9.0)
    opt.square_avg[1, :3] = torch.tensor([0.5, 1.0, 2.0])
    grad = torch.zeros(FUSED_N)
    grad[:3] = torch.tensor(GRAD1)
    opt.step(theta, grad, lr=0.01, rank=1)
    # alpha 0.99: g = [0.495 + 0.0025, 0.99 + 0.01, 1.98 + 0.04]
    torch.testing.assert_close(opt.square_avg[1, :3], torch.tensor([0.4975, 1.0, 2.02]))
    expected = torch.tensor([1.0 - 0.01 * 0.5 / math.sqrt(0.5975),
                             -2.0 + 0.01 * 1.0 / math.sqrt(1.1),
                             3.0 - 0.01 * 2.0 / math.sqrt(2.12)])
    torch.testing.assert_close(theta[:3], expected, rtol=0, atol=1e-6)
    assert not theta[3:].any() and not opt.square_avg[1, 3:].any()
    assert torch.equal(opt.square_avg[0], torch.full((FUSED_N,), 7.0))
    assert torch.equal(opt.square_avg[2], torch.full((FUSED_N,), 9.0))


def test_fused_rmsprop_keeps_its_state_dict_and_pickles():
    """The fused update's hyperparameter scratch is neither state nor pickled; a pickled copy
    steps as the original does."""
    opt = _fused_rms()
    opt.use_fused("on", torch.zeros(FUSED_N), "cpu", mirror=False)
    opt.step(torch.zeros(FUSED_N), torch.ones(FUSED_N), 0.1)
    assert set(opt.state_dict()) == {"square_avg"}
    clone = pickle.loads(pickle.dumps(opt))
    assert not hasattr(clone, "_hp") and clone._fused
    a, b = torch.ones(FUSED_N), torch.ones(FUSED_N)
    opt.step(a, torch.ones(FUSED_N), 0.1)
    clone.step(b, torch.ones(FUSED_N), 0.1)
    assert torch.equal(a, b)


def test_fused_auto_is_off_for_small_models_other_devices_and_without_a_compiler(monkeypatch):
    """auto compiles nothing below FUSED_MIN_PARAMS, for a non-CPU learner, or when no C++
    compiler is found; off never compiles; other optimisers have no fused update."""
    import asyncrl.optim as optim

    def no_compile(*a, **k):
        raise AssertionError("must not compile")

    monkeypatch.setattr(optim, "_warm_kernel", no_compile)
    big = torch.zeros(optim.FUSED_MIN_PARAMS)
    opt = RMSprop(big.numel())
    assert opt.use_fused("auto", big[:-1], "cpu", mirror=True) == "off"
    assert opt.use_fused("auto", big, "cuda", mirror=False) == "off"
    assert opt.use_fused("on", big, "cuda:0", mirror=False) == "off"
    assert opt.use_fused("off", big, "cpu", mirror=True) == "off"
    monkeypatch.setattr(optim, "_cpp_compiler", lambda: None)
    assert opt.use_fused("auto", big, "cpu", mirror=True) == "off"
    assert not opt._fused
    assert Adam(4).use_fused("auto", big, "cpu", mirror=True) == "off"
    with pytest.raises(ConfigError, match="fused-optimizer on is for rmsprop and shared-rmsprop, not optimizer adam"):
        Adam(4).use_fused("on", big, "cpu", mirror=True)


def test_fused_compile_failure_is_an_error_when_on_and_a_warning_when_auto(monkeypatch):
    """A compile that fails (no working compiler, say): 'on' is a one-line ConfigError naming
    the failure, 'auto' warns once and keeps the unfused update, which still steps."""
    import asyncrl.optim as optim

    def broken(*a, **k):
        raise RuntimeError("C++ compile error: cc1plus: fatal error\nmore lines")

    monkeypatch.setattr(optim, "_warm_kernel", broken)
    monkeypatch.setattr(optim, "_cpp_compiler", lambda: "g++")
    big = torch.zeros(optim.FUSED_MIN_PARAMS)
    opt = RMSprop(big.numel())
    with pytest.raises(ConfigError) as err:
        opt.use_fused("on", big, "cpu", mirror=True)
    msg = str(err.value)
    assert "\n" not in msg and "cc1plus: fatal error" in msg and "--fused-optimizer off" in msg
    with pytest.warns(RuntimeWarning, match="compiling the fused RMSProp update failed .*cc1plus"):
        assert opt.use_fused("auto", big, "cpu", mirror=True) == "off"
    assert not opt._fused
    opt.step(big, torch.ones(big.numel()), 0.1)
    assert torch.all(big < 0)


def test_fused_rmsprop_is_compiled_for_the_threads_it_runs_with():
    """The compiled code depends on torch's thread count: use_fused(threads=n) compiles for n
    threads, so updates run with n threads (a sync learner's 2) compile nothing more."""
    from torch._dynamo.utils import counters

    _fused_rms()                   # skips without a compiler
    n = FUSED_N + 1                # a size no other test compiles, in either thread count
    opt = RMSprop(n, alpha=0.99, eps=0.1)
    theta = torch.zeros(n)
    saved = torch.get_num_threads()
    try:
        assert opt.use_fused("on", theta, "cpu", mirror=False, threads=2) == "on"
        graphs = counters["stats"]["unique_graphs"]
        torch.set_num_threads(2)
        opt.step(theta, torch.ones(n), 0.1)
        assert counters["stats"]["unique_graphs"] == graphs
    finally:
        torch.set_num_threads(saved)
    torch.testing.assert_close(theta, torch.full((n,), -0.1 / math.sqrt(0.11)))


def test_a_process_may_compile_the_fused_update_for_many_model_sizes():
    """Each model size is one more compile of the same update: a sweep (or this test suite)
    that trains more than dynamo's default 8 sizes in one process must go on compiling
    (the suite once failed here with 'Dynamo recompile limit exceeded')."""
    _fused_rms()                   # skips without a compiler
    threads = torch.get_num_threads()
    for n in range(FUSED_N + 101, FUSED_N + 111):      # 10 sizes no other test compiles
        opt = RMSprop(n, alpha=0.99, eps=0.1)
        theta = torch.zeros(n)
        assert opt.use_fused("on", theta, "cpu", mirror=False, threads=threads) == "on"
        opt.step(theta, torch.ones(n), 0.1)
        torch.testing.assert_close(theta, torch.full((n,), -0.1 / math.sqrt(0.11)))
