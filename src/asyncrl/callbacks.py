"""Callbacks: hooks that run in the main process while an agent learns.

    agent.learn(200_000, callback=[EvalCallback(every=20_000), StopOnReward(475)])

Every hook gets the agent first. A hook that returns False stops training cleanly: the
actor-learners finish their segments, a checkpoint is written, learn() returns. Hooks:

    on_training_start(agent)
    on_step(agent, step)             often: at each of the training loop's ticks (hogwild:
                                     every 50 ms; sync: every update; ray: every gradient)
    on_episode(agent, episode)       a training episode ended: {step, wall_time, worker,
                                     return, length; success where the scenario
                                     defines one (asyncrl.success)}
    on_metrics(agent, row)           a metrics.csv row: {step, wall_time, steps_per_s,
                                     return_mean_100, loss/..., ...; success_rate_100
                                     with a success rule}
    on_eval(agent, result)           a periodic evaluation finished: {step, mean_return,
                                     std_return, min_return, max_return, episodes, ...}
    on_checkpoint(agent, path, step) a checkpoint was written
    on_training_end(agent)

The command line's --eval-every, --stop-eval-return and --stop-return are these same
callbacks (asyncrl.training.callbacks_of builds them from the config).
"""
from __future__ import annotations

import math
import sys
from typing import Any, Iterable


class Callback:
    """Subclass and override the hooks you need; each returns None (go on) or False (stop)."""

    def on_training_start(self, agent: Any) -> None:
        pass

    def on_step(self, agent: Any, step: int) -> bool | None:
        return None

    def on_episode(self, agent: Any, episode: dict) -> bool | None:
        return None

    def on_metrics(self, agent: Any, row: dict) -> bool | None:
        return None

    def on_eval(self, agent: Any, result: dict) -> bool | None:
        return None

    def on_checkpoint(self, agent: Any, path: str, step: int) -> bool | None:
        return None

    def on_training_end(self, agent: Any) -> None:
        pass


class CallbackList(Callback):
    """Several callbacks, called in order; training stops when any of them says so (each
    callback still sees the event)."""

    HOOKS = ("on_step", "on_episode", "on_metrics", "on_eval", "on_checkpoint")

    def __init__(self, callbacks: "Iterable[Callback | Any]" = ()):
        self.callbacks = []
        for cb in callbacks:
            if isinstance(cb, CallbackList):
                self.callbacks.extend(cb.callbacks)
            elif cb is not None:
                self.callbacks.append(as_callback(cb))

    def _each(self, hook: str, *args: Any) -> bool | None:
        go_on = True
        for cb in self.callbacks:
            if getattr(cb, hook)(*args) is False:
                go_on = False
        return None if go_on else False

    def on_training_start(self, agent):
        for cb in self.callbacks:
            cb.on_training_start(agent)

    def on_step(self, agent, step):
        return self._each("on_step", agent, step)

    def on_episode(self, agent, episode):
        return self._each("on_episode", agent, episode)

    def on_metrics(self, agent, row):
        return self._each("on_metrics", agent, row)

    def on_eval(self, agent, result):
        return self._each("on_eval", agent, result)

    def on_checkpoint(self, agent, path, step):
        return self._each("on_checkpoint", agent, path, step)

    def on_training_end(self, agent):
        for cb in self.callbacks:
            cb.on_training_end(agent)

    def find(self, kind: type) -> list:
        return [cb for cb in self.callbacks if isinstance(cb, kind)]


def as_callback(obj: Any) -> Callback:
    """A Callback as it is; a list of them as a CallbackList; a plain function f(agent, step)
    as an on_step hook (as SB3 accepts)."""
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, (list, tuple)):
        return CallbackList(obj)
    if callable(obj):
        return _StepFunction(obj)
    raise TypeError(f"callback must be an asyncrl.Callback, a list of them or a function f(agent, step), "
                    f"got {type(obj).__name__}")


class _StepFunction(Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_step(self, agent, step):
        return self.fn(agent, step)


class EvalCallback(Callback):
    """Evaluate a snapshot of the parameters every `every` global steps, with `episodes`
    episodes (greedy, or epsilon-greedy with `epsilon`; default: the config's eval-epsilon),
    in a separate process while training goes on. Results go to evaluations.csv,
    TensorBoard (eval/), the progress bar and every callback's on_eval; best.pt is then the
    checkpoint of the best evaluation. `stop_return`: stop once an evaluation's mean return
    reaches it."""

    def __init__(self, every: int, episodes: int = 10, epsilon: float | None = None,
                 stop_return: float = math.inf):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"EvalCallback every must be a positive number of steps, got {every!r}")
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"EvalCallback episodes must be a positive integer, got {episodes!r}")
        self.every, self.episodes, self.epsilon, self.stop_return = every, episodes, epsilon, stop_return

    def on_eval(self, agent, result):
        if result["mean_return"] >= self.stop_return:
            return False
        return None


class StopOnReward(Callback):
    """Stop once a measure reaches `threshold`: on="eval" the mean return of a periodic
    evaluation (needs an EvalCallback or --eval-every), on="train" the mean of the last 100
    training episodes."""

    def __init__(self, threshold: float, on: str = "eval"):
        if on not in ("eval", "train"):
            raise ValueError(f"StopOnReward on must be 'eval' or 'train', got {on!r}")
        self.threshold, self.on = float(threshold), on

    def on_eval(self, agent, result):
        if self.on == "eval" and result["mean_return"] >= self.threshold:
            return False
        return None

    def on_metrics(self, agent, row):
        mean = row.get("return_mean_100", math.nan)
        if self.on == "train" and row.get("episodes", 0) >= 100 and mean >= self.threshold:
            return False
        return None


class CheckpointEvery(Callback):
    """A checkpoint every `steps` global steps (besides the periodic ones by time)."""

    def __init__(self, steps: int):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"CheckpointEvery steps must be a positive integer, got {steps!r}")
        self.steps = steps
        self._last = None

    def on_training_start(self, agent):
        self._last = agent.global_step // self.steps

    def on_step(self, agent, step):
        if step // self.steps > self._last:
            self._last = step // self.steps
            agent.request_checkpoint()
        return None


class PrintProgress(Callback):
    """One line per metrics row on stdout (for logs where a progress bar is no use)."""

    def __init__(self, file=None):
        self.file = file

    def on_metrics(self, agent, row):
        print(f"step {row['step']:,}  {row.get('steps_per_s', 0):,.0f} steps/s  "
              f"return(100) {row.get('return_mean_100', math.nan):.1f}", file=self.file or sys.stdout, flush=True)
        return None

    def on_eval(self, agent, result):
        print(f"step {result['step']:,}  evaluation: mean return {result['mean_return']:.2f} over "
              f"{result['episodes']} episodes", file=self.file or sys.stdout, flush=True)
        return None
