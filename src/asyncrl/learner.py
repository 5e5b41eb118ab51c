"""The learner step, one for every executor: rollout -> gradient -> update.

`compute_grads` is the one place backward() runs. `Learner` wraps it with what an
update needs around it: the learning-rate schedule, the rule that a non-finite gradient
is never applied, the target-network copy, and the statistics that the logs report. A
hogwild worker's learner computes gradients on its local copy theta' and applies them to
the shared theta; the sync executor's learner computes them on theta itself. Nothing
else differs, which is what makes the executors' gradients identical for one rollout.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .algos import make_algorithm
from .algos.base import Algorithm
from .config import Config
from .errors import NonFiniteError
from .flat import attach_flat_grads_, bind_params_, flatten_params_
from .optim import FlatOptimizer, annealed_lr
from .rollout import Rollout

#: a gradient reduction: (flat gradient, statistics) -> statistics, the gradient reduced in place
Reduce = Callable[[torch.Tensor, dict], dict]


def crossed_period(T: int, used: int, period: int) -> bool:
    """True if the commit that moved the counter from T - used to T crossed a multiple of
    `period`. Commits are serialised, so across all workers this is True exactly once per
    multiple (a commit spanning several multiples counts once): the rule for copying the
    target network theta- <- theta every I_target global steps (paper, Algorithms 1-2)."""
    return T // period > (T - used) // period


def compute_grads(algo: Algorithm, model: nn.Module, rollout: Rollout, flat_grad: torch.Tensor,
                  max_grad_norm: float, target: nn.Module | None = None, reduce: Reduce | None = None
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The algorithm's gradient into `flat_grad`: its closed form where it has one for the
    rollout (Algorithm.gradients), else `flat_grad` zeroed and the loss backpropagated into
    it; then `reduce` (data-parallel learners: the whole batch's gradient and statistics from
    every learner's, in place), then the global norm clipped: the clip sees the reduced
    gradient, exactly as one learner with the whole batch would.

    `flat_grad` must be the flat tensor the model's .grad views alias (flat.attach_flat_grads_).
    Returns (statistics, pre-clip gradient norm). A non-finite norm means the caller must
    not apply the gradient.
    """
    stats = algo.gradients(model, rollout, target)      # a closed form writes every element
    if stats is None:
        flat_grad.zero_()
        loss, stats = algo.loss(model, rollout, target)
        loss.backward()
    if reduce is not None:
        stats = reduce(flat_grad, stats)
    norm = torch.linalg.vector_norm(flat_grad)
    if max_grad_norm > 0:
        # the rule of torch.nn.utils.clip_grad_norm_ (scale by min(1, max / (norm + 1e-6))),
        # without a pass over the gradient when the scale is 1 (most updates)
        scale = max_grad_norm / (float(norm) + 1e-6)
        if scale < 1.0:
            flat_grad.mul_(scale)
    return stats, norm


def check_finite_params(params: torch.Tensor, step: int) -> None:
    """NonFiniteError if the parameters hold an inf or nan: nothing can train on from there."""
    if not bool(torch.isfinite(params).all()):
        raise NonFiniteError(f"the parameters are no longer finite (inf or nan) at step {step:,}; "
                             f"training stopped (the last checkpoint with finite parameters is kept)")


class Learner:
    """Turns rollouts into updates of the flat parameters `params`.

    model:   the module whose loss is differentiated; its parameters are views into
             `local`, which is `params` itself (sync) or a private copy of it (hogwild's
             theta', refreshed by `pull()` before each segment)
    target:  theta- as a module bound to `target_params` (value-based methods), else None
    """

    def __init__(self, algo: Algorithm, model: nn.Module, local: torch.Tensor, params: torch.Tensor,
                 optimizer: FlatOptimizer, cfg: Config, schedule: tuple[int, int], rank: int = 0,
                 target: nn.Module | None = None, target_params: torch.Tensor | None = None):
        self.algo, self.model, self.local, self.params = algo, model, local, params
        self.optimizer, self.rank = optimizer, rank
        self.target, self.target_params = target, target_params
        self.grad = attach_flat_grads_(model)
        self.reduce: Reduce | None = None     # see reduce_with
        self.max_grad_norm, self.period = cfg.max_grad_norm, cfg.target_update
        self.lr0, self.schedule, self.anneal = cfg.lr, schedule, cfg.lr_anneal
        self.lr = cfg.lr
        self.clip_rewards = cfg.clips_rewards    # learning sees sign-clipped rewards (Atari)
        self.max_nonfinite = cfg.max_nonfinite_updates
        self.nonfinite_streak = 0     # non-finite gradients in a row (reset by an applied update)
        self._pulled = False          # theta' was refreshed by the last update (see pull)
        self._reset_stats()

    def pull(self) -> None:
        """theta' <- theta (a no-op when the model trains on the parameters themselves, or when
        the last update already copied each slice of theta into theta' as it wrote it)."""
        if self._pulled:
            self._pulled = False
        elif self.local is not self.params:
            self.local.copy_(self.params)

    def gradients(self, ro: Rollout) -> tuple[dict[str, torch.Tensor], float]:
        """The clipped gradient of the rollout's loss, left in `self.grad`; (stats, pre-clip norm).
        With reward clipping, the rollout's rewards are clipped to [-1, 1] in place first (the
        collector has already added the raw ones to the episode's score)."""
        if self.clip_rewards:
            ro.rewards.clamp_(-1.0, 1.0)
        stats, norm = compute_grads(self.algo, self.model, ro, self.grad, self.max_grad_norm, self.target,
                                    self.reduce)
        return stats, float(norm)

    def reduce_with(self, reduce: Reduce, spare: int = 0) -> torch.Tensor:
        """Reduce every gradient with `reduce` before it is clipped and applied (compute_grads);
        the model's gradient is re-attached as the head of one buffer with `spare` elements
        after it, which is returned: a reduction can then carry the gradient and what rides
        with it (the statistics) in one collective, without a copy."""
        n = self.grad.numel()
        buf = attach_flat_grads_(self.model, spare)
        self.grad = buf[:n]
        self.reduce = reduce
        return buf

    def update(self, ro: Rollout, step: int) -> bool:
        """One update from `ro`, whose steps brought the global step counter to `step`.

        Returns False if the gradient was not finite (then nothing is applied: it is counted
        in `skipped`). Raises NonFiniteError when that has happened `max_nonfinite_updates`
        times in a row, or when the parameters themselves are no longer finite (checked on
        the skip path only). The target network is copied when `step` crosses a multiple of
        `target_update` (once per period, since the counter's commits are serialised)."""
        stats, norm = self.gradients(ro)
        return self.apply(stats, norm, step, ro.num_steps)

    def apply(self, stats: dict, norm: float, step: int, num_steps: int) -> bool:
        """The second half of `update`: apply the gradient in `self.grad` (computed here by
        `gradients`, or elsewhere and copied in: the ray executor's actors), which came with
        `stats` and pre-clip `norm` from `num_steps` environment steps that brought the global
        step to `step`. Same return value and errors as `update`."""
        if self.target_params is not None and crossed_period(step, num_steps, self.period):
            self.target_params.copy_(self.params)                 # theta- <- theta (Alg. 1, 2)
        s0, s1 = self.schedule
        self.lr = annealed_lr(self.lr0, step, s0, s1, self.anneal)
        if not math.isfinite(norm):
            self.skipped += 1                                     # never apply a non-finite gradient
            self.nonfinite_streak += 1
            self._check_nonfinite(step)
            return False
        self.nonfinite_streak = 0
        # a hogwild learner's update refreshes theta' as it goes (fused pull: each slice of
        # theta is copied while it is in cache); the next pull() then has nothing to do
        mirror = None if self.local is self.params else self.local
        self.optimizer.step(self.params, self.grad, self.lr, self.rank, mirror)
        self._pulled = mirror is not None
        self.updates += 1
        self.norm_sum += norm
        for k in self.sums:
            self.sums[k] += float(stats[k])
        return True

    def _check_nonfinite(self, step: int) -> None:
        check_finite_params(self.params, step)
        if 0 < self.max_nonfinite <= self.nonfinite_streak:
            raise NonFiniteError(
                f"{self.nonfinite_streak} non-finite updates in a row (max-nonfinite-updates "
                f"{self.max_nonfinite}) at step {step:,}: the loss or its gradient is inf or nan; none "
                f"was applied, so the parameters are the last good ones; check the environment's "
                f"rewards and observations or lower --lr")

    def take_stats(self) -> tuple[int, int, float, dict[str, float], float]:
        """(updates, skipped, sum of gradient norms, sums of the loss statistics, lr) since the
        last call; what the logger averages into a metrics row."""
        out = (self.updates, self.skipped, self.norm_sum, self.sums, self.lr)
        self._reset_stats()
        return out

    @property
    def has_stats(self) -> bool:
        return bool(self.updates or self.skipped)

    def _reset_stats(self) -> None:
        self.updates = self.skipped = 0
        self.norm_sum = 0.0
        self.sums = dict.fromkeys(self.algo.stat_keys, 0.0)


def make_learner(cfg: Config, obs_space, action_space, params: torch.Tensor | None,
                 target_params: torch.Tensor | None, optimizer: FlatOptimizer | None,
                 schedule: tuple[int, int], rank: int = 0, *, local_copy: bool,
                 device: "torch.device | str" = "cpu") -> Learner:
    """The learner of every executor. theta- (when the algorithm has one) is always read in
    place: a view of `target_params` (on `device`).

    local_copy True: an actor-learner's (hogwild, ray): gradients on a private copy theta' of
    the parameters, applied to the shared `params`; with params None a learner that only
    computes gradients on theta', which its executor fills (a ray actor's; the driver
    applies them). local_copy False: the model trains on `params` themselves (bound, not
    copied: on the CPU they *are* the given tensor; on another device a copy there, which
    the executor copies back), with the optimiser's state on that device too (the sync
    executor's, and the ray driver's one per rank: `rank` picks the optimiser's per-worker
    rows where it has them)."""
    algo = make_algorithm(cfg)
    model = algo.build_model(obs_space, action_space).to(device)
    if local_copy:
        local = flatten_params_(model)
        params = local if params is None else params
    else:
        local = params = params.to(device)
        bind_params_(model, params, requires_grad=True)
        optimizer = optimizer.to(device)
    target = None
    if target_params is not None:
        target_params = target_params.to(device)
        target = algo.build_model(obs_space, action_space).to(device)
        bind_params_(target, target_params)
    return Learner(algo, model, local, params, optimizer, cfg, schedule, rank, target, target_params)
