"""The ray executor's hierarchical mode: a hogwild group on each node, one global parameter
store, Downpour-SGD exchanges between them (Dean et al. 2012), for the asynchronous methods.

    driver (this process) -- polls the store: logs, checkpoints, stops, replaces lost groups
    ParameterStore (a Ray actor) -- the global theta, theta-, T, step leases
    NodeGroup (a Ray actor per node, one bundle of a SPREAD placement group) -- runs the
        hogwild executor itself: its actor-learners are processes forked on that node,
        parameters and optimiser statistics in that node's shared memory, lock-free, exactly
        as a one-machine run; beside them one thread, the node agent, exchanges with the store

Every sync-seconds (or sync-updates local updates, or when its steps run low), the node
agent pushes the node's parameter change since the last exchange (delta = theta_node -
theta_at_last_exchange) with the steps its workers committed, and pulls the global
parameters back: the store adds the delta to the global theta (in the order the pushes
arrive), and the node adds (global - snapshot) to its shared theta, which keeps the updates
its workers made during the round trip. Staleness is bounded by sync-seconds.

T is exact across nodes: the store hands out steps in leases; a node's counter counts its
own steps towards its lease (executors.counter: a leased counter), and reports them with
each push; T is the sum of reported steps, which reaches the target exactly. A group that
is lost (its node removed, its process killed, or past its own restart budget) is dropped
from the store: its unreported steps and parameter change are gone together and its unused
lease goes back to the pool, so T still counts exactly the steps whose updates are in the
global parameters; a replacement is started in the group's placement-group bundle (it runs
when the cluster has room there again) within max-worker-restarts, and the other groups
take up the lease meanwhile. theta- (value-based methods) is the store's, copied from the
global theta when the global T crosses a multiple of target-update, and sent to the nodes
with their next exchange; the nodes never copy it themselves.

Checkpoints (the driver's) carry the store's state: global theta, theta-, T, and the
optimiser statistics a node last sent (every OPT_STATE_EVERY_S, and at its end).
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from ..config import Config
from ..errors import ConfigError, NonFiniteError, WorkerError
from ..procs import JOIN_TIMEOUT_S, POLL_S, DeferredInterrupt
from .base import TrainJob
from .ray_cluster import cpu_nodes, remote_error
from .ray_node import NodeGroup, load_state, numpy_state
from .ray_store import ParameterStore
from .supervise import Supervisor

#: seconds a placement group, or a group actor, may take to start
START_TIMEOUT_S = 60.0
#: seeds of a replacement group: the group's seeds + GROUP_RESEED x its life
GROUP_RESEED = 100_003
#: theta- is never copied by a node's own learners (the store copies it): a period never crossed
NEVER = 1 << 62


def group_sizes(cfg: Config, nodes: int) -> list[int]:
    """Actor-learners per group: workers-per-node each, or the workers spread over the nodes."""
    if cfg.workers_per_node > 0:
        return [cfg.workers_per_node] * (cfg.workers // cfg.workers_per_node)
    groups = max(1, min(nodes, cfg.workers))
    base, extra = divmod(cfg.workers, groups)
    return [base + (g < extra) for g in range(groups)]


def workers_per_node_problem(cfg: Config) -> str | None:
    if cfg.workers_per_node > 0 and cfg.workers % cfg.workers_per_node:
        return (f"workers {cfg.workers} is not a multiple of workers-per-node {cfg.workers_per_node}: each node "
                f"group runs workers-per-node actor-learners; give a multiple, or workers-per-node 0")
    return None


class _Group:
    def __init__(self, index: int, size: int, offset: int):
        self.index, self.size, self.offset = index, size, offset
        self.life = 0
        self.handle = self.ref = None
        self.state = "running"          # running (joined or not yet), done, lost


def _remote_classes(ray):
    global _STORE, _GROUP
    if _STORE is None:
        _STORE = ray.remote(num_cpus=0, max_restarts=0)(ParameterStore)
        _GROUP = ray.remote(max_restarts=0)(NodeGroup)
    return _STORE, _GROUP


_STORE = _GROUP = None


def run_hierarchical(executor, ray, job: TrainJob) -> int:
    """Train job with a hogwild group per node and a global parameter store (the module's
    docstring); returns T. The executor's step, interrupted and supervisor are set as every
    executor's are."""
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

    cfg = job.cfg
    problem = workers_per_node_problem(cfg)
    if problem:
        raise ConfigError(problem)
    sizes = group_sizes(cfg, len(cpu_nodes(ray)))
    cpus = ray.cluster_resources().get("CPU", 0)
    if sum(sizes) > cpus:
        raise ConfigError(f"workers {cfg.workers}: the Ray cluster has {cpus:g} CPUs and each actor-learner "
                          f"takes one; use --workers {int(cpus)} or fewer, or add nodes")
    Store, Group = _remote_classes(ray)
    executor.supervisor = supervisor = Supervisor(job)
    executor.step = job.start_step
    executor.group_results = {}         # (group, life) -> what its run() returned: node id, restarts, exchanges
    opt_state = numpy_state(job.optimizer.state_dict())
    # the store lives on the driver's node (a lost worker node must not take it along; the
    # driver's own node lost ends the run anyway); a soft affinity was seen placed elsewhere
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    store = Store.options(scheduling_strategy=here).remote(job.params.numpy(), None if job.target_params is None else job.target_params.numpy(),
                         job.start_step, job.target_step, cfg.target_update if job.target_params is not None else 0,
                         opt_state, len(sizes), START_TIMEOUT_S)
    started = time.monotonic()
    pg = placement_group([{"CPU": s} for s in sizes], strategy="SPREAD")
    groups = [_Group(g, s, sum(sizes[:g])) for g, s in enumerate(sizes)]
    try:
        ready, _ = ray.wait([pg.ready()], timeout=START_TIMEOUT_S)
        if not ready:
            raise WorkerError(f"the Ray cluster found no room for {len(sizes)} node groups of {sizes} CPUs within "
                              f"{START_TIMEOUT_S:g} s (placement group, SPREAD)")

        def spawn(grp: _Group) -> None:
            seed = (cfg.seed + grp.offset + GROUP_RESEED * grp.life) % (1 << 31)
            gcfg = cfg.replace(workers=grp.size, seed=seed, executor="hogwild",
                               target_update=NEVER if job.target_params is not None else cfg.target_update)
            strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=grp.index)
            grp.handle = Group.options(num_cpus=grp.size, scheduling_strategy=strategy).remote(
                gcfg, job.env_factory, (job.observation_space, job.action_space), job.schedule, job.time_origin,
                store, (grp.index, grp.life), grp.offset)
            grp.ref = grp.handle.run.remote()
            grp.state = "running"

        for grp in groups:
            spawn(grp)
        _drive(ray, job, executor, supervisor, store, groups, spawn)
    finally:
        for grp in groups:
            if grp.handle is not None:
                try:
                    ray.kill(grp.handle, no_restart=True)
                except Exception:
                    pass
        try:
            _pull(ray, store, job)
            c = ray.get(store.counters.remote())
            executor.traffic = {"mode": "hierarchical", "bytes_out": c["bytes_out"], "bytes_in": c["bytes_in"],
                                "updates": c["pushes"], "server_busy_s": c["busy_s"],
                                "steps": c["T"] - job.start_step, "seconds": time.monotonic() - started}
            ray.kill(store, no_restart=True)
        except Exception:
            pass
        try:
            remove_placement_group(pg)
        except Exception:
            pass
    return executor.step


def _pull(ray, store, job: TrainJob) -> int:
    """The store's state into the job's parameters, theta- and (where it fits) optimiser; its T."""
    state = ray.get(store.state.remote())
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    job.params.copy_(torch.from_numpy(np.asarray(state["theta"])))
    if job.target_params is not None and state["target"] is not None:
        job.target_params.copy_(torch.from_numpy(np.asarray(state["target"])))
    load_state(job.optimizer, state["opt_state"])
    return state["T"]


def _forward(log, records: list) -> None:
    for r in records:
        if r[0] == "episode":
            log.episode(worker=r[1], step=r[2], wall_time=r[3], ret=r[4], length=r[5])
        elif r[0] == "stats":
            log.stats(r[1], *r[2:])
        else:
            _, message, step, restart, echo = r
            log.fault(message, step, restart=restart, echo=echo)


def _failure(ray, exc: BaseException) -> str:
    if isinstance(exc, ray.exceptions.RayTaskError):
        summary, _ = remote_error(exc)
        if "NonFiniteError" in summary:
            raise NonFiniteError(summary.partition(": ")[2] or summary)
        return f"failed: {summary}"
    return "was lost (its node or process died)"


def _collect_results(ray, executor, groups: list) -> None:
    """What finished groups' run() returned, waiting for them at most JOIN_TIMEOUT_S (the run
    is over: a group lost now costs nothing)."""
    refs = [g.ref for g in groups]
    done = ray.wait(refs, num_returns=len(refs), timeout=JOIN_TIMEOUT_S)[0] if refs else []
    for g in groups:
        if g.ref in done:
            try:
                executor.group_results[(g.index, g.life)] = ray.get(g.ref)
                g.state = "done"
            except ray.exceptions.RayError:
                pass


def _drive(ray, job: TrainJob, executor, supervisor: Supervisor, store, groups: list, spawn) -> None:
    log, cfg = job.logger, job.cfg
    stopping = False
    last_pull = time.monotonic()
    alone_since = None              # when no group was left running with a lease to work on
    worked: set = set()             # (group, life) of every group that has joined the store
    with DeferredInterrupt() as interrupt:
        while True:
            info = ray.get(store.poll.remote())
            _forward(log, info["records"])
            executor.step = T = info["T"]
            if not stopping and (interrupt.requested or supervisor.solved()):
                stopping = True
                store.stop.remote()
            supervisor.tick(T, before_checkpoint=lambda: _pull(ray, store, job))
            if time.monotonic() - last_pull >= max(1.0, cfg.sync_seconds):   # what evaluations read
                _pull(ray, store, job)
                last_pull = time.monotonic()
            running = [g for g in groups if g.state == "running"]
            worked |= {tuple(k) for k in info["joined"]}
            joined = {k[0] for k in info["joined"]}
            if info["finished"] and not any(g.index in joined for g in running):
                # the pending replacements are not needed; the groups that worked and have
                # left the store return their results just after: wait for those
                _collect_results(ray, executor, [g for g in running if (g.index, g.life) in worked])
                break
            if not running:
                break
            done, _ = ray.wait([g.ref for g in running], num_returns=len(running), timeout=POLL_S)
            for g in running:
                if g.ref not in done:
                    continue
                try:
                    executor.group_results[(g.index, g.life)] = ray.get(g.ref)
                    g.state = "done"
                except ray.exceptions.RayError as exc:
                    why = _failure(ray, exc)
                    ray.get(store.drop.remote((g.index, g.life)))
                    g.state = "lost"
                    try:
                        ray.kill(g.handle, no_restart=True)
                    except Exception:
                        pass
                    if not stopping and not info["finished"]:
                        supervisor.failed(g.index, why, T, who=f"node group {g.index}",
                                          how="starting it again where the cluster has room (the other groups "
                                              "go on meanwhile)")
                        g.life += 1
                        spawn(g)
            working = [g for g in groups if g.state == "running" and g.index in joined]
            if working or info["finished"]:
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > START_TIMEOUT_S:
                raise WorkerError(f"no node group has been running for {START_TIMEOUT_S:g} s at step {T:,}: "
                                  f"the cluster has no room left for a replacement")
        executor.interrupted = interrupt.requested
    # the last records, then the final state
    info = ray.get(store.poll.remote())
    _forward(log, info["records"])
    executor.step = _pull(ray, store, job)
    log.tick(executor.step, force=True)


__all__ = ["ParameterStore", "NodeGroup", "run_hierarchical", "group_sizes", "workers_per_node_problem"]
