"""The global parameter store of the ray executor's hierarchical mode (executors.ray_hier):
the global theta, theta-, T and the step leases of the node groups, in one Ray actor whose
calls run one at a time, so each exchange is applied atomically and T is exact."""
from __future__ import annotations

import math
import time

import numpy as np


class ParameterStore:
    """The global parameters, theta-, T and the step leases (a Ray actor; its calls run one at a
    time, so each push is applied atomically and T is exact)."""

    def __init__(self, theta: np.ndarray, target: np.ndarray | None, T: int, target_step: int, period: int,
                 opt_state: dict | None, groups: int = 1, start_grace_s: float = 0.0):
        self.theta = np.array(theta, dtype=np.float32)
        self.target = None if target is None else np.array(target, dtype=np.float32)
        self.target_version = 0
        self.T, self.granted, self.target_step, self.period = T, T, target_step, period
        self.leases: dict[tuple, int] = {}        # (group, life) -> steps granted, not yet reported
        self.stopping = False
        self.records: list = []
        self.opt_state = opt_state
        self.pushes = 0
        self.bytes_in = self.bytes_out = 0
        self.busy_s = 0.0
        # the start barrier: no steps are granted until every one of the run's first `groups`
        # has joined (or start_grace_s has passed), so a node slower to start (importing torch,
        # making its environments) does not find the run done by the others
        self.waiting_for = groups
        self.start_by = time.monotonic() + start_grace_s

    def join(self, key: tuple) -> dict:
        self.leases[key] = 0
        if key[1] == 0:
            self.waiting_for -= 1
        return {"theta": self.theta, "target": self.target, "target_version": self.target_version, "T": self.T,
                "opt_state": self.opt_state}

    def push(self, key: tuple, delta: np.ndarray, steps: int, records: list, want: int, opt_state: dict | None,
             final: bool, target_version: int) -> dict | None:
        """A node's exchange: its parameter change and the steps it committed since its last
        one; returns the global parameters (and theta- when newer than the node's), T, the
        steps granted now, and whether to stop or whether more steps may still come. None:
        the group was dropped (its exchange comes too late)."""
        if key not in self.leases:
            return None
        t0 = time.perf_counter()
        self.theta += delta
        before, self.T = self.T, self.T + steps
        self.leases[key] -= steps
        if self.target is not None and self.period and self.T // self.period > before // self.period:
            np.copyto(self.target, self.theta)            # theta- <- theta at global T (Alg. 1, 2)
            self.target_version += 1
        self.records.extend(records)
        if opt_state is not None:
            self.opt_state = opt_state
        granted = 0
        if self.waiting_for > 0 and time.monotonic() >= self.start_by:
            self.waiting_for = 0
        if want > 0 and not self.stopping and not final and self.waiting_for <= 0:
            # no group holds more than an equal share of the steps left: near the end a lease
            # a slow group sits on does not keep the others waiting
            remaining = self.target_step - self.granted
            fair = math.ceil((self.target_step - self.T) / max(len(self.leases), 1)) - self.leases[key]
            granted = max(min(want, remaining, fair), 0)
            self.granted += granted
            self.leases[key] += granted
        if final:
            self.granted -= self.leases.pop(key)          # a stopped group's unused steps go back
        more = self.target_step > self.granted or any(v > 0 for k, v in self.leases.items() if k != key)
        newer = self.target is not None and target_version != self.target_version
        self.pushes += 1
        self.bytes_in += delta.nbytes
        self.bytes_out += self.theta.nbytes + (self.target.nbytes if newer else 0)
        self.busy_s += time.perf_counter() - t0
        return {"theta": self.theta, "target": self.target if newer else None, "target_version": self.target_version,
                "T": self.T, "granted": granted, "stop": self.stopping, "more": more}

    def drop(self, key: tuple) -> int:
        """Group `key` is lost: its unused and unreported steps go back to the pool."""
        if key not in self.leases and key[1] == 0:
            self.waiting_for -= 1                 # lost before it joined: the others need not wait
        lost = self.leases.pop(key, 0)
        self.granted -= lost
        return lost

    def poll(self) -> dict:
        records, self.records = self.records, []
        return {"T": self.T, "records": records, "joined": list(self.leases), "finished": self.finished()}

    def finished(self) -> bool:
        return self.T >= self.target_step or (self.stopping and not any(self.leases.values()))

    def stop(self) -> None:
        self.stopping = True

    def state(self) -> dict:
        return {"theta": self.theta, "target": self.target, "T": self.T, "opt_state": self.opt_state}

    def counters(self) -> dict:
        return {"pushes": self.pushes, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "busy_s": self.busy_s, "T": self.T}
