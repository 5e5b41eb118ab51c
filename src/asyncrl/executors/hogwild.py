"""The hogwild executor: N actor-learner processes, parameters and optimiser statistics
in shared memory, lock-free updates. The main process never acts: it supervises the
workers, collects their metrics (one queue per worker), checkpoints, stops them, and
replaces a worker that dies or hangs: on the current shared parameters, with its reserved
steps given back to the counter, at most `max_worker_restarts` times per run."""
from __future__ import annotations

import os
import queue as queue_mod
import time

import torch.multiprocessing as mp

from ..config import Config
from ..errors import NonFiniteError, StorageError
from ..procs import (JOIN_TIMEOUT_S, POLL_S, DeferredInterrupt, kill_group, resolve_start_method, signal_name,
                     single_threaded_children)
from .base import ActorExecutor, TrainJob
from .counter import StepCounter
from .supervise import Supervisor
from .worker import WorkerSpec, worker_main


def mp_context(method: str):
    """The multiprocessing context of the workers."""
    ctx = mp.get_context(method)
    if method == "forkserver":
        # import torch and asyncrl once in the server; each worker is then a cheap fork
        ctx.set_forkserver_preload(["asyncrl.executors.worker"])
    return ctx


def share_memory(job: TrainJob) -> None:
    """Parameters, target network and optimiser statistics into shared memory (/dev/shm), where
    the workers update them; a StorageError (exit code 5) when there is no room for them."""
    try:
        job.params.share_memory_()
        if job.target_params is not None:
            job.target_params.share_memory_()
        job.optimizer.share_memory_()
    except RuntimeError as exc:         # torch's "unable to resize file <...> to the right size: ..."
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StorageError(f"cannot put the parameters in shared memory (/dev/shm): {reason}; free room there "
                           f"(or use --executor sync)") from None


class _Worker:
    """One rank's current process and its own message queue (one writer per queue: a worker
    killed mid-message can hold no lock that the others need)."""

    def __init__(self, ctx, rank: int, spec: WorkerSpec, life: int):
        self.rank, self.life = rank, life
        self.hung = False               # killed by the supervisor for finishing no segment in time
        self.settled = False            # died after training had ended: nothing to replace
        self.started = False
        self.queue = ctx.Queue()
        spec.counter.beat(rank)
        self.proc = ctx.Process(target=worker_main, args=(rank, spec, self.queue, life),
                                name=f"asyncrl-worker-{rank}", daemon=True)

    def start(self) -> "_Worker":
        with single_threaded_children():
            self.proc.start()
        self.started = True
        return self

    @property
    def failed(self) -> bool:
        return self.proc.exitcode not in (None, 0) and not self.settled

    @property
    def ended(self) -> bool:
        return self.proc.exitcode == 0 or self.settled


class HogwildExecutor(ActorExecutor):
    name = "hogwild"
    noun = "actor-learners"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.method = resolve_start_method(cfg.start_method)

    def resolve(self, factory) -> dict:
        """The concrete choices behind `auto` values (written to the run's config.yaml)."""
        return {"executor": "hogwild", "device": "cpu", "start_method": self.method}

    def describe(self) -> str:
        return f"{self.cfg.workers} hogwild workers"

    def update_layout(self) -> tuple[bool, int]:
        # each worker's update refreshes its theta' as it writes theta; one thread per worker
        return True, 1

    def run(self, job: TrainJob) -> int:
        """Start the workers and supervise them until the counter reaches the target: collect
        their messages, log, checkpoint, and replace a worker that dies or hangs (up to
        `max_worker_restarts` times) on the current shared parameters, giving its reserved
        steps back first so that T still ends exactly on the target."""
        cfg, log = job.cfg, job.logger
        ctx = mp_context(self.method)
        share_memory(job)
        counter = self.make_counter(ctx, job)
        spec = WorkerSpec(cfg, job.env_factory, job.params, job.target_params, job.optimizer, counter,
                          job.schedule, job.time_origin, os.getpid())
        self.supervisor, self._errors = Supervisor(job), {}
        workers = [_Worker(ctx, rank, spec, 0) for rank in range(cfg.workers)]
        # Ctrl-C / SIGTERM set a flag that the loop reads between its steps (DeferredInterrupt):
        # raised anywhere, it could land inside the logger's first import of TensorBoard and
        # leave a half-imported module behind. The workers finish their segment and exit; the
        # caller checkpoints. A second Ctrl-C stops at once.
        with DeferredInterrupt() as stop:
            try:
                for w in workers:
                    if stop.requested:
                        break
                    w.start()
                while not stop.requested:
                    time.sleep(POLL_S)
                    self._drain(workers, log)
                    self.supervisor.tick(counter.done)
                    if self.supervisor.solved() and not counter.stopped:
                        counter.stop()
                    for i, w in enumerate(workers):
                        if w.failed:
                            workers[i] = self._replace(w, ctx, spec, log)
                        elif w.proc.exitcode is None and cfg.worker_timeout > 0 \
                                and counter.silent_for(w.rank) > cfg.worker_timeout:
                            w.hung = True           # no segment finished for too long: a hang
                            kill_group(w.proc)
                            w.proc.join(timeout=JOIN_TIMEOUT_S)
                    if all(w.ended for w in workers):
                        break
                self.interrupted = stop.requested
            except KeyboardInterrupt:           # the second Ctrl-C
                self.interrupted = True
            finally:
                counter.stop()
                self._shutdown(workers, log)
                self.step = counter.done
        log.tick(counter.done, force=True)
        return counter.done

    def make_counter(self, ctx, job: TrainJob) -> StepCounter:
        """The run's step counter (a node group of the ray executor's hierarchical mode makes
        a leased one)."""
        return StepCounter(ctx, job.start_step, job.target_step, self.cfg.workers)

    # ------------------------------------------------------------------ helpers
    def _replace(self, w: _Worker, ctx, spec: WorkerSpec, log) -> _Worker:
        """Worker `w` has died: say why, give its reserved steps back, and start a replacement
        (or stop the run: a non-finite streak, or no restarts left)."""
        self._drain([w], log)               # its last messages, the traceback among them
        tb, fatal = self._errors.pop(w.rank, (None, None))
        if fatal:
            raise NonFiniteError(f"worker {w.rank}: {fatal}")
        why = self._cause(w, tb)
        counter = spec.counter
        counter.release(w.rank)
        step = counter.done
        detail = f"\n{tb.rstrip()}" if tb else ""
        if counter.finished:                # nothing left to do: no replacement needed
            self.supervisor.after_end(w.rank, why, step, detail)
            w.settled = True
            return w
        self.supervisor.failed(w.rank, why, step, detail)
        w.queue.close()
        return _Worker(ctx, w.rank, spec, w.life + 1).start()

    def _cause(self, w: _Worker, tb: str | None) -> str:
        code = w.proc.exitcode
        if w.hung:
            return self.supervisor.hung
        if tb:
            return f"failed: {tb.strip().splitlines()[-1]}"
        if code < 0:
            return f"was killed by {signal_name(-code)}"
        return f"died with exit code {code}"

    def _drain(self, workers, log) -> None:
        """Everything the workers have sent so far (never blocks)."""
        for w in workers:
            q = w.queue
            while True:
                try:
                    msg = q.get_nowait()
                except (queue_mod.Empty, OSError, EOFError, ValueError):
                    break
                kind = msg[0]
                if kind == "episode":
                    log.episode(worker=msg[1], step=msg[2], wall_time=msg[3], ret=msg[4], length=msg[5])
                elif kind == "stats":
                    log.stats(worker=msg[1], updates=msg[2], skipped=msg[3], norm_sum=msg[4], sums=msg[5],
                              lr=msg[6])
                elif kind == "error":
                    self._errors[msg[1]] = (msg[2], msg[3])

    def _shutdown(self, workers, log) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while any(w.proc.is_alive() for w in workers) and time.monotonic() < deadline:
            self._drain(workers, log)        # keep the pipes empty so workers can exit
            time.sleep(POLL_S)
        for w in workers:
            kill_group(w.proc)
            if w.started:
                w.proc.join(timeout=2.0)
        self._drain(workers, log)            # what the last workers sent as they exited
        for w in workers:
            w.queue.close()
