"""compute_grads: the one place backward() runs, for every executor."""
from __future__ import annotations

import torch
from torch import nn

from .algos.base import Algorithm
from .rollout import Rollout


def compute_grads(algo: Algorithm, model: nn.Module, rollout: Rollout, flat_grad: torch.Tensor,
                  max_grad_norm: float, target: nn.Module | None = None
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Zero `flat_grad`, backpropagate the algorithm's loss into it, clip its global norm.

    `flat_grad` must be the flat tensor the model's .grad views alias (flat.attach_flat_grads_).
    Returns (statistics, pre-clip gradient norm). A non-finite norm means the caller must
    not apply the gradient.
    """
    flat_grad.zero_()
    loss, stats = algo.loss(model, rollout, target)
    loss.backward()
    norm = torch.linalg.vector_norm(flat_grad)
    if max_grad_norm > 0:
        # same rule as torch.nn.utils.clip_grad_norm_, on one tensor
        flat_grad.mul_(torch.clamp(max_grad_norm / (norm + 1e-6), max=1.0))
    return stats, norm
