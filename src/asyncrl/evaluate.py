"""Evaluation episodes, run in the calling process on a fresh environment."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .envs import EnvFactory


def evaluate_policy(act: Callable[[Any], Any], factory: EnvFactory, episodes: int, seed: int,
                    max_steps: int = 1_000_000, on_reset: Callable[[], None] | None = None,
                    epsilon: float = 0.0) -> dict:
    """Run `episodes` full episodes with `act(raw_obs) -> action`; episode i is reset with
    seed + i, so an evaluation is reproducible; `on_reset()` is called as each episode begins
    (a recurrent policy zeroes its state). With probability `epsilon` a step takes a uniformly
    random action instead (act() is still called, so a recurrent state stays in step).
    Returns summary statistics and the returns."""
    env = factory()
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    returns, lengths = [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            if on_reset is not None:
                on_reset()
            total, n = 0.0, 0
            while n < max_steps:
                a = act(obs)
                if epsilon > 0 and rng.random() < epsilon:
                    a = env.action_space.sample()
                obs, r, term, trunc, _ = env.step(a)
                total += float(r)
                n += 1
                if term or trunc:
                    break
            returns.append(total)
            lengths.append(n)
    finally:
        env.close()
    arr = np.asarray(returns, dtype=np.float64)
    return {"episodes": episodes, "mean_return": float(arr.mean()) if episodes else float("nan"),
            "std_return": float(arr.std()) if episodes else float("nan"),
            "min_return": float(arr.min()) if episodes else float("nan"),
            "max_return": float(arr.max()) if episodes else float("nan"),
            "mean_length": float(np.mean(lengths)) if episodes else float("nan"),
            "returns": [float(x) for x in returns], "seed": seed, "epsilon": epsilon}
