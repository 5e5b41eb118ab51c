"""Processes and signals: how children start, die with their parent and leave Ctrl-C to
it; how long the main process polls and waits for them; deferred interrupts; a process's
child pids. Shared by the executors and the vector envs that run envs in processes."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: how long the main process waits for a child to exit before it kills it
JOIN_TIMEOUT_S = 10.0
#: how often the main process looks at its workers and their queues
POLL_S = 0.05
#: exit code of a worker process that failed (its traceback is sent to the main process)
EXIT_FAILED = 1


def resolve_start_method(name: str) -> str:
    """The multiprocessing start method of a `start_method` option ('auto': fork on Linux)."""
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


class single_threaded_children:
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


def die_with(supervisor: int) -> None:
    """On Linux, have the kernel SIGKILL this process when the main process dies, even by
    SIGKILL (no orphan trains on, or blocks on a queue nobody reads). Only for a direct
    child (not under forkserver); if the main process is already gone, exit."""
    if not sys.platform.startswith("linux") or os.getppid() != supervisor:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)    # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:      # it died before the prctl
        os._exit(EXIT_FAILED)


#: how often a group's watcher looks whether its leader is still alive
WATCH_S = 0.2


def lead_own_group(supervisor: int) -> None:
    """For a child that builds envs (a hogwild worker, the evaluator, an env subprocess).

    It leads its own process group: Ctrl-C and a SIGTERM to the terminal's or a job
    manager's group (`timeout`, a scheduler) reach the main process only, which stops at the
    end of an update and closes the envs, instead of killing the child mid-step. What its
    envs start (ViZDoom's engine: it ignores SIGTERM and outlives its parent) is in that
    group, and a watcher process in the group SIGKILLs the group once the child has died,
    however it died (a failure's exit, a kill by the main process or the OOM killer, the
    kernel's SIGKILL when the main process dies). The child itself dies with the main process."""
    if not hasattr(os, "setpgid"):
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # not a forked main process's handler
    try:
        os.setpgid(0, 0)
    except OSError:                     # already a session or group leader: keep it
        pass
    die_with(supervisor)
    leader = os.getpid()                # taken before the fork: the watcher's getppid() may be 1 already
    if os.getpgrp() == leader and os.fork() == 0:
        _watch_group(leader)


def _watch_group(leader: int) -> None:
    """The watcher: holds no file (a pipe it held open would hide the leader's death from
    the main process), waits for the leader to die, then SIGKILLs what is left of the group
    (itself included). Its membership keeps the group's id from being reused meanwhile."""
    try:
        os.closerange(0, 65536)
        while os.getppid() == leader:
            time.sleep(WATCH_S)
        os.killpg(leader, signal.SIGKILL)
    finally:
        os._exit(0)


def kill_group(proc) -> None:
    """SIGKILL a living child that called lead_own_group, and its group (what its envs
    started). Only while the child has not been reaped (its pid, and so its group's id, is
    still its own); a child that has not yet made its group is killed alone."""
    if proc.pid is None or proc.exitcode is not None:
        return
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
            return
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()


#: a signal this soon after an interrupt is the same request: `timeout` and job schedulers
#: signal the main process and then its whole process group, so it gets two at once
REPEAT_S = 1.0
_last_interrupt = [float("-inf")]


def repeated_interrupt() -> bool:
    """Note an interrupt now; True if it repeats one of under REPEAT_S ago (to be ignored:
    only a second request a person makes means 'stop right now')."""
    now = time.monotonic()
    if now - _last_interrupt[0] < REPEAT_S:
        return True
    _last_interrupt[0] = now
    return False


class DeferredInterrupt:
    """SIGINT/SIGTERM set a flag instead of raising mid-update; the loop stops at the end of
    the current update (parameters and optimiser statistics are never half-written)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._saved: dict = {}

    def _handler(self, signum, frame) -> None:
        if repeated_interrupt():        # the same request, sent to the group as well
            return
        if self.requested:              # a second Ctrl-C: stop right now
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._saved[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._saved.items():
            signal.signal(s, h)
