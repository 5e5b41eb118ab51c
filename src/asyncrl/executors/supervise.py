"""The supervision policy of the executors whose actor-learners or env subprocesses can
fail one by one (hogwild's processes, ray's actors, the sync executor's env subprocesses):
the restart budget, how a fault is worded and logged, periodic checkpoints, and stopping
once solved. The executor says what happened to a worker; the policy decides whether the
run goes on."""
from __future__ import annotations

import time

from ..errors import WorkerError


class Supervisor:
    """One per run(). `restarts` counts the workers replaced so far (all ranks together)."""

    def __init__(self, job):
        """job: the executors.base.TrainJob being run."""
        self.job, self.cfg, self.log = job, job.cfg, job.logger
        self.restarts = 0
        self._last_checkpoint = time.monotonic()

    @property
    def hung(self) -> str:
        """Why a worker that finished no segment within worker-timeout was killed."""
        return f"finished no segment for {self.cfg.worker_timeout:g} s (hung; killed)"

    def failed(self, rank: int, why: str, step: int, detail: str = "", who: str = "",
               how: str = "restarting it on the current parameters") -> None:
        """Worker `rank` failed (`why`: 'was killed by SIGKILL', ...; `detail`: its traceback,
        starting with a newline) at global step `step`. Within the budget the fault is logged
        as a restart and the caller replaces the worker (`how`); past it, WorkerError stops the
        run. `who` names it where it is not 'worker <rank>' (the sync executor's env
        subprocesses, which share the budget)."""
        limit = self.cfg.max_worker_restarts
        who = who or f"worker {rank}"
        if self.restarts >= limit:
            message = (f"{who} {why} at step {step:,}; the run stops: {self.restarts} worker "
                       f"restart{'s' * (self.restarts != 1)} already (max-worker-restarts {limit})")
            self.log.fault(message + detail, step, echo=False)
            raise WorkerError(message + detail)
        self.restarts += 1
        self.log.fault(f"{who} {why}; {how} (restart {self.restarts} of at most {limit}){detail}", step,
                       restart=True)

    def after_end(self, rank: int, why: str, step: int, detail: str = "") -> None:
        """Worker `rank` failed once no work was left: logged, nothing to replace."""
        self.log.fault(f"worker {rank} {why} after training had ended{detail}", step)

    def solved(self) -> bool:
        """Time to stop: the mean of the last 100 training returns reached stop-return, or a
        callback or an evaluation asked (metrics.RunLogger.stop_requested)."""
        return self.log.solved(self.cfg.stop_return) or self.log.stop_requested

    def tick(self, step: int, before_checkpoint=None) -> None:
        """Log at global step `step`, and checkpoint every checkpoint-interval seconds or when a
        callback asks (`before_checkpoint()` first: e.g. copying parameters back from a device;
        when it returns a step, the parameters it brought are of that step, which the
        checkpoint then carries)."""
        self.log.tick(step)
        asked = self.log.take_checkpoint_request()
        if asked or time.monotonic() - self._last_checkpoint >= self.cfg.checkpoint_interval:
            if before_checkpoint is not None:
                step = before_checkpoint() or step
            self.job.checkpoint(step)
            self._last_checkpoint = time.monotonic()
