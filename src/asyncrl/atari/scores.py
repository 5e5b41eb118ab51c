"""The Atari suite's arithmetic: human-normalised scores and their aggregates over games,
the mean, the median and the interquartile mean (IQM: the mean of the middle 50%, Agarwal
et al. 2021, "Deep RL at the Edge of the Statistical Precipice"), each with a percentile
bootstrap confidence interval over games."""
from __future__ import annotations

import math

import numpy as np

from .registry import REFERENCE_SCORES

AGGREGATES = ("mean", "median", "iqm")


def normalized(raw: dict[str, float]) -> dict[str, float]:
    """{game: raw score} -> {game: (score - random) / (human - random)} (REFERENCE_SCORES);
    KeyError naming a game without reference scores."""
    out = {}
    for game, score in raw.items():
        if game not in REFERENCE_SCORES:
            raise KeyError(f"no reference scores for {game!r}; the 57 games: {', '.join(sorted(REFERENCE_SCORES))}")
        random, human = REFERENCE_SCORES[game]
        out[game] = (float(score) - random) / (human - random)
    return out


def iqm(values) -> float:
    """The mean of the middle 50%: sorted, floor(n/4) values cut from each end (scipy's
    trim_mean(x, 0.25)); n = 1 to 3 cut nothing."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    k = len(x) // 4
    return float(x[k:len(x) - k].mean())


def _aggregate(name: str, values: np.ndarray) -> float:
    if name == "mean":
        return float(values.mean())
    if name == "median":
        return float(np.median(values))
    return iqm(values)


def aggregate(scores, reps: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, dict[str, float]]:
    """{name: {"value", "low", "high"}} for the mean, median and IQM of `scores` (one
    human-normalised score per game): the value on the games as they are, and a percentile
    bootstrap interval at `level`: `reps` resamples of the games with replacement (one
    score per game: the spread across games is the only one there is to resample)."""
    x = np.asarray(list(scores), dtype=np.float64)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"aggregate needs one finite score per game, got {x.tolist()}")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(reps, x.size))]
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    for name in AGGREGATES:
        boot = np.array([_aggregate(name, row) for row in samples])
        lo, hi = np.percentile(boot, [lo_q, hi_q])
        out[name] = {"value": _aggregate(name, x), "low": float(lo), "high": float(hi)}
    return out


def fmt_percent(value: float) -> str:
    """A human-normalised score as a percentage: 1.234 -> '123.4%'."""
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"
