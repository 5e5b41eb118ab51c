"""What this process may use of the machine."""
from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a batch scheduler's
    allocation, a container's cpuset), not the machine's count, which os.cpu_count() gives."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):      # no affinity API here (macOS, Windows)
        return os.cpu_count() or 1


def lower_native_threads(nice: int = 19) -> int:
    """Lower the scheduling priority (raise the nice value to `nice`) of this process's
    threads that Python did not start: the OpenMP, MKL and OpenBLAS pools of torch and
    NumPy. Returns how many were lowered (0 where the platform has no per-thread
    priorities). It cannot be undone without privileges.

    Why: after each parallel region an OpenMP pool thread spins for some milliseconds
    before it sleeps. Beside environment worker processes that want that core (--vec-env
    split) the spinning took a share of it from them: a lowered thread yields it to them,
    and still gets a free core for the learner's own parallel work."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    import threading

    python = {t.native_id for t in threading.enumerate()}
    lowered = 0
    for tid in map(int, tasks):
        if tid in python or tid == threading.get_native_id():
            continue
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            lowered += 1
        except OSError:                 # the thread ended meanwhile, or not allowed
            pass
    return lowered
