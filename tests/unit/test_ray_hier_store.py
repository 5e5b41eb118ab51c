"""The hierarchical ray mode's pieces without Ray: the parameter store's arithmetic (leases,
T, theta-, drops), the leased step counter, and how workers are split into node groups."""
from __future__ import annotations

import multiprocessing as mp
import threading

import numpy as np
import pytest

from asyncrl.config import Config
from asyncrl.executors.counter import StepCounter
from asyncrl.executors.ray_hier import ParameterStore, group_sizes, workers_per_node_problem


def _store(T=0, target_step=100, period=0, target=False):
    theta = np.arange(4, dtype=np.float32)
    return ParameterStore(theta, theta.copy() if target else None, T, target_step, period, None)


def _push(store, key, delta=0.0, steps=0, want=0, final=False, version=0):
    return store.push(key, np.full(4, delta, dtype=np.float32), steps, [], want, None, final, version)


def test_pushes_add_deltas_and_steps_and_leases_end_exactly_on_the_target():
    s = _store(T=10, target_step=100)
    s.join((0, 0))
    s.join((1, 0))
    a = _push(s, (0, 0), want=1000)             # fair share: ceil(90 / 2) = 45
    b = _push(s, (1, 0), want=1000)             # the rest: 45
    assert (a["granted"], b["granted"]) == (45, 45)
    assert _push(s, (0, 0), want=1000)["granted"] == 0      # nothing left to grant
    r = _push(s, (0, 0), delta=0.5, steps=45, final=True)
    np.testing.assert_array_equal(r["theta"], np.arange(4) + 0.5)
    assert r["T"] == 55 and not s.finished()
    r = _push(s, (1, 0), delta=-1.0, steps=45, final=True)
    assert r["T"] == 100 and s.finished()
    np.testing.assert_array_equal(s.state()["theta"], np.arange(4) - 0.5)
    assert s.counters()["pushes"] == 5


def test_a_dropped_group_gives_its_unreported_steps_back_and_its_late_push_is_refused():
    s = _store(target_step=100)
    s.join((0, 0))
    s.join((1, 0))
    assert _push(s, (0, 0), want=50)["granted"] == 50
    assert _push(s, (1, 0), want=50)["granted"] == 50
    _push(s, (1, 0), delta=1.0, steps=20)       # 20 of its 50 reported, then it is lost
    assert s.drop((1, 0)) == 30
    assert _push(s, (1, 0), delta=5.0, steps=30) is None     # too late: not applied
    r = _push(s, (0, 0), steps=50, want=100)    # the survivor takes the 30 back
    assert r["granted"] == 30 and r["T"] == 70
    r = _push(s, (0, 0), steps=30, final=True)
    assert r["T"] == 100 and s.finished()
    np.testing.assert_array_equal(s.state()["theta"], np.arange(4) + 1.0)


def test_no_steps_are_granted_until_every_first_group_has_joined():
    s = ParameterStore(np.zeros(4, dtype=np.float32), None, 0, 100, 0, None, groups=2, start_grace_s=60.0)
    s.join((0, 0))
    r = _push(s, (0, 0), want=1000)
    assert r["granted"] == 0 and r["more"] and not r["stop"]     # group 1 is still starting
    s.join((1, 0))
    assert _push(s, (0, 0), want=1000)["granted"] == 50          # both in: fair shares
    assert _push(s, (1, 0), want=1000)["granted"] == 50


def test_the_start_barrier_lifts_when_a_first_group_is_lost_before_joining_or_the_grace_ends():
    s = ParameterStore(np.zeros(4, dtype=np.float32), None, 0, 100, 0, None, groups=2, start_grace_s=60.0)
    s.join((0, 0))
    assert s.drop((1, 0)) == 0                  # it never joined: nothing to give back
    assert _push(s, (0, 0), want=1000)["granted"] == 100
    s = ParameterStore(np.zeros(4, dtype=np.float32), None, 0, 100, 0, None, groups=2, start_grace_s=0.0)
    s.join((0, 0))
    assert _push(s, (0, 0), want=1000)["granted"] == 100          # grace over: no more waiting
    s = ParameterStore(np.zeros(4, dtype=np.float32), None, 0, 100, 0, None, groups=2, start_grace_s=60.0)
    s.join((0, 0))
    s.join((1, 1))                              # a replacement does not count as a first group
    assert _push(s, (0, 0), want=1000)["granted"] == 0


def test_more_steps_may_come_while_another_group_holds_a_lease():
    s = _store(target_step=20)
    s.join((0, 0))
    s.join((1, 0))
    assert _push(s, (0, 0), want=10)["granted"] == 10
    r = _push(s, (1, 0), want=10)
    assert r["granted"] == 10 and r["more"]      # all granted, but group 0 holds 10 unreported
    r = _push(s, (0, 0), steps=10, final=True)
    assert r["more"]                             # group 1's 10 are not done yet
    assert not _push(s, (1, 0), steps=10)["more"]


def test_theta_minus_is_copied_when_the_global_step_crosses_a_period():
    s = _store(target_step=1000, period=100, target=True)
    s.join((0, 0))
    _push(s, (0, 0), want=1000)
    r = _push(s, (0, 0), delta=1.0, steps=99)
    assert r["target"] is None and r["target_version"] == 0
    r = _push(s, (0, 0), delta=1.0, steps=1)     # T = 100: theta- <- theta
    np.testing.assert_array_equal(r["target"], np.arange(4) + 2.0)
    assert r["target_version"] == 1
    r = _push(s, (0, 0), delta=1.0, steps=5, version=1)
    assert r["target"] is None                   # the node has this version already
    np.testing.assert_array_equal(s.state()["target"], np.arange(4) + 2.0)


def test_a_stop_grants_nothing_and_returns_unused_steps():
    s = _store(target_step=100)
    s.join((0, 0))
    _push(s, (0, 0), want=60)
    s.stop()
    r = _push(s, (0, 0), steps=10, want=50)
    assert r["stop"] and r["granted"] == 0
    _push(s, (0, 0), steps=5, final=True)
    assert s.finished() and s.T == 15 and s.granted == 15


def test_a_leased_counter_waits_for_more_steps_and_shows_the_global_step():
    c = StepCounter(mp.get_context("fork"), 0, 0, workers=1)
    c.open_lease(base=1000)
    c.extend(5)
    assert c.reserve(5) == 5
    assert c.commit(5) == 1005                   # base + local steps
    got = []
    t = threading.Thread(target=lambda: got.append(c.reserve(5)))
    t.start()
    t.join(0.2)
    assert t.is_alive()                          # the lease is used up but open: it waits
    c.set_base(2000)
    c.extend(3)
    t.join(2.0)
    assert got == [3]
    assert c.commit(3) == 2008 and c.commits == 2
    c.close_lease()
    assert c.reserve(5) == 0                     # closed and all done: training is over


@pytest.mark.parametrize("workers,wpn,nodes,sizes", [
    (4, 0, 2, [2, 2]), (5, 0, 2, [3, 2]), (2, 0, 3, [1, 1]), (3, 0, 1, [3]), (6, 2, 1, [2, 2, 2])])
def test_group_sizes(workers, wpn, nodes, sizes):
    assert group_sizes(Config(algo="a3c", env="CartPole-v1", workers=workers, workers_per_node=wpn), nodes) == sizes


def test_workers_not_a_multiple_of_workers_per_node_is_one_line():
    cfg = Config(algo="a3c", env="CartPole-v1", executor="ray", workers=5, workers_per_node=2)
    assert workers_per_node_problem(cfg) == ("workers 5 is not a multiple of workers-per-node 2: each node group "
                                             "runs workers-per-node actor-learners; give a multiple, or "
                                             "workers-per-node 0")
    assert any("workers-per-node 2" in p for p in cfg.validate())
