"""The global step counter T, shared by all actor-learners, exact by construction.

A worker *reserves* up to t_max steps before a segment and *commits* the steps it used
after it (a segment may end early at an episode's end; the rest go back to the pool).
So the committed count T never passes the target, and when training ends it equals the
target exactly. Two lock acquisitions per segment; nothing per environment step.
"""
from __future__ import annotations

import time

_RESERVED, _DONE, _TARGET, _STOP = range(4)


class StepCounter:
    def __init__(self, ctx, start: int, target: int):
        self._a = ctx.RawArray("q", 4)
        self._lock = ctx.Lock()
        self._a[_RESERVED] = start
        self._a[_DONE] = start
        self._a[_TARGET] = target
        self._a[_STOP] = 0

    @property
    def done(self) -> int:
        """T: environment steps completed and counted (read without the lock)."""
        return self._a[_DONE]

    @property
    def target(self) -> int:
        return self._a[_TARGET]

    @property
    def stopped(self) -> bool:
        return bool(self._a[_STOP])

    def stop(self) -> None:
        """Ask workers to finish their current segment and exit."""
        self._a[_STOP] = 1

    def reserve(self, n: int, poll: float = 0.002) -> int:
        """Claim up to n steps. 0 means training is over (target reached or stop asked).

        If every remaining step is claimed by other workers, wait: a worker whose episode
        ends early gives steps back, and someone must take them.
        """
        a = self._a
        while True:
            with self._lock:
                if a[_STOP]:
                    return 0
                free = a[_TARGET] - a[_RESERVED]
                if free > 0:
                    k = min(n, free)
                    a[_RESERVED] += k
                    return k
                if a[_DONE] >= a[_TARGET]:
                    return 0
            time.sleep(poll)

    def commit(self, reserved: int, used: int) -> int:
        """Count `used` steps as done and return the unused rest; returns the new T."""
        a = self._a
        with self._lock:
            a[_RESERVED] -= reserved - used
            a[_DONE] += used
            return a[_DONE]


def crossed_period(T: int, used: int, period: int) -> bool:
    """True if the commit that moved the counter from T - used to T crossed a multiple of
    `period`. Commits are serialised, so across all workers this is True exactly once per
    multiple (a commit spanning several multiples counts once): the rule for copying the
    target network theta- <- theta every I_target global steps (paper, Algorithms 1-2)."""
    return T // period > (T - used) // period
