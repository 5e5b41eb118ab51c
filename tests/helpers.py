"""Helpers shared by test modules (tests/ is on sys.path, see conftest.py)."""
from __future__ import annotations

from torch import nn

import asyncrl.algos.actor_critic as ac_mod


class Wrapped(nn.Module):
    """A torso that is not a plain nn.Sequential MLP: the NumPy acting mirrors do not know
    it, which forces the torch path."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def spy_returns(monkeypatch) -> list:
    """Record the returns ActorCriticAlgorithm.loss computes (calls the real n_step_returns)."""
    seen = []
    real = ac_mod.n_step_returns

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out.detach().clone())
        return out

    monkeypatch.setattr(ac_mod, "n_step_returns", spy)
    return seen
