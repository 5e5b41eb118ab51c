"""SplitVectorEnv (--vec-env split): the last group of environments stepped by the calling
process, each other group by a worker process, observations in shared memory. Its results
must be a SyncVectorEnv's exactly, step for step (observations, rewards, flags, infos with
final_obs / final_info), also when the actions are chosen group by group (step_acting); a
worker's error, death or silence must surface as an exception, never a hang."""
from __future__ import annotations

import multiprocessing
import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest

from asyncrl.envs import EnvFactory
from asyncrl.vector import SplitVectorEnv, group_bounds, make_vector_env
from asyncrl.system import available_cores

SAME_STEP = gym.vector.AutoresetMode.SAME_STEP


class DrawEnv(gym.Env):
    """Observation [step in episode, a draw from the env's seeded generator]; the episode
    ends (terminated on action 2, else truncated) after a random 2-6 steps. Infos: the
    process that stepped it; "odd" on odd steps only; "fail"/"sleep" behaviours on request."""
    observation_space = gym.spaces.Box(-1e6, 1e6, (2,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, fail_at: int | None = None, sleep_at: int | None = None):
        self.fail_at, self.sleep_at = fail_at, sleep_at
        self.i = self.steps = 0
        self.horizon = 4
        self.value = 0
        self.closed = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.i = 0
        self.horizon = int(self.np_random.integers(2, 7))
        return np.array([0, self.np_random.random()], np.float32), {"start": float(self.np_random.random())}

    def step(self, action):
        self.steps += 1
        if self.steps == self.fail_at:
            raise RuntimeError(f"boom at step {self.steps}")
        if self.steps == self.sleep_at:
            time.sleep(30)
        self.i += 1
        end = self.i >= self.horizon
        info = {"pid": os.getpid(), "i": self.i}
        if self.i % 2:
            info["odd"] = float(self.np_random.random())
        return (np.array([self.i, self.np_random.random()], np.float32), float(action) + self.i,
                end and action == 2, end and action != 2, info)

    def close(self):
        self.closed = True


def without_pid(infos: dict) -> dict:
    out = {}
    for k, v in infos.items():
        if k in ("pid", "_pid"):
            continue
        out[k] = without_pid(v) if isinstance(v, dict) else v
    return out


def assert_same_infos(a: dict, b: dict) -> None:
    a, b = without_pid(a), without_pid(b)
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], dict):
            assert_same_infos(a[k], b[k])
        else:
            assert a[k].dtype == b[k].dtype, k
            assert all(np.array_equal(x, y) for x, y in zip(a[k], b[k])) if a[k].dtype == object \
                else np.array_equal(a[k], b[k]), k


def pair(n: int, groups: int = 2, **kw):
    ref = gym.vector.SyncVectorEnv([DrawEnv] * n, copy=False, autoreset_mode=SAME_STEP)
    split = SplitVectorEnv([lambda: DrawEnv(**kw)] * n, groups, copy=False, timeout=20.0)
    return ref, split


def test_groups_are_contiguous_and_cover_every_env():
    assert group_bounds(5, 2) == [range(0, 2), range(2, 5)]
    assert group_bounds(16, 2) == [range(0, 8), range(8, 16)]
    assert group_bounds(3, 8) == [range(0, 1), range(1, 2), range(2, 3)]   # no empty group
    assert group_bounds(4, 1) == [range(0, 4)]


@pytest.mark.parametrize("n,groups", [(5, 2), (6, 3), (1, 2)])
def test_steps_equal_a_sync_vector_envs(n, groups):
    """Observations, rewards, flags and infos equal the SyncVectorEnv's for 60 steps with
    episodes ending both ways; the first groups step in other processes, the last here."""
    ref, split = pair(n, groups)
    try:
        assert len(split.processes) == len(group_bounds(n, groups)) - 1
        o1, i1 = ref.reset(seed=11)
        o2, i2 = split.reset(seed=11)
        assert np.array_equal(o1, o2)
        assert_same_infos(i1, i2)
        rng = np.random.default_rng(0)
        ends = 0
        for _ in range(60):
            actions = rng.integers(0, 3, n)
            r1, r2 = ref.step(actions), split.step(actions)
            for x, y in zip(r1[:4], r2[:4]):
                assert np.array_equal(x, y) and x.dtype == y.dtype
            assert_same_infos(r1[4], r2[4])
            ends += int(r1[2].sum() + r1[3].sum())
            local, pid, has = split._local, r2[4].get("pid"), r2[4].get("_pid")
            if pid is not None:                       # (a reset's info has no pid)
                assert all(pid[i] != os.getpid() for i in range(local.start) if has[i])
                assert all(pid[i] == os.getpid() for i in local if has[i])
        assert ends > 10
    finally:
        ref.close()
        split.close()


def test_step_acting_chooses_group_by_group_and_equals_step():
    """step_acting(act, obs, actions): act is called on each group's rows in environment
    order, each group's actions are written into `actions`, and the results equal a
    SyncVectorEnv stepped with the same actions."""
    ref, split = pair(5)
    try:
        obs, _ = split.reset(seed=3)
        ref.reset(seed=3)
        rng = np.random.default_rng(1)
        for _ in range(30):
            calls = []

            def act(rows):
                calls.append(rows.copy())
                return rng.integers(0, 3, len(rows))
            actions = np.full(5, -1, np.int64)
            before = obs.copy()
            out = split.step_acting(act, obs, actions)
            assert [len(c) for c in calls] == [2, 3]
            assert np.array_equal(np.concatenate(calls), before)
            assert (actions >= 0).all()
            want = ref.step(actions)
            for x, y in zip(want[:4], out[:4]):
                assert np.array_equal(x, y)
            assert_same_infos(want[4], out[4])
            obs = out[0]
    finally:
        ref.close()
        split.close()


def test_reset_seeds_and_copy():
    split = SplitVectorEnv([DrawEnv] * 4, 2, copy=True)
    try:
        a, _ = split.reset(seed=[5, 6, 7, 8])
        b, _ = split.reset(seed=5)
        assert np.array_equal(a, b)
        c, _ = split.reset(seed=[5, 6, 7, 9])
        assert np.array_equal(a[:3], c[:3]) and not np.array_equal(a[3], c[3])
        d, _ = split.step(np.zeros(4, np.int64))[:2]
        assert d is not split._observations           # copy=True: the caller's own array
        with pytest.raises(ValueError, match="3 seeds for 4 environments"):
            split.reset(seed=[1, 2, 3])
        with pytest.raises(ValueError, match="3 actions for 4 environments"):
            split.step(np.zeros(3, np.int64))
    finally:
        split.close()


def test_call_get_attr_and_set_attr_reach_every_env_in_order():
    split = SplitVectorEnv([DrawEnv] * 5, 2)
    try:
        split.reset(seed=0)
        split.set_attr("value", [10, 11, 12, 13, 14])
        assert split.get_attr("value") == (10, 11, 12, 13, 14)
        split.set_attr("value", 7)
        assert split.get_attr("value") == (7,) * 5
        steps = split.call("__getattribute__", "steps")
        assert steps == (0,) * 5
    finally:
        split.close()


def test_a_workers_error_is_raised_with_its_traceback_and_the_env_can_only_be_closed():
    split = SplitVectorEnv([lambda: DrawEnv(fail_at=3)] * 2 + [DrawEnv] * 2, 2)   # fails in the worker
    try:
        split.reset(seed=0)
        split.step(np.zeros(4, np.int64))
        split.step(np.zeros(4, np.int64))
        with pytest.raises(RuntimeError, match="boom at step 3") as info:
            split.step(np.zeros(4, np.int64))
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert "raised in environment worker" in notes and "Traceback" in notes
        with pytest.raises(RuntimeError, match="cannot go on"):
            split.step(np.zeros(4, np.int64))
    finally:
        split.close()
    assert all(p.exitcode is not None for p in split.processes)


def kill_worker(split: SplitVectorEnv, k: int):
    proc = split.processes[k]
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    return proc


def test_a_dead_worker_raises_and_says_its_exit_code():
    split = SplitVectorEnv([DrawEnv] * 4, 2)
    try:
        split.reset(seed=0)
        proc = kill_worker(split, 0)
        with pytest.raises((EOFError, OSError)):
            split.step(np.zeros(4, np.int64))
        assert proc.exitcode == -signal.SIGKILL
    finally:
        split.close(terminate=True)


def test_a_silent_worker_times_out():
    split = SplitVectorEnv([lambda: DrawEnv(sleep_at=2), DrawEnv], 2, timeout=0.5)   # the worker's sleeps
    try:
        split.reset(seed=0)
        split.step(np.zeros(2, np.int64))
        t0 = time.monotonic()
        with pytest.raises(multiprocessing.TimeoutError, match="did not answer within 0.5 s"):
            split.step(np.zeros(2, np.int64))
        assert time.monotonic() - t0 < 10
    finally:
        split.close(terminate=True)
    assert not any(p.is_alive() for p in split.processes)


def test_close_ends_the_workers_and_closes_local_envs():
    split = SplitVectorEnv([DrawEnv] * 4, 2)
    split.reset(seed=0)
    local = list(split.envs)
    split.close()
    assert all(p.exitcode == 0 for p in split.processes)
    assert all(env.closed for env in local)


def test_make_vector_env_split_has_a_group_per_core_and_equals_inline_on_pong():
    """4 Pong envs (the Atari preprocessing): the split env equals the inline one for 150
    steps, with one group per core this process may use (on one core: no worker)."""
    pytest.importorskip("ale_py")
    from asyncrl.atari import AtariOptions

    factory = EnvFactory("ALE/Pong-v5")
    factory.atari = AtariOptions()
    ref, split = make_vector_env(factory, 4, "inline"), make_vector_env(factory, 4, "split")
    try:
        assert isinstance(split, SplitVectorEnv)
        assert len(split.processes) == min(4, available_cores()) - 1
        assert np.array_equal(ref.reset(seed=2)[0], split.reset(seed=2)[0])
        rng = np.random.default_rng(0)
        for _ in range(150):
            actions = rng.integers(0, 6, 4)
            r1, r2 = ref.step(actions), split.step(actions)
            for x, y in zip(r1[:4], r2[:4]):
                assert np.array_equal(x, y)
    finally:
        ref.close()
        split.close()


def test_a_failed_send_leaves_the_env_broken_not_out_of_step():
    """A worker that died before a command is sent to it: the send fails, and the env says it
    cannot go on instead of reading stale answers later."""
    split = SplitVectorEnv([DrawEnv] * 3, 3)
    try:
        split.reset(seed=0)
        kill_worker(split, 1)
        with pytest.raises((EOFError, OSError)):
            for _ in range(3):           # the dead worker's pipe may take a send before it breaks
                split.step(np.zeros(3, np.int64))
        with pytest.raises(RuntimeError, match="cannot go on"):
            split.step(np.zeros(3, np.int64))
    finally:
        split.close(terminate=True)


def test_workers_die_with_the_main_process():
    """SIGKILL to the process that owns a SplitVectorEnv: its workers do not live on."""
    import subprocess
    import sys

    code = """
import os, sys, time
sys.path.insert(0, %r)
from test_split_vector_env import DrawEnv
from asyncrl.vector import SplitVectorEnv
v = SplitVectorEnv([DrawEnv] * 3, 3)
v.reset(seed=0)
print(" ".join(str(p.pid) for p in v.processes), flush=True)
time.sleep(60)
""" % os.path.dirname(__file__)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        alive = pids
        while alive and time.monotonic() < deadline:
            alive = [p for p in pids if _alive(p)]
            time.sleep(0.05)
        assert not alive, alive
    finally:
        proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
