"""Tests for the exact global step counter (asyncrl.executors.counter.StepCounter).

Threads stand in for worker processes: the counter's lock and shared array work the same.
"""
import multiprocessing
import os
import random
import signal
import threading
import time

import pytest

from asyncrl.errors import WorkerError
from asyncrl.executors.counter import _DONE, _OWNER, _RESERVED, StepCounter

CTX = multiprocessing.get_context("fork")


def reserved(c):
    return c._a[_RESERVED]


def reserve_now(c, n, rank=0, timeout=2.0):
    """c.reserve(n, rank) in a daemon thread, so a reserve that would wait forever fails the test."""
    out = []
    t = threading.Thread(target=lambda: out.append(c.reserve(n, rank, poll=0.001)), daemon=True)
    t.start()
    t.join(timeout)
    assert out, f"reserve({n}) blocked for {timeout}s"
    return out[0]


def test_initial_state():
    """A fresh counter starts at `start` with the given target, not stopped."""
    c = StepCounter(CTX, 7, 20)
    assert (c.done, reserved(c), c.target, c.stopped) == (7, 7, 20, False)


def test_reserve_commit_arithmetic():
    """reserve/commit move the reserved and done counts exactly; commit returns the new T."""
    c = StepCounter(CTX, 0, 12, workers=3)
    assert reserve_now(c, 5, 0) == 5
    assert reserve_now(c, 5, 1) == 5
    assert reserve_now(c, 5, 2) == 2  # only 2 steps left unclaimed
    assert (reserved(c), c.done) == (12, 0)
    assert [c.outstanding(r) for r in range(3)] == [5, 5, 2]
    assert c.commit(5, 0) == 5
    assert c.commit(3, 1) == 8  # 2 steps returned to the pool
    assert (reserved(c), c.done) == (10, 8)
    assert [c.outstanding(r) for r in range(3)] == [0, 0, 2]
    assert reserve_now(c, 5, 0) == 2  # the returned steps can be taken again
    assert c.commit(2, 0) == 10
    assert c.commit(2, 2) == 12
    assert (reserved(c), c.done) == (12, 12)
    assert c.done == c.target
    assert reserve_now(c, 5, 1) == 0  # target reached


def test_reserve_never_beyond_target_from_nonzero_start():
    """Starting at 7 of 10, a reserve of 5 gets 3; the total never passes the target."""
    c = StepCounter(CTX, 7, 10)
    assert reserve_now(c, 5) == 3
    assert reserved(c) == 10
    c.commit(3)
    assert c.done == 10
    assert reserve_now(c, 1) == 0


def test_start_at_target_returns_zero():
    """A counter resumed at its target hands out nothing."""
    c = StepCounter(CTX, 10, 10)
    assert reserve_now(c, 5) == 0


def test_early_commit_returns_rest_to_other_reserve():
    """Steps unused by one worker's commit go to the next reserve."""
    c = StepCounter(CTX, 0, 10, workers=2)
    assert reserve_now(c, 10, 0) == 10
    assert c.commit(4, 0) == 4
    assert reserved(c) == 4
    assert reserve_now(c, 10, 1) == 6
    c.commit(6, 1)
    assert c.done == 10 == c.target


def test_blocked_reserve_takes_steps_given_back():
    """A reserve that finds everything claimed waits, then gets the steps a commit gives back."""
    c = StepCounter(CTX, 0, 10, workers=2)
    assert reserve_now(c, 10, 0) == 10
    got = []
    t = threading.Thread(target=lambda: got.append(c.reserve(5, 1, poll=0.001)), daemon=True)
    t.start()
    time.sleep(0.02)
    assert got == []  # still waiting: all 10 steps are claimed but not done
    c.commit(7, 0)
    t.join(timeout=2.0)
    assert not t.is_alive()
    assert got == [3]


def test_blocked_reserve_returns_zero_when_target_done():
    """A waiting reserve returns 0 once the other worker commits the whole target."""
    c = StepCounter(CTX, 0, 10, workers=2)
    assert reserve_now(c, 10, 0) == 10
    got = []
    t = threading.Thread(target=lambda: got.append(c.reserve(5, 1, poll=0.001)), daemon=True)
    t.start()
    time.sleep(0.02)
    c.commit(10, 0)
    t.join(timeout=2.0)
    assert not t.is_alive() and got == [0]


def test_stop_makes_reserve_return_zero():
    """After stop(), reserve returns 0 even though steps remain, and a waiter wakes up."""
    c = StepCounter(CTX, 0, 100, workers=2)
    assert reserve_now(c, 100, 0) == 100
    got = []
    t = threading.Thread(target=lambda: got.append(c.reserve(5, 1, poll=0.001)), daemon=True)
    t.start()
    time.sleep(0.02)
    c.stop()
    t.join(timeout=2.0)
    assert not t.is_alive() and got == [0]
    assert c.stopped
    c.commit(40, 0)  # a worker finishing its segment after stop still counts its steps
    assert c.done == 40
    assert reserve_now(c, 5, 1) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threads_with_early_episode_ends_hit_target_exactly(seed):
    """4 threads reserve/commit with random early ends until 0: done == reserved == target."""
    target, t_max = 997, 5
    c = StepCounter(CTX, 3, target, workers=4)
    totals = [0] * 4
    errors = []

    def worker(i):
        rng = random.Random(seed * 10 + i)
        try:
            while True:
                k = c.reserve(t_max, i, poll=0.0005)
                if k == 0:
                    return
                assert 1 <= k <= t_max
                used = rng.randint(1, k) if rng.random() < 0.3 else k
                time.sleep(0)  # "run the segment": let other threads interleave
                c.commit(used, i)
                totals[i] += used
        except BaseException as exc:  # surface in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10.0)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert c.done == target
    assert reserved(c) == c.done
    assert sum(totals) == target - 3
    assert c._a[_DONE] == target


# ---------------------------------------------------------------- a worker that dies
def _die_after(c, steps, rank, where):
    """Child process: reserve `steps` as worker `rank`, then die by SIGKILL: mid-segment, or
    inside the counter's lock as commit would hold it (with its rank in the owner slot, or
    just before writing it there)."""
    assert c.reserve(steps, rank) == steps
    if where != "segment":
        c._lock.acquire()
        if where == "lock":
            c._a[_OWNER] = rank + 1
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("where", ["segment", "lock", "lock-before-owner"])
def test_release_gives_a_killed_workers_reservation_back(where):
    """A worker process SIGKILLed mid-segment (after its reserve, before its commit; or
    inside the lock) leaves steps reserved; release() gives them back (and the lock), so the
    survivor ends exactly on the target instead of waiting forever for steps nobody commits."""
    c = StepCounter(CTX, 0, 20, workers=2)
    assert reserve_now(c, 8, 1) == 8 and c.commit(8, 1) == 8
    p = CTX.Process(target=_die_after, args=(c, 5, 0, where))
    p.start()
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    assert c.outstanding(0) == 5 and reserved(c) == 13 and c.done == 8
    assert c.release(0, timeout=2.0) == 5
    assert c.outstanding(0) == 0 and reserved(c) == 8
    total = 8
    while (k := reserve_now(c, 5, 1)) > 0:
        total = c.commit(k, 1)
    assert total == c.done == c.target == 20


def test_release_repairs_a_commit_cut_off_half_way():
    """Killed inside commit after counting its steps but before clearing its reservation:
    release() keeps the counted steps and drops the reservation, so nothing is counted twice."""
    c = StepCounter(CTX, 0, 10, workers=2)
    assert reserve_now(c, 5, 0) == 5
    c._a[_DONE] += 5                 # what commit does first, then the worker "dies"
    assert c.release(0, timeout=0.5) == 5
    assert reserved(c) == c.done == 5
    assert reserve_now(c, 10, 1) == 5


def test_release_refuses_to_take_the_lock_from_a_live_holder():
    """If another (live) worker's rank is in the owner slot and the lock stays taken, release
    raises WorkerError after its timeout instead of stealing the lock."""
    c = StepCounter(CTX, 0, 10, workers=2)
    c._lock.acquire()
    c._a[_OWNER] = 2                 # worker 1 holds it
    with pytest.raises(WorkerError, match="held by worker 1"):
        c.release(0, timeout=0.2)
    c._a[_OWNER] = 0
    c._lock.release()


def test_heartbeat():
    """reserve() stamps the worker's heartbeat; silent_for measures the time since."""
    c = StepCounter(CTX, 0, 10, workers=2)
    c.beat(0)
    c.beat(1)
    time.sleep(0.15)
    reserve_now(c, 1, 1)
    assert c.silent_for(0) >= 0.14 and c.silent_for(1) < 0.1
