"""Evaluation episodes, run in the calling process on a fresh environment."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .envs import EnvFactory

if TYPE_CHECKING:
    from .video import VideoRecorder


def evaluate_policy(act: Callable[[Any], Any], factory: EnvFactory, episodes: int, seed: int,
                    max_steps: int = 1_000_000, on_reset: Callable[[], None] | None = None,
                    epsilon: float = 0.0, recorder: "VideoRecorder | None" = None) -> dict:
    """Run `episodes` full episodes with `act(raw_obs) -> action`; episode i is reset with
    seed + i, so an evaluation is reproducible; `on_reset()` is called as each episode begins
    (a recurrent policy zeroes its state). With probability `epsilon` a step takes a uniformly
    random action instead (act() is still called, so a recurrent state stays in step).
    A `recorder` gets the rendered frames of its first `recorder.episodes` episodes.
    Returns summary statistics and the returns."""
    env = factory(**recorder.make_kwargs) if recorder is not None else factory()
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    returns, lengths = [], []
    ok = False
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            record = recorder is not None and i < recorder.episodes
            if record:
                recorder.add(env, factory.name)
            if on_reset is not None:
                on_reset()
            total, n = 0.0, 0
            while n < max_steps:
                a = act(obs)
                if epsilon > 0 and rng.random() < epsilon:
                    a = env.action_space.sample()
                obs, r, term, trunc, _ = env.step(a)
                if record:
                    recorder.add(env, factory.name)
                total += float(r)
                n += 1
                if term or trunc:
                    break
            returns.append(total)
            lengths.append(n)
        ok = True
    finally:
        env.close()
        if recorder is not None:
            recorder.close(ok)
    arr = np.asarray(returns, dtype=np.float64)
    return {"episodes": episodes, "mean_return": float(arr.mean()) if episodes else float("nan"),
            "std_return": float(arr.std()) if episodes else float("nan"),
            "min_return": float(arr.min()) if episodes else float("nan"),
            "max_return": float(arr.max()) if episodes else float("nan"),
            "mean_length": float(np.mean(lengths)) if episodes else float("nan"),
            "returns": [float(x) for x in returns], "seed": seed, "epsilon": epsilon,
            **({"video": recorder.path, "video_episodes": min(recorder.episodes, episodes),
                "video_frames": recorder.frames} if recorder is not None else {})}
