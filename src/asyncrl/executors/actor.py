"""One actor-learner, as every executor that runs one environment per worker builds it
(hogwild's processes, ray's actors): the same seeds, env, learner, collector and policy,
so that the same rollouts give the same gradients."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..learner import Learner, make_learner
from ..optim import FlatOptimizer
from ..rollout import EpisodeSegmentCollector

#: a replacement worker's seeds: seed + rank + RESEED_STRIDE * (how many it replaces)
RESEED_STRIDE = 1000


@dataclass
class ActorLearner:
    """What one actor-learner acts and learns with."""

    env: Any
    learner: Learner
    collector: EpisodeSegmentCollector
    policy: Any

    @classmethod
    def build(cls, cfg: Config, env_factory, rank: int, life: int, params: torch.Tensor | None,
              target_params: torch.Tensor | None, optimizer: FlatOptimizer | None,
              schedule: tuple[int, int]) -> "ActorLearner":
        """Rank `rank`'s `life`-th actor-learner (0 first, then replacements). Gradients on a
        local copy theta' of `params`, applied to them (None: gradients only; see make_learner)."""
        seed = cfg.seed + rank + RESEED_STRIDE * life     # a replacement does not replay the same episodes
        torch.manual_seed(seed)
        np.random.seed(seed)
        env = env_factory()
        env.action_space.seed(seed)
        learner = make_learner(cfg, env.observation_space, env.action_space, params, target_params, optimizer,
                               schedule, rank, local_copy=True)
        algo = learner.algo
        collector = EpisodeSegmentCollector(env, algo.segment_length, seed, next_action=algo.needs_next_action)
        policy = algo.make_policy(learner.model, np.random.default_rng(seed))
        if policy.tape is not None:     # replayed by the learner while theta' is what the actor used
            policy.tape.watch(learner.local)
        return cls(env, learner, collector, policy)
