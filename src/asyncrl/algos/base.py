"""The algorithm interface: choose actions, turn a [T, B] rollout into a loss.

An algorithm knows nothing of processes, shared memory or optimisers; executors call
these three methods and own everything else (shared/STYLE.md).
"""
from __future__ import annotations

from typing import Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..config import Config
from ..rollout import Rollout


class Policy:
    """An actor's acting function: obs [B, D] float32 (NumPy) -> actions [B] (discrete) or
    [B, A] (continuous, unclipped: collectors clip what they send to the environment).

    `at_step(T)` tells it the global step after each update (for schedules such as the
    value-based methods' epsilon annealing). A recurrent policy carries a state per
    environment: collectors call `reset_state(mask)` when environments start an episode
    and read `get_state()` (None for feed-forward policies) as a segment's initial state."""

    recurrent = None                    # nets.RecurrentScores of a recurrent policy
    tape = None                         # nets.ActivationTape its forwards are kept in
    #: each row's action depends on that row's observation only, and random numbers are drawn
    #: in row order: calls on consecutive groups of rows choose what one call on all would
    #: (vector envs that step a group while the next group's actions are chosen rely on it)
    rows_independent = False

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], recurrent=None, tape=None,
                 rows_independent: bool = False):
        self.fn = fn
        self.recurrent = recurrent
        self.tape = tape
        self.rows_independent = rows_independent and recurrent is None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.fn(obs)

    def at_step(self, step: int) -> None:
        pass

    def reset_state(self, mask: np.ndarray | None = None) -> None:
        """Zero the state of the environments in `mask` (all if None)."""
        if self.recurrent is not None:
            self.recurrent.reset(mask)

    def get_state(self) -> "tuple[torch.Tensor, torch.Tensor] | None":
        return None if self.recurrent is None else self.recurrent.state()


class Algorithm:
    name: ClassVar[str] = ""
    #: names of the scalars `loss` reports, in the order metrics.csv shows them
    stat_keys: ClassVar[tuple[str, ...]] = ()
    #: the executor keeps a shared target network theta- (copied every cfg.target_update steps)
    uses_target_network: ClassVar[bool] = False
    #: the collector chooses a_T in s_T at a segment's end (Rollout.next_actions), e.g. SARSA
    needs_next_action: ClassVar[bool] = False

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @property
    def segment_length(self) -> int:
        """Steps an actor takes before an update (t_max; I_AsyncUpdate for one-step methods)."""
        return self.cfg.t_max

    def check_spaces(self, obs_space: gym.Space, action_space: gym.Space, env_name: str) -> None:
        """Raise EnvError if this algorithm cannot handle the spaces."""
        raise NotImplementedError

    def build_model(self, obs_space: gym.Space, action_space: gym.Space) -> nn.Module:
        raise NotImplementedError

    def make_policy(self, model: nn.Module, rng: np.random.Generator, greedy: bool = False,
                    n_envs: int = 1) -> Policy:
        """The acting function of an actor stepping `n_envs` environments.

        Built once per actor and called every step, so it may precompute (e.g. NumPy views
        of the model's parameters); it reads the model's parameters as they are updated in
        place. Exploration randomness comes from `rng` (seeded per worker).
        """
        raise NotImplementedError

    def loss(self, model: nn.Module, rollout: Rollout, target: nn.Module | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar to minimise for this rollout, and detached statistics (stat_keys).
        `target` is the target network theta- when `uses_target_network`."""
        raise NotImplementedError

    def gradients(self, model: nn.Module, rollout: Rollout, target: nn.Module | None = None
                  ) -> "dict[str, float] | None":
        """Optional fast path: the gradient of `loss` for this rollout computed in closed form
        and written into every parameter's .grad (overwriting it), returning the statistics
        `loss` would report; or None where the algorithm has no closed form for the rollout,
        and then the learner differentiates `loss`. Each must agree with `loss` (tested)."""
        return None
