"""The hogwild executor: N actor-learner processes, parameters and optimiser statistics
in shared memory, lock-free updates. The main process never acts: it supervises the
workers, collects their metrics (one queue per worker), checkpoints, stops them, and
replaces a worker that dies or hangs: on the current shared parameters, with its reserved
steps given back to the counter, at most `max_worker_restarts` times per run."""
from __future__ import annotations

import os
import queue as queue_mod
import signal
import sys
import time

import torch.multiprocessing as mp

from ..config import Config
from ..errors import NonFiniteError, WorkerError
from . import TrainJob
from .counter import StepCounter
from .worker import WorkerSpec, worker_main

JOIN_TIMEOUT_S = 10.0
#: how often the main process looks at the workers and their queues
POLL_S = 0.05


def resolve_start_method(name: str) -> str:
    if name != "auto":
        return name
    # fork: user scripts need no __main__ guard and workers start in milliseconds. It is
    # safe because a worker's first act is torch.set_num_threads(1) (a forked OpenMP pool
    # otherwise deadlocks: reproduced here) and the main process starts no helper thread
    # (TensorBoard, tqdm) before the workers exist.
    return "fork" if sys.platform.startswith("linux") else "spawn"


def signal_name(signum: int) -> str:
    """'SIGKILL' for 9; 'signal N' for a number Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def child_pids(pid: int) -> list[int]:
    """The pids of a process's children, from Linux's /proc (empty if it is gone): a training
    process's hogwild workers (or the sync executor's env subprocesses), for operators and
    for the fault-injection tests and soak benchmark that kill one."""
    pids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                pids.extend(int(c) for c in fh.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return sorted(pids)


def _context(method: str):
    ctx = mp.get_context(method)
    if method == "forkserver":
        # import torch and asyncrl once in the server; each worker is then a cheap fork
        ctx.set_forkserver_preload(["asyncrl.executors.worker"])
    return ctx


class _single_threaded_children:
    """Children must not start OpenMP/MKL thread pools (a forked pool deadlocks, and N
    workers x M threads oversubscribe the cores): set the variables while they start."""

    VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.VARS}
        for k in self.VARS:
            os.environ[k] = "1"

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Worker:
    """One rank's current process and its own message queue (one writer per queue: a worker
    killed mid-message can hold no lock that the others need)."""

    def __init__(self, ctx, rank: int, spec: WorkerSpec, life: int):
        self.rank, self.life = rank, life
        self.hung = False               # killed by the supervisor for finishing no segment in time
        self.settled = False            # died after training had ended: nothing to replace
        self.queue = ctx.Queue()
        spec.counter.beat(rank)
        self.proc = ctx.Process(target=worker_main, args=(rank, spec, self.queue, life),
                                name=f"asyncrl-worker-{rank}", daemon=True)

    def start(self) -> "_Worker":
        with _single_threaded_children():
            self.proc.start()
        return self

    @property
    def failed(self) -> bool:
        return self.proc.exitcode not in (None, 0) and not self.settled

    @property
    def ended(self) -> bool:
        return self.proc.exitcode == 0 or self.settled


class HogwildExecutor:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.method = resolve_start_method(cfg.start_method)
        self.interrupted = False
        self.step: int | None = None    # global step reached (set when run() returns or fails)
        self.restarts = 0               # worker processes replaced during the last run()

    def resolve(self, factory) -> dict:
        """The concrete choices behind `auto` values (written to the run's config.yaml)."""
        return {"executor": "hogwild", "device": "cpu", "start_method": self.method}

    def run(self, job: TrainJob) -> int:
        """Start the workers and supervise them until the counter reaches the target: collect
        their messages, log, checkpoint, and replace a worker that dies or hangs (up to
        `max_worker_restarts` times) on the current shared parameters, giving its reserved
        steps back first so that T still ends exactly on the target."""
        cfg, log = job.cfg, job.logger
        ctx = _context(self.method)
        job.params.share_memory_()
        if job.target_params is not None:
            job.target_params.share_memory_()
        job.optimizer.share_memory_()
        counter = StepCounter(ctx, job.start_step, job.target_step, cfg.workers)
        spec = WorkerSpec(cfg, job.env_factory, job.params, job.target_params, job.optimizer, counter,
                          job.schedule, job.time_origin, os.getpid())
        self.restarts, self._errors = 0, {}
        workers = [_Worker(ctx, rank, spec, 0) for rank in range(cfg.workers)]
        for w in workers:
            w.start()
        last_ckpt = time.monotonic()
        try:
            while True:
                time.sleep(POLL_S)
                self._drain(workers, log)
                step = counter.done
                log.tick(step)
                if log.solved(cfg.stop_return) and not counter.stopped:
                    counter.stop()
                if time.monotonic() - last_ckpt >= cfg.checkpoint_interval:
                    job.checkpoint(step)
                    last_ckpt = time.monotonic()
                for i, w in enumerate(workers):
                    if w.failed:
                        workers[i] = self._replace(w, ctx, spec, log)
                    elif w.proc.exitcode is None and cfg.worker_timeout > 0 \
                            and counter.silent_for(w.rank) > cfg.worker_timeout:
                        w.hung = True           # no segment finished for too long: a hang
                        w.proc.kill()
                        w.proc.join(timeout=JOIN_TIMEOUT_S)
                if all(w.ended for w in workers):
                    break
        except KeyboardInterrupt:
            # Ctrl-C / SIGTERM: workers finish their segment and exit; the caller checkpoints
            self.interrupted = True
        finally:
            counter.stop()
            self._shutdown(workers, log)
            self.step = counter.done
        log.tick(counter.done, force=True)
        return counter.done

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
            log.fault(f"worker {w.rank} {why} after training had ended{detail}", step)
            w.settled = True
            return w
        limit = self.cfg.max_worker_restarts
        if self.restarts >= limit:
            message = (f"worker {w.rank} {why} at step {step:,}; the run stops: {self.restarts} worker "
                       f"restart{'s' * (self.restarts != 1)} already (max-worker-restarts {limit})")
            log.fault(message + detail, step, echo=False)
            raise WorkerError(message + detail)
        self.restarts += 1
        log.fault(f"worker {w.rank} {why}; restarting it on the current parameters (restart "
                  f"{self.restarts} of at most {limit}){detail}", step, restart=True)
        w.queue.close()
        return _Worker(ctx, w.rank, spec, w.life + 1).start()

    def _cause(self, w: _Worker, tb: str | None) -> str:
        code = w.proc.exitcode
        if w.hung:
            return f"finished no segment for {self.cfg.worker_timeout:g} s (hung; killed)"
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
            if w.proc.is_alive():
                w.proc.terminate()
            w.proc.join(timeout=2.0)
        self._drain(workers, log)            # what the last workers sent as they exited
        for w in workers:
            w.queue.close()
