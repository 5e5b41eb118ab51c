"""Algorithm registry: CLI name -> class."""
from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .actor_critic import ActorCriticAlgorithm
from .base import Algorithm

REGISTRY: dict[str, type[Algorithm]] = {
    "a3c": ActorCriticAlgorithm,
}


def make_algorithm(cfg: Config) -> Algorithm:
    try:
        return REGISTRY[cfg.algo](cfg)
    except KeyError:
        raise ConfigError(f"unknown algorithm {cfg.algo!r}; available: {', '.join(REGISTRY)}") from None


__all__ = ["Algorithm", "ActorCriticAlgorithm", "REGISTRY", "make_algorithm"]
