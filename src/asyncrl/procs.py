"""Processes and signals: how children start, die with their parent and leave Ctrl-C to
it; how long the main process polls and waits for them; deferred interrupts; a process's
child pids. Shared by the executors and the vector envs that run envs in processes."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

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


def leave_process_group() -> None:
    """Ctrl-C and a SIGTERM to the group are for the main process to handle (it stops at the
    end of an update and closes the envs), not for an env subprocess, which would otherwise
    die mid-step (or run the parent's SIGTERM handler)."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DeferredInterrupt:
    """SIGINT/SIGTERM set a flag instead of raising mid-update; the loop stops at the end of
    the current update (parameters and optimiser statistics are never half-written)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._saved: dict = {}

    def _handler(self, signum, frame) -> None:
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
