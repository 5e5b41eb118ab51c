"""Algorithm registry: CLI name -> class."""
from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .actor_critic import ActorCriticAlgorithm
from .base import Algorithm, Policy
from .value_based import VALUE_BASED, ValueBasedAlgorithm

REGISTRY: dict[str, type[Algorithm]] = {
    "a3c": ActorCriticAlgorithm,
    "a2c": ActorCriticAlgorithm,     # the same loss over B environments in lockstep
    **{name: ValueBasedAlgorithm for name in VALUE_BASED},
}


def make_algorithm(cfg: Config) -> Algorithm:
    try:
        return REGISTRY[cfg.algo](cfg)
    except KeyError:
        raise ConfigError(f"unknown algorithm {cfg.algo!r}; available: {', '.join(REGISTRY)}") from None


__all__ = ["Algorithm", "ActorCriticAlgorithm", "Policy", "ValueBasedAlgorithm", "REGISTRY", "make_algorithm"]
