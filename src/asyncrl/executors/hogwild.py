"""The hogwild executor: N actor-learner processes, parameters and optimiser statistics
in shared memory, lock-free updates. The main process never acts: it supervises the
workers, collects their metrics, checkpoints, and stops them."""
from __future__ import annotations

import os
import queue as queue_mod
import sys
import time

import torch.multiprocessing as mp

from ..config import Config
from ..errors import WorkerError
from . import TrainJob
from .counter import StepCounter
from .worker import WorkerSpec, worker_main

JOIN_TIMEOUT_S = 10.0


def resolve_start_method(name: str) -> str:
    if name != "auto":
        return name
    # fork: user scripts need no __main__ guard and workers start in milliseconds. It is
    # safe because a worker's first act is torch.set_num_threads(1) (a forked OpenMP pool
    # otherwise deadlocks: reproduced here) and the main process starts no helper thread
    # (TensorBoard, tqdm) before the workers exist.
    return "fork" if sys.platform.startswith("linux") else "spawn"


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


class HogwildExecutor:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.method = resolve_start_method(cfg.start_method)
        self.interrupted = False
        self.step: int | None = None    # global step reached (set when run() returns or fails)

    def resolve(self, factory) -> dict:
        """The concrete choices behind `auto` values (written to the run's config.yaml)."""
        return {"executor": "hogwild", "device": "cpu", "start_method": self.method}

    def run(self, job: TrainJob) -> int:
        cfg, log = job.cfg, job.logger
        ctx = _context(self.method)
        job.params.share_memory_()
        if job.target_params is not None:
            job.target_params.share_memory_()
        job.optimizer.share_memory_()
        counter = StepCounter(ctx, job.start_step, job.target_step)
        q = ctx.Queue()
        spec = WorkerSpec(cfg, job.env_factory, job.params, job.target_params, job.optimizer, counter, q,
                          job.schedule, job.time_origin)
        procs = [ctx.Process(target=worker_main, args=(rank, spec), name=f"asyncrl-worker-{rank}",
                             daemon=True) for rank in range(cfg.workers)]
        with _single_threaded_children():
            for p in procs:
                p.start()
        last_ckpt = time.monotonic()
        try:
            while True:
                self._drain(q, log, timeout=0.05)
                step = counter.done
                log.tick(step)
                if log.solved(cfg.stop_return) and not counter.stopped:
                    counter.stop()
                if time.monotonic() - last_ckpt >= cfg.checkpoint_interval:
                    job.checkpoint(step)
                    last_ckpt = time.monotonic()
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    self._drain(q, log, timeout=0.2)
                    raise WorkerError(self._describe_failure(dead[0], log))
                if all(p.exitcode is not None for p in procs):
                    break
        except KeyboardInterrupt:
            # Ctrl-C / SIGTERM: workers finish their segment and exit; the caller checkpoints
            self.interrupted = True
        finally:
            counter.stop()
            self._shutdown(procs, q, log)
            self.step = counter.done
        log.tick(counter.done, force=True)
        return counter.done

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _drain(q, log, timeout: float) -> None:
        try:
            msg = q.get(timeout=timeout)
        except queue_mod.Empty:
            return
        while True:
            kind = msg[0]
            if kind == "episode":
                log.episode(worker=msg[1], step=msg[2], wall_time=msg[3], ret=msg[4], length=msg[5])
            elif kind == "stats":
                log.stats(worker=msg[1], updates=msg[2], skipped=msg[3], norm_sum=msg[4], sums=msg[5], lr=msg[6])
            elif kind == "error":
                log.worker_errors[msg[1]] = msg[2]
            try:
                msg = q.get_nowait()
            except queue_mod.Empty:
                return

    @staticmethod
    def _describe_failure(p, log) -> str:
        rank = int(p.name.rsplit("-", 1)[1])
        tb = log.worker_errors.get(rank)
        if tb:
            last = tb.strip().splitlines()[-1]
            return f"worker {rank} failed: {last}\n{tb}"
        return f"worker {rank} died with exit code {p.exitcode} (signal {-p.exitcode})" if p.exitcode < 0 \
            else f"worker {rank} died with exit code {p.exitcode}"

    def _shutdown(self, procs, q, log) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            self._drain(q, log, timeout=0.05)   # keep the pipe empty so workers can exit
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=2.0)
        self._drain(q, log, timeout=0.1)   # what the last workers sent as they exited
        q.close()
