"""Evaluation episodes, run in the calling process on a fresh environment, with a deadline:
an environment (or policy) that finishes no step for `timeout` seconds stops the
evaluation with a WorkerError instead of blocking a finished run forever."""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .envs import EnvFactory
from .errors import ConfigError, WorkerError
from .threads import math_threads

if TYPE_CHECKING:
    from .video import VideoRecorder


class _Cancelled(Exception):
    """The caller gave up on the evaluation (Ctrl-C, or a deadline passed)."""


class _Progress:
    """What the evaluating thread tells the caller: the episode it plays and when it last
    finished a step (its heartbeat); `stop` asks it to end at its next step."""

    def __init__(self) -> None:
        self.episode = 0
        self.beat = time.monotonic()
        self.stop = False
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


def run_evaluation(act: Callable[[Any], Any], on_reset: Callable[[], None], factory: EnvFactory, episodes: int,
                   seed: int, epsilon: float, video: str | None = None, video_episodes: int = 1,
                   timeout: float = 0.0) -> dict:
    """An agent's evaluation (Agent.evaluate): its arguments checked, a video recorder made
    when `video` names a file, the episodes played on one math thread (acting is a batch-1
    forward; a second thread spinning on a busy core made a CNN evaluation of Pong 9x
    slower here), and the human-normalised score added for Atari games that have
    reference scores."""
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    recorder = None
    if video is not None:
        from .video import VideoRecorder

        if not 1 <= video_episodes <= episodes:
            raise ConfigError(f"video episodes must be between 1 and the {episodes} episodes "
                              f"evaluated, got {video_episodes}")
        recorder = VideoRecorder(video, video_episodes)
    if not 0 <= epsilon <= 1:
        raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
    with math_threads(1):
        result = evaluate_policy(act, factory, episodes, seed, on_reset=on_reset, epsilon=epsilon,
                                 recorder=recorder, timeout=timeout)
    if factory.atari is not None:
        from .atari import REFERENCE_SOURCE, game_of, human_normalized

        game = game_of(factory.env_id)
        hns = human_normalized(game, result["mean_return"])
        result.update(game=game, human_normalized=hns, reference_scores=REFERENCE_SOURCE if hns is not None else None)
    return result


def evaluate_policy(act: Callable[[Any], Any], factory: EnvFactory, episodes: int, seed: int,
                    max_steps: int = 1_000_000, on_reset: Callable[[], None] | None = None,
                    epsilon: float = 0.0, recorder: "VideoRecorder | None" = None, timeout: float = 0.0) -> dict:
    """Run `episodes` full episodes with `act(raw_obs) -> action`; episode i is reset with
    seed + i, so an evaluation is reproducible; `on_reset()` is called as each episode begins
    (a recurrent policy zeroes its state). With probability `epsilon` a step takes a uniformly
    random action instead (act() is still called, so a recurrent state stays in step).
    A `recorder` gets the rendered frames of its first `recorder.episodes` episodes.

    `timeout` > 0: the episodes are played in a helper thread, and if it finishes no step
    (a reset, or act() and a step) for `timeout` seconds, WorkerError stops the evaluation;
    the hung thread cannot be killed and is left behind (a daemon, with its env). Ctrl-C
    stops the thread at its next step. Returns summary statistics and the returns."""
    args = (act, factory, episodes, seed, max_steps, on_reset, epsilon, recorder)
    if timeout > 0:
        returns, lengths, successes = _play_with_deadline(args, timeout)
    else:
        returns, lengths, successes = _play(*args)
    arr = np.asarray(returns, dtype=np.float64)
    # info["is_success"] on every episode's last step (asyncrl.success): the share that succeeded
    said = episodes > 0 and all(s is not None for s in successes)
    return {"episodes": episodes, "mean_return": float(arr.mean()) if episodes else float("nan"),
            "std_return": float(arr.std()) if episodes else float("nan"),
            "min_return": float(arr.min()) if episodes else float("nan"),
            "max_return": float(arr.max()) if episodes else float("nan"),
            "mean_length": float(np.mean(lengths)) if episodes else float("nan"),
            "returns": [float(x) for x in returns], "seed": seed, "epsilon": epsilon,
            **({"success_rate": float(np.mean(successes))} if said else {}),
            **({"video": recorder.path, "video_episodes": min(recorder.episodes, episodes),
                "video_frames": recorder.frames} if recorder is not None else {})}


def _play_with_deadline(args: tuple, timeout: float) -> tuple[list, list, list]:
    progress = _Progress()

    def run() -> None:
        try:
            progress.result = _play(*args, progress=progress)
        except BaseException as exc:    # handed to the caller
            progress.error = exc
        finally:
            progress.done.set()

    thread = threading.Thread(target=run, name="asyncrl-evaluation", daemon=True)
    thread.start()
    try:
        while not progress.done.wait(min(timeout, 0.5)):
            if time.monotonic() - progress.beat > timeout:
                raise WorkerError(f"evaluation episode {progress.episode + 1} finished no step for {timeout:g} s "
                                  f"(worker-timeout; hung); the evaluation stops")
    except KeyboardInterrupt:
        progress.stop = True
        thread.join(timeout=2.0)        # it closes its env at its next step
        raise
    except BaseException:
        progress.stop = True
        raise
    if progress.error is not None:
        raise progress.error
    return progress.result


def _play(act, factory: EnvFactory, episodes: int, seed: int, max_steps: int, on_reset, epsilon: float,
          recorder, progress: _Progress | None = None) -> tuple[list, list, list]:
    """The returns, lengths and successes (info["is_success"] at the end, else None) of the
    episodes."""
    env = factory(**recorder.make_kwargs) if recorder is not None else factory()
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    returns, lengths, successes = [], [], []
    ok = False
    try:
        for i in range(episodes):
            if progress is not None:
                progress.episode, progress.beat = i, time.monotonic()
            obs, _ = env.reset(seed=seed + i)
            record = recorder is not None and i < recorder.episodes
            if record:
                recorder.add(env, factory.name)
            if on_reset is not None:
                on_reset()
            total, n, info = 0.0, 0, {}
            while n < max_steps:
                if progress is not None:
                    if progress.stop:
                        raise _Cancelled
                    progress.beat = time.monotonic()
                a = act(obs)
                if epsilon > 0 and rng.random() < epsilon:
                    a = env.action_space.sample()
                obs, r, term, trunc, info = env.step(a)
                if record:
                    recorder.add(env, factory.name)
                total += float(r)
                n += 1
                if term or trunc:
                    break
            returns.append(total)
            lengths.append(n)
            success = info.get("is_success") if isinstance(info, dict) else None
            successes.append(None if success is None else bool(success))
        ok = True
    finally:
        env.close()
        if recorder is not None:
            recorder.close(ok)
    return returns, lengths, successes
