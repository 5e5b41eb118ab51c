"""Flat parameter storage: a module's parameters (and gradients) as views into one
contiguous tensor.

This is what keeps the actor-learner's hot path short: syncing a local model from the
shared one, handing gradients to the optimiser, clipping their global norm and the
optimiser step are each one tensor operation instead of one per parameter.
"""
from __future__ import annotations

import torch
from torch import nn


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flatten_params_(module: nn.Module, flat: torch.Tensor | None = None) -> torch.Tensor:
    """Re-home every parameter of `module` as a view into one 1-D tensor.

    If `flat` is given (e.g. a tensor in shared memory) the current values are copied
    into it first; otherwise a new tensor is allocated. Returns the flat tensor.
    """
    params = list(module.parameters())
    n = sum(p.numel() for p in params)
    if flat is None:
        flat = torch.empty(n, dtype=params[0].dtype, device=params[0].device)
    if flat.numel() != n:
        raise ValueError(f"flat tensor has {flat.numel()} elements, module has {n}")
    offset = 0
    with torch.no_grad():
        for p in params:
            k = p.numel()
            view = flat[offset:offset + k].view_as(p)
            view.copy_(p)
            p.data = view
            offset += k
    return flat


def bind_params_(module: nn.Module, flat: torch.Tensor, requires_grad: bool = False) -> torch.Tensor:
    """Make `module`'s parameters views into an existing flat tensor *without* copying its
    current values in: a worker's view of the shared target network (no gradient), or the
    sync executor's model on the agent's own parameters (requires_grad=True)."""
    n = num_params(module)
    if flat.numel() != n:
        raise ValueError(f"flat tensor has {flat.numel()} elements, module has {n}")
    offset = 0
    for p in module.parameters():
        k = p.numel()
        p.data = flat[offset:offset + k].view_as(p)
        p.requires_grad_(requires_grad)
        offset += k
    return flat


def attach_flat_grads_(module: nn.Module, spare: int = 0) -> torch.Tensor:
    """Give every parameter a `.grad` that is a view into one zeroed 1-D tensor.

    Autograd accumulates into an existing `.grad` in place, so after `backward()` the
    whole gradient is in the returned tensor. Zero it with `flat_grad.zero_()`, never
    with `zero_grad()` (which would set the views to None and break the aliasing).
    `spare` > 0: the tensor has that many elements more after the gradient (what a
    data-parallel reduction carries with it in the same collective).
    """
    params = list(module.parameters())
    n = sum(p.numel() for p in params)
    flat_grad = torch.zeros(n + spare, dtype=params[0].dtype, device=params[0].device)
    offset = 0
    for p in params:
        k = p.numel()
        p.grad = flat_grad[offset:offset + k].view_as(p)
        offset += k
    return flat_grad


def grads_are_attached(module: nn.Module, flat_grad: torch.Tensor) -> bool:
    """True if every parameter's .grad still aliases `flat_grad` (checked in tests)."""
    base = flat_grad.untyped_storage().data_ptr()
    return all(p.grad is not None and p.grad.untyped_storage().data_ptr() == base
               for p in module.parameters())
