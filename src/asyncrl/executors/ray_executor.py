"""The ray executor: actor-learners as Ray actors, on this machine or across a Ray cluster.

Each actor is a hogwild worker's actor-learner (executors.actor.ActorLearner: the same
seeds, env, collector, policy and gradient code) without shared memory: it receives theta
(and theta- when it changed) with each segment, acts for up to t_max steps, and returns
the clipped gradient of its segment's loss. This process is the parameter server: it
applies each gradient as it arrives with the same Learner.apply and optimiser a hogwild
worker uses (shared RMSProp statistics live here, once), then sends that actor its next
segment on the new parameters. Updates are therefore asynchronous, as in the paper, and
serialised in one place: T is exact, a checkpoint is a consistent snapshot, and with one
worker a run is bit-for-bit the hogwild run with one worker.

The cost is the traffic: theta out and a gradient back per segment (2.7 MB each way for
the paper's Atari CNN), which Ray's object store carries; on one machine hogwild is
faster (docs/executors.md). Faults: an actor that dies (its process killed, its node lost), raises,
or finishes no segment within worker-timeout is killed and replaced on the current
parameters, its reserved steps given back, up to max-worker-restarts times per run.
"""
from __future__ import annotations

import importlib.util
import os
import time
import warnings

import numpy as np
import torch

from ..config import Config
from ..errors import WorkerError
from ..learner import Learner, make_learner
from ..procs import JOIN_TIMEOUT_S, POLL_S, DeferredInterrupt
from ..threads import single_threaded
from .actor import ActorLearner
from .base import ActorExecutor, TrainJob
from .ray_cluster import check_capacity, connect, cpu_nodes, import_ray, ray_address_problem, remote_error
from .supervise import Supervisor

#: seconds an actor may take to start (import torch, build its env and model) when
#: worker-timeout is shorter; a segment's own time is bounded by worker-timeout
START_TIMEOUT_S = 60.0
#: RayActorLearner as a Ray actor class (made once per process, on first use)
_REMOTE_CLASS = None


class RayActorLearner:
    """One actor-learner, living in a Ray actor process (see the module's docstring)."""

    def __init__(self, cfg: Config, env_factory, rank: int, life: int, n_params: int, has_target: bool,
                 schedule: tuple[int, int]):
        single_threaded()
        # theta arrives as a read-only array from Ray's object store; it is only copied from
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        target = torch.zeros(n_params) if has_target else None
        self.actor = ActorLearner.build(cfg, env_factory, rank, life, None, target, None, schedule)
        self.learner = self.actor.learner
        if self.learner.local.numel() != n_params:
            raise ValueError(f"the actor's model has {self.learner.local.numel():,} parameters, the "
                             f"driver's {n_params:,}: the environment differs between the two")
        self.stat_keys = self.learner.algo.stat_keys

    def ready(self) -> int:
        return os.getpid()

    def segment(self, theta: np.ndarray, target: np.ndarray | None, n: int, step: int):
        """Act for up to n steps on theta (theta- <- target when given) at global step `step`;
        returns (gradient, steps used, environment steps, loss statistics, pre-clip norm,
        (return, length) of the episode that ended or None)."""
        learner, actor = self.learner, self.actor
        learner.local.copy_(torch.from_numpy(theta))            # theta' <- theta
        if target is not None:
            learner.target_params.copy_(torch.from_numpy(target))
        actor.policy.at_step(step)
        ro, finished = actor.collector.collect(actor.policy, n)
        stats, norm = learner.gradients(ro)
        stats = {k: float(stats[k]) for k in self.stat_keys}
        return learner.grad.numpy(), ro.length, ro.num_steps, stats, norm, finished

    def close(self) -> None:
        self.actor.env.close()


class _Slot:
    """One rank's current Ray actor and its segment in flight."""

    def __init__(self, rank: int):
        self.rank, self.life = rank, 0  # life: 0 for the first actor, then each replacement's number
        self.handle = None
        self.ref = None                 # the ObjectRef of its segment in flight
        self.n = 0                      # steps reserved for it
        self.since = 0.0                # time.monotonic() when it was sent
        self.target_version = -1        # theta-'s version this actor holds
        self.hung = False


class RayExecutor(ActorExecutor):
    name = "ray"
    takes_a2c = True

    @classmethod
    def option_problems(cls, cfg: Config) -> list[str]:
        p = super().option_problems(cfg)
        if cfg.ray_address:
            if cfg.executor != "ray":
                p.append(f"ray-address {cfg.ray_address!r} needs --executor ray")
            problem = ray_address_problem(cfg.ray_address, probe=False)
            if problem:
                p.append(problem)
        if cfg.executor == "ray" and cfg.algo != "a2c":
            from .ray_hier import workers_per_node_problem
            problem = workers_per_node_problem(cfg)
            if problem:
                p.append(problem)
        if cfg.executor == "ray" and importlib.util.find_spec("ray") is None:
            p.append("executor 'ray' needs the ray package, which is not installed: pip install "
                     "'asyncrl[ray]' (Ray 2.10 or later)")
        from .ray_a2c import DataParallel     # a2c's data-parallel learners: workers / learners envs each
        return p + DataParallel.option_problems(cfg)

    @classmethod
    def probe_problems(cls, cfg: Config) -> list[str]:
        """Nothing listening at ray-address is a bad input, said at once (Ray itself would
        retry for minutes)."""
        if cfg.executor != "ray" or not cfg.ray_address:
            return []
        problem = ray_address_problem(cfg.ray_address, probe=True)
        return [problem] if problem else []

    def resolve(self, factory) -> dict:
        return {"executor": "ray", "device": "cpu"}

    def describe(self) -> str:
        where = self.cfg.ray_address or "local Ray"
        if self.cfg.algo == "a2c":
            learners = self.cfg.learners or "one per node"
            return f"{self.cfg.workers} environments over data-parallel ray learners ({learners}; {where})"
        mode = "" if self.cfg.ray_mode == "auto" else f", {self.cfg.ray_mode}"
        return f"{self.cfg.workers} ray actor-learners ({where}{mode})"

    # ------------------------------------------------------------------ set-up
    def _spawn(self, ray, job: TrainJob, s: _Slot) -> None:
        """Start slot s's actor (its life-th), and wait until it has built its env and model."""
        global _REMOTE_CLASS
        if _REMOTE_CLASS is None:
            _REMOTE_CLASS = ray.remote(num_cpus=1, max_restarts=0)(RayActorLearner)
        s.handle = _REMOTE_CLASS.remote(job.cfg, job.env_factory, s.rank, s.life, job.params.numel(),
                                        job.target_params is not None, job.schedule)
        s.ref, s.hung, s.target_version = None, False, -1

    def _start_deadline(self) -> float | None:
        """When actors started now must have been constructed: worker-timeout, but at least
        START_TIMEOUT_S (a Ray actor's start imports torch and builds its env: seconds)."""
        timeout = self.cfg.worker_timeout
        return time.monotonic() + max(timeout, START_TIMEOUT_S) if timeout > 0 else None

    def _started(self, ray, s: _Slot, deadline: float | None) -> str | None:
        """None once slot s's actor has been constructed; else why it could not start."""
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            ray.get(s.handle.ready.remote(), timeout=left)
        except ray.exceptions.GetTimeoutError:
            ray.kill(s.handle, no_restart=True)
            return (f"did not start within {max(self.cfg.worker_timeout, START_TIMEOUT_S):g} s: the "
                    f"Ray cluster may have no free CPU for it")
        except ray.exceptions.RayError as exc:
            summary, text = remote_error(exc)
            return f"could not start as a ray actor: {summary}\n{text}"
        return None

    def _start_all(self, ray, job: TrainJob, slots: list[_Slot]) -> None:
        """Every actor constructed, or a WorkerError naming the first that could not start
        and why, before any segment is sent."""
        for s in slots:
            self._spawn(ray, job, s)
        deadline = self._start_deadline()
        for s in slots:
            why = self._started(ray, s, deadline)
            if why:
                raise WorkerError(f"worker {s.rank} {why}")

    # ------------------------------------------------------------------ training
    def run(self, job: TrainJob) -> int:
        """Train in the mode the config and the cluster call for: a2c's data-parallel learners
        (executors.ray_a2c), the hierarchical mode (executors.ray_hier) or the flat one (here)."""
        ray = import_ray()
        started = connect(ray, self.cfg)
        try:
            if job.cfg.algo == "a2c":
                from .ray_a2c import run_data_parallel
                return run_data_parallel(self, ray, job)
            if self.mode(ray) == "hierarchical":
                from .ray_hier import run_hierarchical
                return run_hierarchical(self, ray, job)
            return self._run_flat(ray, job)
        finally:
            if started:
                ray.shutdown()

    def mode(self, ray) -> str:
        """ray-mode made concrete: auto is hierarchical on a cluster of more than one node
        with CPUs."""
        if self.cfg.ray_mode != "auto":
            return self.cfg.ray_mode
        return "hierarchical" if len(cpu_nodes(ray)) > 1 else "flat"

    def _run_flat(self, ray, job: TrainJob) -> int:
        slots = [_Slot(rank) for rank in range(job.cfg.workers)]
        finished = False
        try:
            check_capacity(ray, job.cfg.workers)
            self.supervisor = Supervisor(job)
            self.step = job.start_step
            self._start_all(ray, job, slots)
            appliers = [make_learner(job.cfg, job.observation_space, job.action_space, job.params,
                                     job.target_params, job.optimizer, job.schedule, rank, local_copy=False)
                        for rank in range(job.cfg.workers)]
            self._train(ray, job, slots, appliers)
            finished = True
        finally:
            self._stop_actors(ray, slots, close=finished)
        return self.step

    def _stop_actors(self, ray, slots: list[_Slot], close: bool) -> None:
        """Close the actors' envs (after a run that ended normally, briefly) and kill them."""
        live = [s for s in slots if s.handle is not None]
        if close and live:
            try:
                ray.wait([s.handle.close.remote() for s in live], num_returns=len(live),
                         timeout=JOIN_TIMEOUT_S)
            except ray.exceptions.RayError:
                pass
        for s in live:
            try:
                ray.kill(s.handle, no_restart=True)
            except Exception:           # the cluster gone: nothing left to kill there
                pass

    def _train(self, ray, job: TrainJob, slots: list[_Slot], appliers: list[Learner]) -> None:
        log = job.logger
        seg = appliers[0].algo.segment_length
        self.reserved = job.start_step          # steps handed out (committed + in flight)
        self.traffic = {"mode": "flat", "bytes_out": 0, "bytes_in": 0, "updates": 0, "server_busy_s": 0.0,
                        "steps": 0, "seconds": 0.0}
        started = time.monotonic()
        stopping = False
        supervisor = self.supervisor
        with DeferredInterrupt() as interrupt:
            while True:
                if interrupt.requested or (not stopping and supervisor.solved()):
                    stopping = True             # the segments in flight are applied, no new ones sent
                if not stopping:
                    for s in slots:
                        if s.ref is None:
                            self._send(job, s, seg)
                flying = {s.ref: s for s in slots if s.ref is not None}
                if not flying:
                    break
                if interrupt.requested:
                    self._finish_in_flight(ray, job, slots, appliers)
                    break
                for s, result in self._next_results(ray, flying):
                    if not isinstance(result, BaseException):
                        self._apply(job, s, appliers[s.rank], result)
                        if not s.hung:          # (killed as hung just as its result came back)
                            continue
                    if not stopping:
                        self._replace(ray, job, s, result, appliers[s.rank])
                supervisor.tick(self.step)
                self._kill_hung(ray, slots)
            self.interrupted = interrupt.requested
        self.traffic.update(steps=self.step - job.start_step, seconds=time.monotonic() - started)
        log.tick(self.step, force=True)

    def _send(self, job: TrainJob, s: _Slot, seg: int) -> None:
        """Reserve up to t_max steps for slot s and send it a segment on the current theta."""
        n = min(seg, job.target_step - self.reserved)
        if n <= 0:
            return
        self.reserved += n
        target = None
        if job.target_params is not None and job.target_params._version != s.target_version:
            target = job.target_params.numpy()
            s.target_version = job.target_params._version
        s.ref = s.handle.segment.remote(job.params.numpy(), target, n, self.step)
        self.traffic["bytes_out"] += job.params.numel() * 4 + (0 if target is None else target.nbytes)
        s.n, s.since = n, time.monotonic()

    def _next_results(self, ray, flying: dict) -> list:
        """(slot, result or exception) of the segment in flight (`flying`: ObjectRef -> slot)
        that finishes first, waiting at most POLL_S; empty when none did."""
        ready, _ = ray.wait(list(flying), num_returns=1, timeout=POLL_S)
        return [(flying[ref], self._take(ray, flying[ref])) for ref in ready]

    def _take(self, ray, s: _Slot):
        """Slot s's finished segment: its result, or the exception that says it failed (its
        reserved steps then go back)."""
        ref, s.ref = s.ref, None
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:      # the actor died, raised, ran out of memory...
            self.reserved -= s.n
            return exc

    def _apply(self, job: TrainJob, s: _Slot, applier: Learner, result) -> None:
        """Apply slot s's gradient as its own hogwild worker would, and log what it reports."""
        t0 = time.perf_counter()
        grad, length, num_steps, stats, norm, finished = result
        step = self.step + length
        np.copyto(applier.grad.numpy(), grad)   # grad: a read-only view of Ray's object store
        applier.apply(stats, norm, step, num_steps)
        self.reserved -= s.n - length           # steps the segment did not use go back
        self.step = step
        log = job.logger
        if finished is not None:
            log.episode(worker=s.rank, step=step, wall_time=time.time() - job.time_origin,
                        ret=finished[0], length=finished[1])
        log.stats(s.rank, *applier.take_stats())
        traffic = self.traffic
        traffic["bytes_in"] += grad.nbytes
        traffic["updates"] += 1
        traffic["server_busy_s"] += time.perf_counter() - t0

    def _replace(self, ray, job: TrainJob, s: _Slot, exc: BaseException | None, applier: Learner) -> None:
        """Slot s's actor failed (exc) or hung: kill it and start a replacement on the current
        parameters, within max-worker-restarts (a replacement that cannot start is another
        failure); past that, WorkerError stops the run."""
        detail = ""
        if s.hung:
            why = self.supervisor.hung
        elif isinstance(exc, ray.exceptions.RayTaskError):
            summary, text = remote_error(exc)
            why, detail = f"failed: {summary}", f"\n{text}"
        elif isinstance(exc, ray.exceptions.OutOfMemoryError):
            why = "was killed by Ray's memory monitor (out of memory)"
        else:
            why = "died (its process or node was lost)"
        while True:
            try:
                ray.kill(s.handle, no_restart=True)
            except Exception:
                pass
            self.supervisor.failed(s.rank, why, self.step, detail)
            s.life += 1
            self._spawn(ray, job, s)
            why = self._started(ray, s, self._start_deadline())
            if why is None:
                applier.nonfinite_streak = 0        # a new worker, as under hogwild
                return
            why, _, detail = why.partition("\n")
            detail = f"\n{detail}" if detail else ""

    def _kill_hung(self, ray, slots: list[_Slot]) -> None:
        """Kill the actors whose segment has been in flight for over worker-timeout seconds
        and has not finished. One whose result is ready is not hung: the driver was busy
        (starting a replacement takes seconds) and takes it at the next poll."""
        timeout = self.cfg.worker_timeout
        if timeout <= 0:
            return
        now = time.monotonic()
        late = [s for s in slots if s.ref is not None and not s.hung and now - s.since > timeout]
        if not late:
            return
        ready, _ = ray.wait([s.ref for s in late], num_returns=len(late), timeout=0)
        done = set(ready)
        for s in late:
            if s.ref not in done:
                s.hung = True               # its ref now fails with RayActorError: replaced there
                ray.kill(s.handle, no_restart=True)

    def _finish_in_flight(self, ray, job: TrainJob, slots: list[_Slot], appliers: list[Learner]) -> None:
        """After Ctrl-C/SIGTERM: apply the segments still in flight that finish within
        JOIN_TIMEOUT_S; the others are dropped (their steps were never counted)."""
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while time.monotonic() < deadline:
            flying = {s.ref: s for s in slots if s.ref is not None}
            if not flying:
                return
            for s, result in self._next_results(ray, flying):
                if not isinstance(result, BaseException):
                    self._apply(job, s, appliers[s.rank], result)
        for s in slots:
            if s.ref is not None:
                self.reserved -= s.n
                s.ref = None
