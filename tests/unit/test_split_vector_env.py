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
from asyncrl.vector import SplitVectorEnv, SubprocessVectorEnv, group_bounds, make_vector_env
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
    assert_a_kill_breaks_it(SplitVectorEnv([DrawEnv] * 3, 3), 1, (EOFError, OSError), tries=3)


def assert_a_kill_breaks_it(split: SplitVectorEnv, k: int, raises, match: str | None = None, tries: int = 1):
    """Kill worker k: a step (within `tries`: the dead worker's pipe may take a send before it
    breaks) raises `raises`, and then the env cannot go on."""
    n = split.num_envs
    try:
        split.reset(seed=0)
        kill_worker(split, k)
        with pytest.raises(raises, match=match):
            for _ in range(tries):
                split.step(np.zeros(n, np.int64))
        with pytest.raises(RuntimeError, match="cannot go on"):
            split.step(np.zeros(n, np.int64))
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


# --------------------------------------------------------------------------- restarts
class Faults:
    """on_failure that records each call, and raises once `limit` calls have been allowed."""

    def __init__(self, limit: int = 10):
        self.calls, self.limit = [], limit

    def __call__(self, envs: range, why: str, detail: str) -> None:
        if len(self.calls) >= self.limit:
            raise RuntimeError(f"past the budget: {why}")
        self.calls.append((envs, why, detail))


def first_obs(seed: int) -> np.ndarray:
    return DrawEnv().reset(seed=seed)[0]


def test_a_killed_worker_is_restarted_with_new_seeds_and_the_others_are_unaffected():
    """SIGKILL to the worker of envs 0-1 (of 4, 2 groups): the next step calls on_failure
    with why 'was killed by SIGKILL', starts a new process, resets envs 0-1 with seeds
    10 + i + 1000, and returns for them their first observations, reward 0, truncated (not
    terminated), final_info['env_restarted']; envs 2-3 step exactly as a SyncVectorEnv of the
    same seeds and actions does, before and after. `restarted` names the step and envs; a
    second kill is the second restart (seeds + 2000)."""
    faults = Faults()
    split = SplitVectorEnv([DrawEnv] * 4, 2, on_failure=faults)
    ref = gym.vector.SyncVectorEnv([DrawEnv] * 4, autoreset_mode=SAME_STEP)
    try:
        split.reset(seed=10)
        ref.reset(seed=10)
        rng = np.random.default_rng(0)
        for _ in range(3):
            a = rng.integers(0, 3, 4)
            assert np.array_equal(split.step(a)[0], ref.step(a)[0])
        old = kill_worker(split, 0)
        a = rng.integers(0, 3, 4)
        obs, rew, term, trunc, info = split.step(a)
        r_obs, r_rew, r_term, r_trunc, _ = ref.step(a)
        assert [(e, w) for e, w, _ in faults.calls] == [(range(0, 2), "was killed by SIGKILL")]
        assert split.processes[0].pid != old.pid and split.processes[0].is_alive()
        assert np.array_equal(obs[0], first_obs(1010)) and np.array_equal(obs[1], first_obs(1011))
        assert list(rew[:2]) == [0.0, 0.0] and list(term[:2]) == [False, False] and list(trunc[:2]) == [True, True]
        assert list(info["final_info"]["env_restarted"][:2]) == [True, True]
        assert np.array_equal(obs[2:], r_obs[2:]) and np.array_equal(rew[2:], r_rew[2:])
        assert np.array_equal(term[2:], r_term[2:]) and np.array_equal(trunc[2:], r_trunc[2:])
        assert split.restarted == [(3, range(0, 2))] and split.steps_taken == 4
        for _ in range(5):                  # the others go on exactly; the new worker steps
            a = rng.integers(0, 3, 4)
            out, r = split.step(a), ref.step(a)
            assert np.array_equal(out[0][2:], r[0][2:]) and np.array_equal(out[1][2:], r[1][2:])
        kill_worker(split, 0)
        obs = split.step(np.zeros(4, np.int64))[0]
        assert len(faults.calls) == 2 and np.array_equal(obs[0], first_obs(2010))
    finally:
        split.close()
        ref.close()
    assert all(p.exitcode == 0 for p in split.processes)


def test_a_worker_that_raises_or_hangs_is_restarted_and_says_why():
    """An env that raises in the worker: why is its exception's last line and the detail its
    traceback; a worker silent for `timeout` s is killed and restarted (why: hung)."""
    faults = Faults()
    split = SplitVectorEnv([lambda: DrawEnv(fail_at=2), DrawEnv], 2, on_failure=faults)
    try:
        split.reset(seed=0)
        split.step(np.zeros(2, np.int64))
        trunc = split.step(np.zeros(2, np.int64))[3]
        envs, why, detail = faults.calls[0]
        assert envs == range(0, 1) and why == "failed: RuntimeError: boom at step 2", why
        assert detail.startswith("\nTraceback") and "boom at step 2" in detail
        assert trunc[0]
    finally:
        split.close()
    hung = Faults()
    split = SplitVectorEnv([lambda: DrawEnv(sleep_at=2), DrawEnv], 2, timeout=0.5, on_failure=hung)
    try:
        split.reset(seed=0)
        split.step(np.zeros(2, np.int64))
        t0 = time.monotonic()
        split.step(np.zeros(2, np.int64))
        assert time.monotonic() - t0 < 10
        assert hung.calls[0][1] == "did not answer a step within 0.5 s (worker-timeout; hung, killed)"
        split.step(np.zeros(2, np.int64))       # the new worker answers
    finally:
        split.close(terminate=True)


def test_past_the_budget_the_step_raises_and_the_env_can_only_be_closed():
    """on_failure raising (the restart budget spent) stops the step with its error; the env
    is then broken, its dead worker not replaced."""
    assert_a_kill_breaks_it(SplitVectorEnv([DrawEnv] * 2, 2, on_failure=Faults(limit=0)), 0, RuntimeError,
                            match="past the budget: was killed by SIGKILL")


def test_subprocess_vector_env_has_a_process_per_env_and_restarts_them():
    """SubprocessVectorEnv (--vec-env subprocess): 3 envs, 3 worker processes, none local,
    the SyncVectorEnv's results; a killed one is restarted like a split group."""
    faults = Faults()
    sub = SubprocessVectorEnv([DrawEnv] * 3, on_failure=faults)
    ref = gym.vector.SyncVectorEnv([DrawEnv] * 3, autoreset_mode=SAME_STEP)
    try:
        assert len(sub.processes) == 3 and sub.envs == [] and sub.step_acting is None
        assert np.array_equal(sub.reset(seed=4)[0], ref.reset(seed=4)[0])
        rng = np.random.default_rng(1)
        for _ in range(20):
            a = rng.integers(0, 3, 3)
            for x, y in zip(sub.step(a)[:4], ref.step(a)[:4]):
                assert np.array_equal(x, y)
        kill_worker(sub, 2)
        obs, _, _, trunc, _ = sub.step(np.zeros(3, np.int64))
        assert faults.calls[0][0] == range(2, 3) and trunc[2] and np.array_equal(obs[2], first_obs(1006))
    finally:
        sub.close()
        ref.close()
