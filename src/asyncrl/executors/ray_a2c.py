"""The ray executor's A2C: synchronous data-parallel learners, one per node by default.

N learners (Ray actors, one bundle each of a SPREAD placement group) each step B = workers
/ N environments in lockstep: learner j steps the global envs jB .. jB + B - 1, seeded as
the sync executor seeds them, and runs the sync executor's own loop on them
(sync.lockstep_updates). Its learner reduces every gradient with one all-reduce
(torch.distributed: gloo on the CPU, NCCL on GPUs, set up over Ray from learner 0's node)
between the raw gradient and the clip (Learner.reduce_with): the loss is a mean over the
batch's environments, so the mean of the N learners' gradients is the gradient of the
whole N x B batch; the statistics ride in the same buffer. Every learner then clips by the
global norm and takes the same optimiser step: their parameters stay identical, and with
matched seeds the run is one sync learner with all N x B environments, to floating-point
rounding (the sampling noise of env i does not depend on the split: sync.BlockSampler).

This process only drives: it asks every learner for the same number of updates at a time
(a chunk, about CHUNK_S seconds), logs the episodes they report (worker: the global env
index) and learner 0's statistics (the global batch's), keeps T (all envs' steps), copies
learner 0's parameters and optimiser state into the agent after every chunk (what
evaluation and checkpoints read), and stops on `solved`, at the target, or on Ctrl-C (after
the chunk in flight). A learner that dies, raises or hangs: the whole group is restarted
from the last chunk's parameters and T (the failed chunk's steps are dropped), its envs and
sampling noise seeded afresh, within max-worker-restarts; past it, or when the group cannot
be placed again within the start timeout, WorkerError stops the run.
"""
from __future__ import annotations

import datetime
import gc
import os
import socket
import time
import warnings

import numpy as np
import torch

from ..config import Config
from ..errors import ConfigError, NonFiniteError, WorkerError
from ..learner import make_learner
from ..procs import JOIN_TIMEOUT_S, POLL_S, DeferredInterrupt
from ..threads import single_threaded
from ..vector import close_vector_env, make_vector_env
from .base import TrainJob
from .ray_cluster import cpu_nodes, remote_error
from .supervise import Supervisor
from .sync import choose_threads, lockstep_updates

#: seconds a chunk of updates aims at (the driver's cadence: logging, stop checks, copies)
CHUNK_S = 0.5
#: a chunk grows by at most this factor over the previous one
CHUNK_GROWTH = 4
#: seconds a learner may take to start (import torch, build its envs and model) when
#: worker-timeout is shorter (the ray executor's actors get as long)
START_TIMEOUT_S = 60.0
_REMOTE_CLASS = None


def failure(exc: BaseException) -> tuple[str, str]:
    """(one line, the whole text) of an error Ray brought back from a learner: the exception
    it raised, or why its actor died."""
    cause = getattr(exc, "cause", None)
    text = remote_error(exc)[1]
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}".splitlines()[0], text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__), text


class DataParallel:
    """The data-parallel layout's checks (the executor's option_problems calls them)."""

    @classmethod
    def option_problems(cls, cfg: Config) -> list[str]:
        if cfg.executor != "ray" or cfg.algo != "a2c" or cfg.learners <= 0:
            return []
        problem = cls.layout_problem(cfg.workers, cfg.learners)
        return [problem] if problem else []

    @staticmethod
    def layout_problem(workers: int, learners: int, how: str = "") -> str | None:
        if workers % learners == 0:
            return None
        return (f"workers {workers} is not a multiple of learners {learners}{how}: each a2c learner steps "
                f"workers / learners environments; use --workers {max(learners, workers // learners * learners)} "
                f"or --learners {next(n for n in range(min(learners, workers), 0, -1) if workers % n == 0)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class DataParallelLearner:
    """One data-parallel learner, living in a Ray actor (see the module's docstring)."""

    def __init__(self, cfg: Config, env_factory, rank: int, world: int, life: int, params: torch.Tensor,
                 optimizer, schedule: tuple[int, int], step: int, target: int, device: str):
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.cfg, self.rank, self.world = cfg, rank, world
        self.device = torch.device(device)
        self.threads = choose_threads(cfg, env_factory, "inline") if self.device.type == "cpu" else 1
        single_threaded()                   # NumPy's BLAS too; torch's pool: the learner's threads
        torch.set_num_threads(self.threads)
        B = cfg.workers // world
        self.venv = make_vector_env(env_factory, B, "inline")
        self.learner = make_learner(cfg, self.venv.single_observation_space, self.venv.single_action_space,
                                    params, None, optimizer, schedule, local_copy=False, device=self.device)
        self.step, self.target, self.life = step, target, life
        self.updates = None
        self.dist = False

    def endpoint(self) -> tuple[str, int]:
        """Where the process group meets (asked of learner 0): this node's address, a free port."""
        import ray
        return ray.util.get_node_ip_address(), free_port()

    def connect(self, host: str, port: int, timeout_s: float) -> int:
        """Join the process group (blocks until all have) and install the gradient's all-reduce."""
        B = self.venv.num_envs
        if self.world > 1:
            import torch.distributed as dist
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=self.rank,
                                    world_size=self.world, timeout=datetime.timedelta(seconds=timeout_s))
            self.dist = True
            reduce = AllReduce(self.learner.algo.stat_keys, self.world)
            reduce.bind(self.learner.reduce_with(reduce, spare=len(reduce.keys)), self.learner.grad.numel())
        self.updates = lockstep_updates(self.cfg, self.venv, self.learner, self.device, self.threads, self.step,
                                        self.target, first_env=self.rank * B, all_envs=B * self.world,
                                        life=self.life)
        return os.getpid()

    def run(self, k: int):
        """Up to k updates (fewer when the target is reached): (global step, updates made,
        episodes (env, step, return, length), and from learner 0 its statistics and state)."""
        episodes: list = []
        n = 0
        while n < k:
            try:
                done = next(self.updates, None)
            except WorkerError as exc:      # the sync executor's words for a failed env say "the run
                raise (exc.__cause__ or exc)  # stops"; here the driver restarts the group: the env's own error
            if done is None:
                break
            self.step, finished = done
            episodes.extend(finished)
            n += 1
        if self.rank:
            self.learner.take_stats()
            return self.step, n, episodes, None, None
        params = self.learner.params.detach()
        state = {name: v.detach().cpu().numpy() for name, v in self.learner.optimizer.state_dict().items()}
        return self.step, n, episodes, self.learner.take_stats(), (params.cpu().numpy(), state)

    def close(self) -> None:
        """Close the envs and leave the process group; what is left is collected now, not when
        the actor is killed (a finaliser that the kill interrupts prints a traceback)."""
        try:
            close_vector_env(self.venv, False)
        finally:
            if self.dist:
                import torch.distributed as dist
                dist.destroy_process_group()
                self.dist = False
            self.updates = self.venv = None
            gc.collect()


class AllReduce:
    """The learners' gradient reduction: the local gradient (a mean over this learner's envs)
    and its statistics, in one buffer, summed over the N learners by one all-reduce and
    divided by N: the mean over all N x B envs, the whole batch's statistics."""

    def __init__(self, keys: tuple[str, ...], world: int):
        self.keys, self.scale = tuple(keys), 1.0 / world

    def bind(self, buf: torch.Tensor, n: int) -> None:
        """buf: the gradient (its first n elements) and room for the statistics after it."""
        self.buf, self.tail = buf, buf[n:]
        self.views = {k: self.tail[i] for i, k in enumerate(self.keys)}

    def __call__(self, grad: torch.Tensor, stats: dict) -> dict:
        import torch.distributed as dist
        tail = self.tail
        for i, k in enumerate(self.keys):
            tail[i] = stats[k]
        dist.all_reduce(self.buf)
        self.buf.mul_(self.scale)
        return self.views


class LearnerFailed(Exception):
    def __init__(self, rank: int, why: str, detail: str = ""):
        super().__init__(why)
        self.rank, self.why, self.detail = rank, why, detail


class _Group:
    """The N learner actors of one life, on the placement group's bundles."""

    def __init__(self, ray, job: TrainJob, pg, world: int, device: str):
        self.ray, self.job, self.pg, self.world, self.device = ray, job, pg, world, device
        self.handles: list = []

    def start(self, life: int, step: int) -> None:
        global _REMOTE_CLASS
        ray, job = self.ray, self.job
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
        if _REMOTE_CLASS is None:
            _REMOTE_CLASS = ray.remote(max_restarts=0)(DataParallelLearner)
        gpus = 1 if self.device == "cuda" else 0
        self.handles = [
            _REMOTE_CLASS.options(num_cpus=1, num_gpus=gpus, scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=self.pg, placement_group_bundle_index=j)).remote(
                job.cfg, job.env_factory, j, self.world, life, job.params, job.optimizer, job.schedule, step,
                job.target_step, self.device)
            for j in range(self.world)]
        timeout = max(job.cfg.worker_timeout, START_TIMEOUT_S) if job.cfg.worker_timeout > 0 else None
        host, port = self.wait([self.handles[0].endpoint.remote()], timeout, "did not start")[0]
        self.wait([h.connect.remote(host, port, timeout or 1800.0) for h in self.handles], timeout,
                  "did not join the process group")

    def wait(self, refs: list, timeout: float | None, what: str) -> list:
        """The results of refs (one per learner, in rank order), or LearnerFailed for the first
        learner that raised or died, or that did not answer within `timeout` seconds."""
        ray = self.ray
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list = [None] * len(refs)
        rank_of = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        while pending:
            left = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
            ready, pending = ray.wait(pending, num_returns=1, timeout=left)
            for ref in ready:
                try:
                    out[rank_of[ref]] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, NonFiniteError):
                        raise NonFiniteError(str(cause)) from None
                    summary, text = failure(exc)
                    raise LearnerFailed(rank_of[ref], f"failed: {summary}", "\n" + text) from None
            if pending and deadline is not None and time.monotonic() >= deadline:
                raise LearnerFailed(rank_of[pending[0]], f"{what} within {timeout:g} s (hung; killed)")
        return out

    def stop(self, close: bool) -> None:
        ray, live = self.ray, self.handles
        self.handles = []
        if close and live:
            try:
                ray.wait([h.close.remote() for h in live], num_returns=len(live), timeout=JOIN_TIMEOUT_S)
            except ray.exceptions.RayError:
                pass
        for h in live:
            try:
                ray.kill(h, no_restart=True)
            except Exception:           # the cluster gone: nothing left to kill there
                pass


def _copy_in(job: TrainJob, state) -> None:
    """Learner 0's parameters and optimiser state (NumPy arrays) into the agent's tensors."""
    params, opt = state
    np.copyto(job.params.numpy(), params)
    own = job.optimizer.state_dict()
    for k, v in opt.items():
        np.copyto(own[k].numpy(), v)


def run_data_parallel(executor, ray, job: TrainJob) -> int:
    """Train a2c with data-parallel learners on the cluster `ray` is connected to; returns the
    global step reached (see the module's docstring)."""
    from ray.util.placement_group import placement_group, remove_placement_group

    cfg = job.cfg
    executor.step = job.start_step
    executor.interrupted = False
    executor.supervisor = supervisor = Supervisor(job)
    world = cfg.learners or max(1, len(cpu_nodes(ray)))
    problem = DataParallel.layout_problem(cfg.workers, world, "" if cfg.learners else
                                          f" (learners 0: one per node with CPUs, {world} here)")
    if problem:
        raise ConfigError(problem)
    resources = ray.cluster_resources()
    cpus = resources.get("CPU", 0)
    if cpus < world:
        raise ConfigError(f"learners {world}: the Ray cluster has {cpus:g} CPUs and each a2c learner takes one; "
                          f"use --learners {int(cpus)} or fewer, or add nodes")
    device = "cuda" if cfg.device != "cpu" and resources.get("GPU", 0) >= world else "cpu"
    bundle = {"CPU": 1, **({"GPU": 1} if device == "cuda" else {})}
    pg = placement_group([dict(bundle) for _ in range(world)], strategy="SPREAD")
    group = _Group(ray, job, pg, world, device)
    finished = False
    life = 0
    try:
        while True:
            try:
                if not pg.wait(max(cfg.worker_timeout, START_TIMEOUT_S) if cfg.worker_timeout > 0 else 3600):
                    raise WorkerError(f"the {world} a2c learners ({bundle} each) could not be placed on the Ray "
                                      f"cluster within {max(cfg.worker_timeout, START_TIMEOUT_S):g} s; the run stops")
                group.start(life, executor.step)
                _train(executor, job, group)
                finished = True
                break
            except LearnerFailed as f:
                group.stop(close=False)
                supervisor.failed(f.rank, f.why, executor.step, f.detail, who=f"a2c learner {f.rank}",
                                  how=f"restarting all {world} learners from the parameters at step "
                                      f"{executor.step:,}")
                life += 1
    finally:
        group.stop(close=finished)
        try:
            remove_placement_group(pg)
        except Exception:
            pass
    return executor.step


def _train(executor, job: TrainJob, group: _Group) -> None:
    log, supervisor, cfg = job.logger, executor.supervisor, job.cfg
    k = 1
    with DeferredInterrupt() as stop:
        while executor.step < job.target_step and not stop.requested:
            t0 = time.monotonic()
            timeout = cfg.worker_timeout + k * CHUNK_S if cfg.worker_timeout > 0 else None
            try:
                results = group.wait([h.run.remote(k) for h in group.handles], timeout, "finished no chunk")
            except LearnerFailed:
                if stop.requested:  # a Ctrl-C at a terminal reached the learners too: stop on the last chunk
                    break
                raise
            steps = {r[0] for r in results}
            if len(steps) != 1:
                raise WorkerError(f"the a2c learners disagree on the global step ({sorted(steps)}); the run stops")
            step, n, _, stats, state = results[0]
            _copy_in(job, state)
            executor.step = step
            now = time.time() - job.time_origin
            for worker, at, ret, length in sorted((e for r in results for e in r[2]), key=lambda e: (e[1], e[0])):
                log.episode(worker=worker, step=at, wall_time=now, ret=ret, length=length)
            log.stats(0, *stats)
            supervisor.tick(step)           # the parameters copied in are what a checkpoint saves
            if supervisor.solved() or n < k:
                break
            took = max(time.monotonic() - t0, 1e-3)
            k = max(1, min(k * CHUNK_GROWTH, int(k * CHUNK_S / took)))
        executor.interrupted = stop.requested
    log.tick(executor.step, force=True)
