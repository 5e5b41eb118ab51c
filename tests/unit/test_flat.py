"""Tests for asyncrl.flat: parameters and gradients as views into one flat tensor."""
import pytest
import torch
from torch import nn

from asyncrl.flat import attach_flat_grads_, flatten_params_, grads_are_attached, num_params


def make_module(seed=0):
    """A small two-layer MLP (3 -> 4 -> 2): 16 + 10 = 26 parameters."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def storage_of(t):
    return t.untyped_storage().data_ptr()


def test_num_params():
    """num_params counts every element."""
    assert num_params(make_module()) == 3 * 4 + 4 + 4 * 2 + 2


def test_flatten_makes_views_and_preserves_values():
    """Every parameter becomes a view into the flat tensor, in order, with values kept."""
    m = make_module()
    before = [p.detach().clone() for p in m.parameters()]
    flat = flatten_params_(m)
    assert flat.shape == (26,)
    assert torch.equal(flat, torch.cat([b.reshape(-1) for b in before]))
    offset = 0
    for p, b in zip(m.parameters(), before):
        assert isinstance(p, nn.Parameter) and p.requires_grad
        assert storage_of(p) == storage_of(flat)
        assert p.data_ptr() == flat[offset:].data_ptr()
        assert torch.equal(p.detach(), b)
        offset += p.numel()


def test_writing_flat_changes_module_output():
    """In-place writes to the flat tensor are seen by the module's forward."""
    m = make_module()
    x = torch.randn(5, 3)
    flat = flatten_params_(m)
    y0 = m(x).detach().clone()
    with torch.no_grad():
        flat.mul_(2.0)
    assert not torch.allclose(m(x), y0)
    with torch.no_grad():
        flat.zero_()
    assert torch.equal(m(x), torch.zeros(5, 2))  # all weights and biases zero -> output zero
    with torch.no_grad():
        flat[-2:] = torch.tensor([1.5, -0.5])  # last layer's bias
    assert torch.equal(m(x), torch.tensor([[1.5, -0.5]]).expand(5, 2))


def test_flatten_into_preallocated_copies_values():
    """With flat= given, values are copied into it and it is the tensor returned."""
    m = make_module()
    expected = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
    buf = torch.full((26,), float("nan"))
    out = flatten_params_(m, flat=buf)
    assert out is buf
    assert torch.equal(buf, expected)
    assert all(storage_of(p) == storage_of(buf) for p in m.parameters())


def test_flatten_into_shared_tensor_links_two_modules():
    """Two modules flattened into the same tensor share weights (the hogwild pattern)."""
    a, b = make_module(0), make_module(1)
    shared = flatten_params_(a, flat=torch.zeros(26).share_memory_())
    flatten_params_(b, flat=shared)  # b's values overwrite
    x = torch.randn(2, 3)
    assert torch.equal(a(x), b(x))


def test_flatten_wrong_size_raises():
    """A preallocated tensor of the wrong size is rejected."""
    with pytest.raises(ValueError, match="25"):
        flatten_params_(make_module(), flat=torch.zeros(25))


def loss_fn(m, x):
    return (m(x) ** 2).sum() + m(x)[:, 0].sum()


@pytest.mark.parametrize("flatten_first", [True, False])
def test_flat_grads_equal_autograd_over_two_passes(flatten_first):
    """After backward() the flat grad equals torch.autograd.grad, twice with zero_() between."""
    m = make_module()
    if flatten_first:
        flatten_params_(m)
    params = list(m.parameters())
    flat_grad = attach_flat_grads_(m)
    assert flat_grad.shape == (26,) and torch.count_nonzero(flat_grad) == 0
    assert grads_are_attached(m, flat_grad)
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        x = torch.randn(4, 3, generator=gen)
        expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss_fn(m, x), params)])
        flat_grad.zero_()
        loss_fn(m, x).backward()
        assert torch.count_nonzero(expected) > 0
        torch.testing.assert_close(flat_grad, expected, rtol=1e-6, atol=1e-7)
        assert grads_are_attached(m, flat_grad)
        for p in params:
            assert storage_of(p.grad) == storage_of(flat_grad)


def test_flat_grads_accumulate_without_zeroing():
    """Two backward passes without zero_() accumulate the sum in the flat grad."""
    m = make_module()
    params = list(m.parameters())
    flat_grad = attach_flat_grads_(m)
    x1, x2 = torch.randn(4, 3), torch.randn(4, 3)
    g1 = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss_fn(m, x1), params)])
    g2 = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss_fn(m, x2), params)])
    loss_fn(m, x1).backward()
    loss_fn(m, x2).backward()
    torch.testing.assert_close(flat_grad, g1 + g2, rtol=1e-6, atol=1e-6)


def test_zero_grad_breaks_attachment():
    """zero_grad() (set_to_none) detaches the grads, and grads_are_attached reports it."""
    m = make_module()
    flat_grad = attach_flat_grads_(m)
    loss_fn(m, torch.randn(2, 3)).backward()
    m.zero_grad()
    assert not grads_are_attached(m, flat_grad)
