"""The global step counter T, shared by all actor-learners, exact by construction.

A worker *reserves* up to t_max steps before a segment and *commits* the steps it used
after it (a segment may end early at an episode's end; the rest go back to the pool).
So the committed count T never passes the target, and when training ends it equals the
target exactly. Two lock acquisitions per segment; nothing per environment step.

Each worker's outstanding reservation is also kept in its own slot, so that when a worker
dies mid-segment (an exception, SIGKILL) the supervisor can give its reserved but
uncommitted steps back to the pool (`release`): the survivors and the worker's replacement
then still end exactly on the target, neither early nor late. The lock holder writes its
rank into the array while it holds the lock, so a worker killed inside the lock does not
block the others forever: `release` takes the lock over from it. Each reserve also
stamps the worker's heartbeat (milliseconds of time.monotonic()), which the supervisor
reads to find a worker that hangs.

Leased (the ray executor's hierarchical mode, executors.ray_hier): a node's counter
counts that node's own steps towards a target that its node agent extends as the global
parameter store grants it more steps (`extend`); while it is `open`, a worker that finds
every step of the lease taken waits for more instead of ending. `base` is added to the
step a commit returns, so that the workers see the global step (the store's T at the last
exchange plus the node's steps since); in a plain hogwild run base is 0.
"""
from __future__ import annotations

import time

from ..errors import WorkerError

_RESERVED, _DONE, _TARGET, _STOP, _OWNER, _BASE, _OPEN, _COMMITS = range(8)
_HEADER = 8          # then per rank r: outstanding reservation at _HEADER + 2r, heartbeat at +1

#: how long `release` waits for the lock before concluding that the dead worker holds it
LOCK_TAKEOVER_S = 5.0


def now_ms() -> int:
    """time.monotonic() in milliseconds (CLOCK_MONOTONIC: the same clock in every process)."""
    return int(time.monotonic() * 1000)


class StepCounter:
    def __init__(self, ctx, start: int, target: int, workers: int = 1):
        self.workers = workers
        self._a = ctx.RawArray("q", _HEADER + 2 * workers)
        self._lock = ctx.Lock()
        self._a[_RESERVED] = start
        self._a[_DONE] = start
        self._a[_TARGET] = target
        self._a[_STOP] = 0
        self._a[_OWNER] = 0
        self._a[_BASE] = 0
        self._a[_OPEN] = 0
        self._a[_COMMITS] = 0

    @property
    def step(self) -> int:
        """The global step the workers see: T, plus `base` in a leased counter."""
        return self._a[_DONE] + self._a[_BASE]

    @property
    def commits(self) -> int:
        """Segments committed (updates made) so far."""
        return self._a[_COMMITS]

    @property
    def unreserved(self) -> int:
        """Steps of the target nobody has reserved yet."""
        return self._a[_TARGET] - self._a[_RESERVED]

    def open_lease(self, base: int) -> None:
        """Make this a leased counter (see the module's docstring) whose workers see global
        step `base` + T."""
        self._a[_BASE] = base
        self._a[_OPEN] = 1

    def set_base(self, base: int) -> None:
        self._a[_BASE] = base

    def extend(self, n: int) -> None:
        """Add n steps to the target (a lease granted)."""
        with self._lock:
            self._a[_TARGET] += n

    def close_lease(self) -> None:
        """No more steps will be granted: workers end once the target is reached."""
        self._a[_OPEN] = 0

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

    @property
    def finished(self) -> bool:
        """No work is left: the target is reached or a stop was asked."""
        return self.stopped or self.done >= self.target

    def stop(self) -> None:
        """Ask workers to finish their current segment and exit."""
        self._a[_STOP] = 1

    def outstanding(self, rank: int) -> int:
        """Steps `rank` has reserved and not committed yet."""
        return self._a[_HEADER + 2 * rank]

    def beat(self, rank: int) -> None:
        """Mark `rank` as alive now (the supervisor does it when it starts a worker)."""
        self._a[_HEADER + 2 * rank + 1] = now_ms()

    def silent_for(self, rank: int) -> float:
        """Seconds since `rank` last reserved steps (or was started)."""
        return (now_ms() - self._a[_HEADER + 2 * rank + 1]) / 1000.0

    def reserve(self, n: int, rank: int = 0, poll: float = 0.002) -> int:
        """Claim up to n steps for worker `rank`. 0 means training is over (target reached
        or stop asked).

        If every remaining step is claimed by other workers, wait: a worker whose episode
        ends early gives steps back, and someone must take them.
        """
        a, slot, me = self._a, _HEADER + 2 * rank, rank + 1
        while True:
            a[slot + 1] = now_ms()
            with self._lock:
                a[_OWNER] = me
                k = 0
                if not a[_STOP]:
                    k = min(n, a[_TARGET] - a[_RESERVED])
                    if k > 0:
                        a[_RESERVED] += k
                        a[slot] = k
                    elif a[_DONE] < a[_TARGET] or a[_OPEN]:
                        k = -1                      # all claimed, not all done (or more to come): wait
                    else:
                        k = 0
                a[_OWNER] = 0
            if k >= 0:
                return k
            time.sleep(poll)

    def commit(self, used: int, rank: int = 0) -> int:
        """Count `used` of `rank`'s reserved steps as done and return the unused rest to the
        pool; returns the new T (plus base: the global step, in a leased counter). (Done is
        counted before the reservation is cleared, so a worker killed in between leaves a
        state that `release` repairs exactly.)"""
        a, slot = self._a, _HEADER + 2 * rank
        with self._lock:
            a[_OWNER] = rank + 1
            a[_DONE] += used
            a[_RESERVED] -= a[slot] - used
            a[slot] = 0
            a[_COMMITS] += 1
            a[_OWNER] = 0
            return a[_DONE] + a[_BASE]

    def release(self, rank: int, timeout: float = LOCK_TAKEOVER_S) -> int:
        """Give the steps that the dead worker `rank` had reserved but not committed back to
        the pool; returns how many. Call it only once the worker's process has exited.

        If the worker died holding the lock (its rank is in the owner slot, or nobody's is
        and the lock stays taken for `timeout` s), the lock is taken over from it and
        released here. The reserved total is recomputed from the committed count and the
        live workers' reservations, which repairs a reserve or commit cut off half-way.
        """
        a = self._a
        deadline = time.monotonic() + timeout
        # the owner slot of a dead worker no longer changes: its rank there means it died
        # inside the lock, and the lock is taken over from it at once
        while not self._lock.acquire(timeout=0.05) and a[_OWNER] != rank + 1:
            if time.monotonic() >= deadline:
                if a[_OWNER] != 0:
                    raise WorkerError(f"the global step counter's lock has been held by worker "
                                      f"{a[_OWNER] - 1} for more than {timeout:g} s")
                break                   # it died between taking the lock and writing its rank
        try:
            lost = a[_HEADER + 2 * rank]
            a[_HEADER + 2 * rank] = 0
            a[_RESERVED] = a[_DONE] + sum(a[_HEADER + 2 * r] for r in range(self.workers))
            a[_OWNER] = 0
        finally:
            self._lock.release()
        return lost

