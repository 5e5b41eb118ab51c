"""One learn() call's session: callbacks, periodic evaluation in the background, stop and
checkpoint requests, and best.pt ranked by evaluation. The RunLogger tells it every
episode, metrics row and tick (it is the logger's observer); the executors see only the
logger's stop_requested and checkpoint_requested."""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import numpy as np
import torch

from .callbacks import CallbackList, EvalCallback, as_callback
from .checkpoint import clean_temp_files, nonfinite_parts, save_checkpoint
from .config import Config
from .config.limits import MAX_STEPS
from .errors import ConfigError, StorageError
from .evaluator import BackgroundEvaluator
from .executors import TrainJob, make_executor
from .flat import bind_params_
from .learner import check_finite_params
from .loggers import backends
from .metrics import RunLogger, open_csv
from .run import hold_run_dir, save_run_checkpoint, write_config, write_eval
from .success import success_rule

_FIELD_NAMES = frozenset(Config.__dataclass_fields__)
EVAL_COLUMNS = ("step", "wall_time", "mean_return", "std_return", "min_return", "max_return", "mean_length",
                "episodes", "seconds", "success_rate")     # success_rate: empty where the env says none


def callbacks_of(cfg: Config) -> list:
    """The callbacks that the config's options stand for (--eval-every, --stop-eval-return)."""
    if cfg.eval_every > 0:
        return [EvalCallback(cfg.eval_every, max(cfg.eval_episodes, 1), cfg.eval_epsilon, cfg.stop_eval_return)]
    return []


class TrainingSession:
    """Created by the Agent for one learn(); `bind(job)` once the executor's job exists."""

    def __init__(self, agent: Any, callback: Any = None):
        self.agent = agent
        extra = [] if callback is None else [as_callback(callback)]
        self.callbacks = CallbackList([*callbacks_of(agent.config), *extra])
        evals = self.callbacks.find(EvalCallback)
        self.schedule = evals[0] if evals else None
        self.evaluator: BackgroundEvaluator | None = None
        self.job = None
        self.stop_requested = False
        self.checkpoint_requested = False
        self.next_eval = 0
        self.last_eval: dict | None = None
        self._eval_file = self._eval_csv = None
        self._eval_width = len(EVAL_COLUMNS)      # the columns evaluations.csv has

    @property
    def evaluates(self) -> bool:
        return self.schedule is not None

    # ------------------------------------------------------------------ life
    def start(self, job: Any) -> None:
        """Training begins: the evaluator process is started (before the executor forks its
        workers: the main process has no helper thread yet), the callbacks are told."""
        self.job = job
        agent, cfg = self.agent, self.agent.config
        if self.schedule is not None:
            s = self.schedule
            self.next_eval = (job.start_step // s.every + 1) * s.every
            epsilon = cfg.eval_epsilon if s.epsilon is None else s.epsilon
            self.evaluator = BackgroundEvaluator(cfg, job.env_factory.for_evaluation(), job.observation_space,
                                                 job.action_space, job.params.numel(), s.episodes, epsilon,
                                                 timeout=cfg.worker_timeout)
            if cfg.run_dir:
                # a file begun before success_rate was a column keeps its own columns
                self._eval_file, self._eval_csv, columns = open_csv(os.path.join(cfg.run_dir, "evaluations.csv"),
                                                                    EVAL_COLUMNS)
                self._eval_width = len(columns)
        self.callbacks.on_training_start(agent)

    def stop_evaluating(self) -> None:
        """The executor returned: an evaluation still running is dropped."""
        if self.evaluator is not None:
            self.evaluator.close()
            self.evaluator = None
        if self._eval_file is not None:
            self._eval_file.close()
            self._eval_file = None

    def finish(self) -> None:
        """Training ended (or failed): the callbacks are told."""
        self.stop_evaluating()
        self.callbacks.on_training_end(self.agent)

    # ------------------------------------------------------------------ the logger's observer
    def _stop_if(self, answer: bool | None) -> None:
        if answer is False:
            self.stop_requested = True

    def episode(self, row: dict) -> None:
        self._stop_if(self.callbacks.on_episode(self.agent, row))

    def metrics(self, row: dict) -> None:
        self._stop_if(self.callbacks.on_metrics(self.agent, row))

    def checkpointed(self, path: str, step: int) -> None:
        self._stop_if(self.callbacks.on_checkpoint(self.agent, path, step))

    def tick(self, step: int) -> None:
        """The training loop's heartbeat at global step `step`: collect a finished evaluation,
        start the next one when due, call on_step."""
        if self.evaluator is not None:
            result = self.evaluator.poll()
            if result is not None:
                self._evaluated(result)
            if step >= self.next_eval and not self.evaluator.busy:
                params = getattr(self.job, "live_params", None)
                if self.evaluator.submit(self.job.params if params is None else params, step):
                    self.next_eval = (step // self.schedule.every + 1) * self.schedule.every
        self._stop_if(self.callbacks.on_step(self.agent, step))

    def _evaluated(self, result: dict) -> None:
        result["wall_time"] = time.time() - self.job.time_origin
        self.last_eval = result
        log = self.job.logger
        log.scalar("eval/mean_return", result["mean_return"], result["step"])
        log.scalar("eval/std_return", result["std_return"], result["step"])
        if "success_rate" in result:
            log.scalar("eval/success_rate", result["success_rate"], result["step"])
        log.last_eval = result["mean_return"]
        if self._eval_csv is not None:
            success = result.get("success_rate")
            row = ([result["step"], f"{result['wall_time']:.3f}"] + [f"{result[c]:.6g}" for c in EVAL_COLUMNS[2:7]]
                   + [result["episodes"], result["seconds"], "" if success is None else f"{success:.6g}"])
            self._eval_csv.writerow(row[:self._eval_width])
            self._eval_file.flush()
        best = self.agent.best_return
        if math.isnan(best) or result["mean_return"] > best:
            self.agent.save_best(self.evaluator.snapshot, result)
        self._stop_if(self.callbacks.on_eval(self.agent, result))


class TrainingMixin:
    """What an Agent (api.Agent) does to learn: a learn() call's executor, logger, session
    and checkpoints. Kept apart from the facade; it uses the Agent's attributes (config,
    params, optimizer, algorithm, spaces, global_step, schedule, ...)."""

    def learn(self, steps: int | None = None, callback: Any = None, *, total_timesteps: int | None = None,
              reset_num_timesteps: bool = False) -> Any:
        """Train for `steps` more global environment steps (default: the config's `steps`;
        `total_timesteps` is the same, as Stable-Baselines3 names it). `callback`: an
        asyncrl.Callback, a list of them, or a function f(agent, step) called at each tick;
        a hook that returns False stops training cleanly, with a checkpoint (see
        asyncrl.callbacks). With eval_every > 0 a snapshot is evaluated every eval_every steps
        in a separate process while training goes on.

        The global step goes on from where the last call left it, and the learning rate anneals
        linearly to 0 at the end of this call over the whole schedule since its start: the first
        learn(n) anneals over n steps; a second learn(m) continues that schedule stretched to
        n + m steps, so its first update uses lr x m / (n + m), as Stable-Baselines3 does with
        reset_num_timesteps=False. `reset_num_timesteps=True` restarts the schedule here (the
        full lr, annealed over these `steps`); the global step, the logs and the checkpoints
        keep counting. Ctrl-C stops the workers, saves a checkpoint and re-raises
        KeyboardInterrupt (Ctrl-C during the final evaluation too: then `finished` is True and
        final.pt is saved). A checkpoint that cannot be written (a full disk) is a warning while
        training and a StorageError at the end.
        """
        if total_timesteps is not None:
            if steps is not None:
                raise ConfigError("give steps or total_timesteps, not both")
            steps = total_timesteps
        steps = self.config.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        if self.global_step + int(steps) > MAX_STEPS:
            raise ConfigError(f"steps {steps:,} would take the global step past {MAX_STEPS:,}, the most a run "
                              f"counts; give fewer steps")
        session = TrainingSession(self, callback)      # a bad callback is refused before anything starts
        start = self.global_step if reset_num_timesteps else self.schedule[0]
        self.schedule = (start, self.global_step + int(steps))
        return self._train(session)

    def resume(self, callback: Any = None) -> Any:
        """Continue an interrupted learn() to the global step it was aiming at, on the same
        learning-rate schedule (a loaded checkpoint remembers both); no-op if it got there."""
        if self.global_step >= self.schedule[1]:
            return self
        return self._train(TrainingSession(self, callback))

    def request_checkpoint(self) -> None:
        """Checkpoint the run folder at the training loop's next tick (from a callback)."""
        session = getattr(self, "_session", None)
        if session is not None:
            session.checkpoint_requested = True

    def _train(self, session: "TrainingSession") -> Any:
        factory = self._require_env("train")
        # the run folder is this run's alone (a loaded agent takes its folder's lock here)
        lock = self._run_lock = hold_run_dir(self.config.run_dir, self._run_lock) if self.config.run_dir else None
        try:
            return self._train_locked(self.config, factory, session)
        finally:
            if lock is not None:        # the folder is free again once this run is over
                lock.release()
                self._run_lock = None

    def _train_locked(self, cfg: Config, factory: Any, session: "TrainingSession") -> Any:
        started = time.time()           # wall_time 0 (earlier runs included) is this long ago
        self.finished, self.checkpoints_written, self.last_eval = False, 0, None
        start, target = self.global_step, self.schedule[1]
        self._time_origin = time_origin = started - self.wall_time
        executor = self._executor = make_executor(cfg)     # kept for inspection (tests, benchmarks)
        self.resolved = executor.resolve(factory)
        self.resolved["fused_optimizer"] = executor.prepare_update(
            self.optimizer, self.params, cfg.fused_optimizer, self.resolved.get("device", "cpu"),
            announce=self.progress is not False)
        clock = time.time()             # the rate's clock: from here (the update compiled) to the last step
        if cfg.run_dir:     # what a process that died mid-write left (the folder is locked: not in use)
            clean_temp_files(cfg.run_dir, os.path.join(cfg.run_dir, "checkpoints"))
            self._write_config(target)
        logger = RunLogger(cfg.run_dir or None, self.algorithm.stat_keys, start, target, time_origin,
                           cfg.log_interval, self.progress, cfg.log_steps, self.frames_per_step,
                           backends(cfg, start), success_rule(factory.env_id) if factory.fn is None else None)
        self._logger, self._session = logger, session
        logger.observer = session
        job = TrainJob(cfg, factory, self.observation_space, self.action_space, self.params,
                       self.target_params, self.optimizer, start, target, self.schedule, time_origin,
                       logger, self._periodic_checkpoint)
        try:
            session.start(job)          # the evaluator starts before the executor's workers
            self.global_step = executor.run(job)
        except BaseException:
            session.stop_evaluating()
            self._stopped(executor, logger, clock, failed=True)
            session.finish()
            raise
        session.stop_evaluating()
        self._stopped(executor, logger, clock, failed=False)
        try:
            if executor.interrupted:
                raise KeyboardInterrupt
            if cfg.eval_episodes > 0:   # final.pt is saved: a hang or Ctrl-C here loses no training
                self.last_eval = self.evaluate(cfg.eval_episodes)
                logger.scalar("eval/mean_return", self.last_eval["mean_return"], self.global_step)
                if cfg.run_dir:
                    write_eval(cfg.run_dir, {**self.last_eval, "step": self.global_step})
        finally:
            session.finish()
            logger.close()
            self._session = None
        return self

    def _stopped(self, executor, logger: RunLogger, started: float, failed: bool) -> None:
        """Training stopped (done, interrupted or failed): its step, time and restarts recorded,
        the run folder checkpointed (final.pt if finished): nothing learned is lost. A checkpoint
        that cannot be written is a StorageError (the last good one kept) unless training failed."""
        if executor.step is not None:     # also when it failed: the step of the parameters
            self.global_step = executor.step
        self.wall_time = time.time() - self._time_origin
        self.worker_restarts = executor.restarts
        self.finished = not failed and not executor.interrupted
        try:
            self._checkpoint_run(final=self.finished)
        except OSError as exc:
            message = (f"could not write the {'final ' if self.finished else ''}checkpoint at step "
                       f"{self.global_step:,}: {exc.strerror or exc}; {self._kept()}")
            logger.fault(message, self.global_step, echo=failed)
            if not failed:
                self.finished = False   # no final.pt
                logger.close()
                raise StorageError(message) from None
        finally:
            self.train_seconds = time.time() - started
            if failed:
                logger.close()

    def _kept(self) -> str:
        step = self.checkpoint_step
        return "there is no earlier checkpoint" if step is None else f"the last good checkpoint (step {step:,}) is kept"

    def _periodic_checkpoint(self, step: int) -> None:
        """Every checkpoint_interval: checkpoint the run folder (one that cannot be written is a
        warning, and training goes on), and stop training if the parameters are no longer finite
        (a gradient step that overflowed; a non-finite gradient is caught at once)."""
        self.global_step = step
        origin = getattr(self, "_time_origin", None)      # None: called outside learn()
        if origin is not None:
            self.wall_time = time.time() - origin
        try:
            self._checkpoint_run()
        except OSError as exc:
            self._logger.fault(f"could not write a periodic checkpoint at step {step:,}: {exc.strerror or exc}; "
                               f"{self._kept()} and training goes on", step)
        check_finite_params(self.params, step)

    def _checkpoint_run(self, final: bool = False) -> str | None:
        """Checkpoint the run folder (run.save_run_checkpoint): latest.pt, step-<N>.pt, best.pt when
        the mean return of the last 100 training episodes is the best so far, final.pt at the end.
        A non-finite model, optimiser or target network is never written (returns None); an
        OSError (a full disk) leaves the last good checkpoint as it was."""
        if not self.config.run_dir:
            return None
        logger = getattr(self, "_logger", None)
        payload = self.checkpoint_payload()
        bad = nonfinite_parts(payload)
        if bad:
            message = (f"not checkpointing: the {' and '.join(bad)} state is not finite (inf/nan); "
                       f"the last good checkpoint is kept")
            if logger is not None:
                logger.fault(message, self.global_step)
            else:
                print(f"asyncrl: step {self.global_step:,}: {message}", file=sys.stderr, flush=True)
            return None
        session = getattr(self, "_session", None)
        measure = logger.mean_100 if logger is not None else float("nan")
        # best.pt by the training mean, unless periodic evaluations rank it (save_best)
        best = not (session is not None and session.evaluates) and not math.isnan(measure) \
            and not measure <= self.best_return   # nan best: none yet
        if best:
            payload["best_return"] = measure
        path = save_run_checkpoint(self.config.run_dir, payload, self.global_step, self.config.keep_checkpoints,
                                   final, best)
        if best:
            self.best_return = measure
        self.checkpoint_step = self.global_step
        self.checkpoints_written += 1
        if session is not None:
            session.checkpointed(path, self.global_step)
        return path

    def save_best(self, snapshot: torch.Tensor, result: dict) -> str | None:
        """A periodic evaluation of `snapshot` (flat parameters at result["step"]) is the best
        so far: best.pt gets those parameters (with the optimiser state of now) and its mean."""
        self.best_return = float(result["mean_return"])
        if not self.config.run_dir:
            return None
        with torch.random.fork_rng(devices=[]):      # the main process's RNG stays as it was
            shadow = self.algorithm.build_model(self.observation_space, self.action_space)
        bind_params_(shadow, snapshot)
        payload = self.checkpoint_payload()
        payload.update(model={k: v.detach().clone() for k, v in shadow.state_dict().items()},
                       global_step=int(result["step"]), best_return=self.best_return)
        if nonfinite_parts(payload):
            return None
        path = os.path.join(self.config.run_dir, "checkpoints", "best.pt")
        try:
            save_checkpoint(path, payload)
        except OSError as exc:
            self._logger.fault(f"could not write best.pt (evaluation at step {result['step']:,}): "
                               f"{exc.strerror or exc}", result["step"])
            return None
        return path

    def _write_config(self, target: int) -> None:
        """config.yaml: the fields that apply to this run (Config.applies), with the choices
        behind its `auto` values (executor, ...) and the step it trains to."""
        cfg = self.config.replace(steps=target)
        resolved = {k: v for k, v in getattr(self, "resolved", {}).items() if k not in _FIELD_NAMES or cfg.applies(k)}
        write_config(cfg.run_dir, {**cfg.applicable_dict(), **resolved})
