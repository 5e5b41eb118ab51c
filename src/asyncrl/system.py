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
