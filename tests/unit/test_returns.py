"""Exact tests for asyncrl.returns (n-step returns and one-step targets).

Convention (src/asyncrl/returns.py): all tensors are [T, B]; next_values[t] is the value of
the state after step t and is read only where the return is cut (a truncation, or t = T-1).
Unread next_values entries are set to large sentinels (100, 200, ...) so that reading them
by mistake changes the result.
"""
import pytest
import torch

from asyncrl.returns import n_step_returns, one_step_targets

F64 = torch.float64


def col(values, dtype=F64):
    """A [T, 1] tensor from a list."""
    return torch.tensor(values, dtype=dtype).unsqueeze(1)


def flags(values):
    """A [T, 1] bool tensor from a list of 0/1."""
    return torch.tensor(values, dtype=torch.bool).unsqueeze(1)


def test_bootstrap_from_last_next_value_only():
    """Without cuts, R_t = r_t + g*R_{t+1} and only next_values[T-1] is read."""
    # R2 = 3 + 0.9*10 = 12 ; R1 = 2 + 0.9*12 = 12.8 ; R0 = 1 + 0.9*12.8 = 12.52
    R = n_step_returns(col([1.0, 2.0, 3.0]), flags([0, 0, 0]), flags([0, 0, 0]),
                       col([100.0, 200.0, 10.0]), 0.9)
    assert R.shape == (3, 1)
    torch.testing.assert_close(R, col([12.52, 12.8, 12.0]), rtol=0, atol=1e-12)


def test_terminal_inside_segment_blocks_bootstrap():
    """A terminal at t=1: R_1 = r_1, steps before it see rewards only up to it."""
    # R3 = 4 + 0.9*10 = 13 ; R2 = 3 + 0.9*13 = 14.7 ; R1 = 2 ; R0 = 1 + 0.9*2 = 2.8
    R = n_step_returns(col([1.0, 2.0, 3.0, 4.0]), flags([0, 1, 0, 0]), flags([0, 0, 0, 0]),
                       col([100.0, 200.0, 300.0, 10.0]), 0.9)
    torch.testing.assert_close(R, col([2.8, 2.0, 14.7, 13.0]), rtol=0, atol=1e-12)


def test_truncation_inside_segment_bootstraps_from_its_own_next_value():
    """A truncation at t=1 bootstraps from next_values[1], not from later returns."""
    # R3 = 13 ; R2 = 14.7 ; R1 = 2 + 0.9*20 = 20 ; R0 = 1 + 0.9*20 = 19
    R = n_step_returns(col([1.0, 2.0, 3.0, 4.0]), flags([0, 0, 0, 0]), flags([0, 1, 0, 0]),
                       col([100.0, 20.0, 300.0, 10.0]), 0.9)
    torch.testing.assert_close(R, col([19.0, 20.0, 14.7, 13.0]), rtol=0, atol=1e-12)


def test_terminal_at_last_step_ignores_bootstrap():
    """terminated[T-1]: R_{T-1} = r_{T-1}; next_values[T-1] is not used."""
    # R2 = 3 ; R1 = 2 + 0.9*3 = 4.7 ; R0 = 1 + 0.9*4.7 = 5.23
    R = n_step_returns(col([1.0, 2.0, 3.0]), flags([0, 0, 1]), flags([0, 0, 0]),
                       col([100.0, 200.0, 1000.0]), 0.9)
    torch.testing.assert_close(R, col([5.23, 4.7, 3.0]), rtol=0, atol=1e-12)


def test_truncation_at_last_step_equals_plain_bootstrap():
    """truncated[T-1] bootstraps from next_values[T-1], like an uncut segment end."""
    args = (col([1.0, 2.0, 3.0]), flags([0, 0, 0]))
    nv = col([100.0, 200.0, 10.0])
    R_trunc = n_step_returns(*args, flags([0, 0, 1]), nv, 0.9)
    torch.testing.assert_close(R_trunc, col([12.52, 12.8, 12.0]), rtol=0, atol=1e-12)


def test_terminated_and_truncated_same_step_is_terminal():
    """When a step is both terminated and truncated, no bootstrap happens there."""
    # R2 = 3 + 0.9*10 = 12 ; R1 = 2 ; R0 = 1 + 0.9*2 = 2.8
    R = n_step_returns(col([1.0, 2.0, 3.0]), flags([0, 1, 0]), flags([0, 1, 0]),
                       col([100.0, 20.0, 10.0]), 0.9)
    torch.testing.assert_close(R, col([2.8, 2.0, 12.0]), rtol=0, atol=1e-12)


def test_five_steps_terminal_then_truncation():
    """T=5 with a truncation at t=1 and a terminal at t=3, gamma=0.5."""
    # R4 = 5 + 0.5*8 = 9 ; R3 = 4 (terminal) ; R2 = 3 + 0.5*4 = 5
    # R1 = 2 + 0.5*6 = 5 (truncated, next_values[1] = 6) ; R0 = 1 + 0.5*5 = 3.5
    R = n_step_returns(col([1.0, 2.0, 3.0, 4.0, 5.0]), flags([0, 0, 0, 1, 0]),
                       flags([0, 1, 0, 0, 0]), col([100.0, 6.0, 300.0, 400.0, 8.0]), 0.5)
    torch.testing.assert_close(R, col([3.5, 5.0, 5.0, 4.0, 9.0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("terminated", [False, True])
def test_T1_equals_one_step_targets(terminated):
    """With T=1, n_step_returns equals one_step_targets (and its closed form)."""
    r = torch.tensor([[0.5, -1.0, 2.0]], dtype=F64)
    term = torch.tensor([[terminated, False, True]])
    trunc = torch.tensor([[False, True, False]])
    nv = torch.tensor([[3.0, 4.0, 5.0]], dtype=F64)
    R = n_step_returns(r, term, trunc, nv, 0.9)
    y = one_step_targets(r, term, nv, 0.9)
    expected = torch.tensor([[0.5 if terminated else 0.5 + 2.7, -1.0 + 3.6, 2.0]], dtype=F64)
    torch.testing.assert_close(R, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)


def test_one_step_targets_multi_step_is_elementwise():
    """one_step_targets is r + g*(1-term)*next_values elementwise, for any T."""
    r = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    term = torch.tensor([[True, False], [False, True]])
    nv = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    y = one_step_targets(r, term, nv, 0.5)
    torch.testing.assert_close(y, torch.tensor([[1.0, 12.0], [18.0, 4.0]]), rtol=0, atol=0)


def test_two_columns_with_different_patterns():
    """B=2: each column follows its own terminal/truncation pattern."""
    # col 0: plain, bootstrap 10           -> [12.52, 12.8, 12]
    # col 1: truncated at t=0 (nv 5), terminal at t=2, rewards [0, 1, 0]
    #        R2 = 0 ; R1 = 1 + 0.9*0 = 1 ; R0 = 0 + 0.9*5 = 4.5
    rewards = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]], dtype=F64)
    term = torch.tensor([[False, False], [False, False], [False, True]])
    trunc = torch.tensor([[False, True], [False, False], [False, False]])
    nv = torch.tensor([[100.0, 5.0], [200.0, 99.0], [10.0, 99.0]], dtype=F64)
    R = n_step_returns(rewards, term, trunc, nv, 0.9)
    expected = torch.tensor([[12.52, 4.5], [12.8, 1.0], [12.0, 0.0]], dtype=F64)
    torch.testing.assert_close(R, expected, rtol=0, atol=1e-12)


def test_float32_dtype_preserved():
    """Returns have the rewards' dtype and shape."""
    R = n_step_returns(col([1.0, 2.0, 3.0], torch.float32), flags([0, 0, 0]), flags([0, 0, 0]),
                       col([0.0, 0.0, 10.0], torch.float32), 0.9)
    assert R.dtype == torch.float32
    torch.testing.assert_close(R, col([12.52, 12.8, 12.0], torch.float32))


def test_inputs_not_modified():
    """n_step_returns does not write into its inputs."""
    rewards, nv = col([1.0, 2.0, 3.0]), col([5.0, 6.0, 7.0])
    term, trunc = flags([0, 1, 0]), flags([1, 0, 0])
    copies = [t.clone() for t in (rewards, nv, term, trunc)]
    n_step_returns(rewards, term, trunc, nv, 0.9)
    for a, b in zip((rewards, nv, term, trunc), copies):
        assert torch.equal(a, b)


def test_no_gradient_when_next_values_detached():
    """With detached next_values the returns carry no autograd graph."""
    R = n_step_returns(col([1.0, 2.0, 3.0]), flags([0, 0, 0]), flags([0, 0, 0]),
                       col([1.0, 2.0, 10.0]).detach(), 0.9)
    assert not R.requires_grad
    assert R.grad_fn is None


def test_gradient_flows_through_next_values_when_they_require_grad():
    """Actual behaviour: returns are differentiable in next_values; dR_t/dnv only at cut steps."""
    # T=4, truncation at t=1: R0 = r0 + g r1 + g^2 nv1, R1 = r1 + g nv1,
    # R2 = r2 + g r3 + g^2 nv3, R3 = r3 + g nv3  -> d(sum R)/dnv = [0, g+g^2, 0, g+g^2]
    nv = col([100.0, 20.0, 300.0, 10.0]).requires_grad_()
    R = n_step_returns(col([1.0, 2.0, 3.0, 4.0]), flags([0, 0, 0, 0]), flags([0, 1, 0, 0]), nv, 0.9)
    assert R.requires_grad
    (g,) = torch.autograd.grad(R.sum(), nv)
    torch.testing.assert_close(g, col([0.0, 1.71, 0.0, 1.71]), rtol=0, atol=1e-12)


def test_gradient_zero_through_terminal():
    """A terminal at the last step cuts the gradient to next_values entirely."""
    nv = col([1.0, 2.0, 3.0]).requires_grad_()
    R = n_step_returns(col([1.0, 2.0, 3.0]), flags([0, 0, 1]), flags([0, 0, 0]), nv, 0.9)
    (g,) = torch.autograd.grad(R.sum(), nv, allow_unused=True)
    assert g is None or torch.count_nonzero(g) == 0
