"""ThreadedVectorEnv (--vec-env threads): a SyncVectorEnv whose step runs groups of its
environments in threads. Its results must be the SyncVectorEnv's exactly, step for step:
observations, rewards, flags, and infos (final_obs / final_info at an episode's end, and
keys that only some environments report), with the groups really stepped on other threads
and an error in any group raised only once every group has finished."""
from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest

from asyncrl.envs import EnvFactory
from asyncrl.vector import ThreadedVectorEnv, make_vector_env
from asyncrl.system import available_cores

SAME_STEP = gym.vector.AutoresetMode.SAME_STEP


class TalkativeEnv(gym.Env):
    """Observation [steps in episode, episodes started]; terminates at action 2 or after
    `horizon` steps. Its info says which thread stepped it; only on odd steps has it a key
    "odd", and its key "kind" is an int in the first environment built and a float in the
    others: the vector env must merge infos that only some environments report, in
    environment order (the first environment to report a key sets the array's dtype)."""
    built = 0
    observation_space = gym.spaces.Box(0.0, 1e6, (2,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, horizon: int = 7, fail_at: int | None = None, delay: float = 0.0, tag: int = 0,
                 barrier: threading.Barrier | None = None):
        self.horizon, self.fail_at, self.delay, self.tag, self.barrier = horizon, fail_at, delay, tag, barrier
        self.i = self.episodes = self.steps = 0
        self.kind = int if TalkativeEnv.built == 0 else float
        TalkativeEnv.built += 1
        self.closed = False

    def close(self):
        self.closed = True

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.i, self.episodes = 0, self.episodes + 1
        return np.array([0, self.episodes], np.float32), {"reset_draw": float(self.np_random.random())}

    def step(self, action):
        if self.delay:
            time.sleep(self.delay)
        if self.barrier is not None:
            self.barrier.wait(timeout=20)
        self.steps += 1
        if self.fail_at is not None and self.steps == self.fail_at:
            if self.tag == "interrupt":
                raise KeyboardInterrupt
            raise RuntimeError(f"boom at step {self.steps} in env {self.tag}")
        self.i += 1
        info = {"thread": threading.get_ident(), "kind": self.kind(self.i)}
        if self.i % 2:
            info["odd"] = self.i
        term = int(action) == 2 or self.i >= self.horizon
        return np.array([self.i, self.episodes], np.float32), float(self.i), term, False, info


def assert_same(x, y, path="") -> None:
    """Equal step results: arrays elementwise (dtype included), dicts key by key."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and list(x) == list(y), path           # same keys, same order
        for k in x:
            assert_same(x[k], y[k], f"{path}/{k}")
    elif isinstance(x, (tuple, list)) or (isinstance(x, np.ndarray) and x.dtype == object):
        assert len(x) == len(y), path
        for i, (a, b) in enumerate(zip(x, y)):
            assert_same(a, b, f"{path}[{i}]")
    else:
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and np.array_equal(x, y), path


def drop_threads(info: dict) -> dict:
    return {k: (drop_threads(v) if isinstance(v, dict) else v) for k, v in info.items()
            if k not in ("thread", "_thread")}


@pytest.mark.parametrize("n,threads", [(7, 3), (4, 2), (5, 1), (3, 8)])
def test_threaded_steps_equal_sync_vector_env_steps(n, threads):
    """Random actions (episodes end by action 2 and by the horizon), 200 steps: every
    observation, reward, flag and info (final_obs / final_info included) is the
    SyncVectorEnv's; CartPole (its time limit truncates) likewise."""
    for make in (TalkativeEnv, lambda: gym.make("CartPole-v1", max_episode_steps=25)):
        TalkativeEnv.built = 0
        ref = gym.vector.SyncVectorEnv([make] * n, copy=False, autoreset_mode=SAME_STEP)
        TalkativeEnv.built = 0
        thr = ThreadedVectorEnv([make] * n, threads, copy=False, autoreset_mode=SAME_STEP)
        assert_same(ref.reset(seed=3), thr.reset(seed=3))
        rng, ends, finals, int_first = np.random.default_rng(0), 0, 0, 0
        for _ in range(200):
            actions = rng.choice(np.arange(3), n, p=[0.45, 0.45, 0.1]) if make is TalkativeEnv \
                else rng.integers(2, size=n)
            a, b = ref.step(actions), thr.step(actions)
            assert_same(a[:4], b[:4])
            assert_same(drop_threads(a[4]), drop_threads(b[4]))
            if make is TalkativeEnv:                              # the first env to report sets the dtype
                first = np.flatnonzero(b[4]["_kind"])[0]
                assert b[4]["kind"].dtype == (np.int64 if first == 0 else np.float64)
                int_first += first == 0
            ends += int((a[2] | a[3]).sum())
            finals += int(b[4].get("_final_obs", np.zeros(n, bool)).sum())
        assert ends > 20 and finals == ends                 # episodes ended, each with its final obs
        assert make is not TalkativeEnv or 0 < int_first < 200
        ref.close()
        thr.close()


def test_groups_are_contiguous_and_step_at_once():
    """7 environments in 3 groups (2, 3, 2): the first group steps on the calling thread,
    the others each on a pool thread, all three at once: environments 0, 2 and 5 wait at
    one barrier of 3, which only opens when the three groups are stepping together."""
    barrier = threading.Barrier(3)
    envs = [TalkativeEnv(barrier=barrier if i in (0, 2, 5) else None) for i in range(7)]
    venv = ThreadedVectorEnv([lambda e=e: e for e in envs], 3, copy=False, autoreset_mode=SAME_STEP)
    assert [list(g) for g in venv._groups] == [[0, 1], [2, 3, 4], [5, 6]]
    venv.reset(seed=0)
    for _ in range(3):
        _, _, _, _, info = venv.step(np.zeros(7, int))
        t = info["thread"]
        assert t[0] == t[1] == threading.get_ident()
        assert t[2] == t[3] == t[4] and t[5] == t[6]
        assert len({t[0], t[2], t[5]}) == 3
    venv.close()
    assert venv._pool._shutdown


@pytest.mark.parametrize("failing,slow", [(5, 0), (0, 5), (2, 5)])
def test_an_error_in_one_group_is_raised_after_every_group_has_stepped(failing, slow):
    """One environment raises on its 3rd step while another group is slow (the calling
    thread's, or a pool thread's, with the error in the calling thread's group or another
    pool thread's): the error reaches the caller only once every other
    group has taken that step. Errors in two groups: the first group's is raised."""
    envs = [TalkativeEnv(horizon=100, delay=0.05 if i == slow else 0.0, fail_at=3 if i == failing else None,
                         tag=i) for i in range(7)]
    venv = ThreadedVectorEnv([lambda e=e: e for e in envs], 3, copy=False, autoreset_mode=SAME_STEP)
    venv.reset(seed=0)
    venv.step(np.zeros(7, int))
    venv.step(np.zeros(7, int))
    with pytest.raises(RuntimeError, match=f"boom at step 3 in env {failing}"):
        venv.step(np.zeros(7, int))
    group = next(g for g in venv._groups if failing in g)
    expected = [2 if i in group and i > failing else 3 for i in range(7)]   # its group stops there
    assert [e.steps for e in envs] == expected
    venv.close()

    envs = [TalkativeEnv(horizon=100, fail_at=1 if i in (1, 4) else None, tag=i) for i in range(6)]
    venv = ThreadedVectorEnv([lambda e=e: e for e in envs], 2, copy=False, autoreset_mode=SAME_STEP)
    venv.reset(seed=0)
    with pytest.raises(RuntimeError, match="boom at step 1 in env 1") as err:
        venv.step(np.zeros(6, int))
    assert err.value.__notes__ == ["another environment group failed too: RuntimeError: boom at step 1 in env 4"]
    assert [e.steps for e in envs] == [1, 1, 0, 1, 1, 0]  # each group stopped at its failing env
    venv.close()
    assert all(e.closed for e in envs) and venv._pool._shutdown


def test_ctrl_c_in_the_calling_thread_waits_for_the_other_groups():
    """A KeyboardInterrupt while the calling thread steps its group (Ctrl-C lands on the
    main thread) is raised only once the pool's groups have stepped."""
    envs = [TalkativeEnv(horizon=100, delay=0.05 if i == 3 else 0.0, fail_at=2 if i == 0 else None,
                         tag="interrupt" if i == 0 else i) for i in range(4)]
    venv = ThreadedVectorEnv([lambda e=e: e for e in envs], 2, copy=False, autoreset_mode=SAME_STEP)
    venv.reset(seed=0)
    venv.step(np.zeros(4, int))
    with pytest.raises(KeyboardInterrupt):
        venv.step(np.zeros(4, int))
    assert [e.steps for e in envs] == [2, 1, 2, 2]
    venv.close()


def test_copy_and_action_count():
    """copy=True returns observations the next step does not overwrite (as SyncVectorEnv's);
    a wrong number of actions is an error, not a silently ignored or missing action."""
    venv = ThreadedVectorEnv([TalkativeEnv] * 4, 2, copy=True, autoreset_mode=SAME_STEP)
    venv.reset(seed=0)
    first = venv.step(np.zeros(4, int))[0]
    saved = first.copy()
    venv.step(np.zeros(4, int))
    assert np.array_equal(first, saved)
    with pytest.raises(ValueError, match="3 actions for 4 environments"):
        venv.step(np.zeros(3, int))
    venv.close()


def test_only_same_step_autoreset_and_no_env_built_otherwise():
    built = []
    with pytest.raises(ValueError, match="SAME_STEP autoreset only"):
        ThreadedVectorEnv([lambda: built.append(1) or TalkativeEnv()] * 2, 2,
                          autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    assert built == []


def test_make_vector_env_threads_on_pong_equals_inline():
    """Pong: make_vector_env's 'threads' (a group per core) and a ThreadedVectorEnv of 2
    groups give the observations, rewards and flags of 'inline' for 150 steps from the same
    seed."""
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from asyncrl.atari import AtariPreprocessed
    from asyncrl.config import Config

    factory = EnvFactory("ALE/Pong-v5").configured(Config.from_dict({"env": "ALE/Pong-v5"}))
    ref, thr = make_vector_env(factory, 4, "inline"), make_vector_env(factory, 4, "threads")
    two = ThreadedVectorEnv([factory] * 4, 2, copy=False, autoreset_mode=SAME_STEP)
    assert isinstance(thr, ThreadedVectorEnv) and not isinstance(ref, ThreadedVectorEnv)
    assert isinstance(thr.envs[0], AtariPreprocessed) and len(thr._groups) == min(4, available_cores())
    assert len(two._groups) == 2
    first = ref.reset(seed=11)
    assert_same(first, thr.reset(seed=11))
    assert_same(first, two.reset(seed=11))
    rng = np.random.default_rng(1)
    for _ in range(150):
        actions = rng.integers(6, size=4)
        a = ref.step(actions)
        assert_same(a, thr.step(actions))
        assert_same(a, two.step(actions))
    for v in (ref, thr, two):
        v.close()
