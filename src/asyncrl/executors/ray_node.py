"""A node group of the ray executor's hierarchical mode (executors.ray_hier): the hogwild
executor itself, run inside one Ray actor per node, and beside it the node agent, a thread
that exchanges the node's parameter change and steps with the global parameter store
(executors.ray_store) every sync-seconds."""
from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import torch

from ..config import Config
from ..errors import WorkerError
from ..optim import build_optimizer
from ..threads import single_threaded
from .base import TrainJob
from .counter import StepCounter
from .hogwild import HogwildExecutor

#: seconds between a node's pushes of its optimiser statistics (for the driver's checkpoints)
OPT_STATE_EVERY_S = 10.0
#: the least time between two exchanges of one node (its lease running low asks for one early)
MIN_EXCHANGE_S = 0.01


class NodeLog:
    """What a group's hogwild executor and supervisor log: kept for the next exchange, which
    carries it to the store, where the driver takes it (ranks made global by `offset`)."""

    def __init__(self, offset: int):
        self.offset = offset
        self._records: list = []
        self._lock = threading.Lock()
        self.stop_requested = False

    def _add(self, record: tuple) -> None:
        with self._lock:
            self._records.append(record)

    def take(self) -> list:
        with self._lock:
            out, self._records = self._records, []
        return out

    def episode(self, worker: int, step: int, wall_time: float, ret: float, length: int) -> None:
        self._add(("episode", worker + self.offset, step, wall_time, ret, length))

    def stats(self, worker: int, updates: int, skipped: int, norm_sum: float, sums: dict, lr: float) -> None:
        self._add(("stats", worker + self.offset, updates, skipped, norm_sum, dict(sums), lr))

    def fault(self, message: str, step: int, restart: bool = False, echo: bool = True) -> None:
        self._add(("fault", message, step, restart, echo))

    def tick(self, step: int, force: bool = False) -> None:
        pass

    def solved(self, threshold: float) -> bool:
        return False                    # the driver decides, and tells the groups through the store

    def take_checkpoint_request(self) -> bool:
        return False


def numpy_state(state: dict) -> dict:
    return {k: v.detach().cpu().numpy().copy() for k, v in state.items()}


def load_state(optimizer, state: dict | None) -> bool:
    """Load optimiser statistics given as arrays where they fit (the shapes of per-worker rows
    differ between groups of other sizes); True when loaded."""
    if not state:
        return False
    try:
        optimizer.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    except ValueError:
        return False
    return True


class _GroupHogwild(HogwildExecutor):
    """The hogwild executor of one node group: its counter is leased, and the node agent's
    exchanges start once the counter exists (after the parameters are in shared memory)."""

    def __init__(self, cfg: Config, agent: "NodeGroup"):
        super().__init__(cfg)
        self.agent = agent

    def make_counter(self, ctx, job: TrainJob) -> StepCounter:
        counter = StepCounter(ctx, 0, 0, self.cfg.workers)
        counter.open_lease(self.agent.T0)
        self.agent.start_exchanges(counter, job)
        return counter


class NodeGroup:
    """One node's hogwild group and its node agent (a Ray actor holding that node's CPUs)."""

    def __init__(self, cfg: Config, env_factory, spaces: tuple, schedule: tuple[int, int], time_origin: float,
                 store, key: tuple, offset: int):
        single_threaded()               # before torch starts a pool: the workers are forked from here
        # the store's arrays arrive read-only from Ray's object store; they are only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.cfg, self.env_factory, self.spaces = cfg, env_factory, spaces
        self.schedule, self.time_origin, self.store, self.key = schedule, time_origin, store, key
        self.log = NodeLog(offset)
        self.every_s, self.every_updates = cfg.sync_seconds, cfg.sync_updates
        self._thread = None
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> dict:
        import ray
        init = ray.get(self.store.join.remote(self.key))
        self.T0 = init["T"]
        self.target_version = init["target_version"]
        params = torch.tensor(np.asarray(init["theta"]))
        target = None if init["target"] is None else torch.tensor(np.asarray(init["target"]))
        optimizer = build_optimizer(self.cfg, params.numel())
        load_state(optimizer, init["opt_state"])
        job = TrainJob(self.cfg, self.env_factory, self.spaces[0], self.spaces[1], params, target, optimizer,
                       start_step=0, target_step=0, schedule=self.schedule, time_origin=self.time_origin,
                       logger=self.log, checkpoint=lambda step: None)
        executor = _GroupHogwild(self.cfg, self)
        executor.prepare_update(optimizer, params, self.cfg.fused_optimizer, "cpu", announce=False)
        try:
            executor.run(job)
        finally:
            self._halt.set()
            if self._thread is not None:
                self._thread.join()
        if self.error is not None:
            raise self.error
        self._exchange(final=True)
        return {"node": ray.get_runtime_context().get_node_id(), "restarts": executor.restarts,
                "exchanges": self.exchanges}

    # ------------------------------------------------------------------ the node agent
    def start_exchanges(self, counter: StepCounter, job: TrainJob) -> None:
        self.counter, self.params, self.target, self.optimizer = counter, job.params, job.target_params, \
            job.optimizer
        self.anchor = job.params.clone()            # theta at the last exchange
        self.snap, self.delta = torch.empty_like(job.params), torch.empty_like(job.params)
        self.reported = 0
        self.exchanges = 0
        self.lease_open = True
        self.seg = max(1, self.cfg.t_max) * self.cfg.workers
        self._last_opt = self._last_exchange = time.monotonic()
        self._exchange(final=False)                 # the first lease
        self._thread = threading.Thread(target=self._loop, name="asyncrl-node-agent", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            last, last_commits = time.monotonic(), self.counter.commits
            while not self._halt.wait(MIN_EXCHANGE_S):
                now, commits = time.monotonic(), self.counter.commits
                due = now - last >= self.every_s or (0 < self.every_updates <= commits - last_commits)
                low = self.lease_open and self.counter.unreserved < 2 * self.seg and not self.counter.stopped
                if due or low:
                    self._exchange(final=False)
                    last, last_commits = now, commits
        except BaseException as exc:            # the store gone, or this group dropped: stop the group
            self.error = exc
            self.counter.stop()

    def _exchange(self, final: bool) -> None:
        import ray
        counter = self.counter
        done = counter.done
        steps = done - self.reported
        self.snap.copy_(self.params)
        torch.sub(self.snap, self.anchor, out=self.delta)
        free = counter.unreserved
        now = time.monotonic()
        # enough steps for two exchange periods at the rate of the last interval (at least a
        # few segments per worker): the workers should never wait for a lease
        rate = steps / max(now - self._last_exchange, MIN_EXCHANGE_S)
        self._last_exchange = now
        want = 0 if final else int(max(rate * 2 * self.every_s, 4 * self.seg)) - free
        opt = None
        if final or now - self._last_opt >= OPT_STATE_EVERY_S:
            opt, self._last_opt = numpy_state(self.optimizer.state_dict()), now
        reply = ray.get(self.store.push.remote(self.key, self.delta.numpy(), steps, self.log.take(), max(want, 0),
                                               opt, final, self.target_version))
        if reply is None:
            raise WorkerError(f"node group {self.key[0]} was dropped by the parameter store")
        self.reported = done
        self.exchanges += 1
        theta = torch.from_numpy(np.asarray(reply["theta"]))
        self.params.add_(torch.sub(theta, self.snap, out=self.delta))   # keeps the updates made meanwhile
        self.anchor.copy_(theta)
        if reply["target"] is not None:
            self.target.copy_(torch.from_numpy(np.asarray(reply["target"])))
            self.target_version = reply["target_version"]
        counter.set_base(reply["T"] - done)
        if reply["granted"]:
            counter.extend(reply["granted"])
        if reply["stop"]:
            counter.stop()
        elif not reply["more"]:
            counter.close_lease()
            self.lease_open = False
