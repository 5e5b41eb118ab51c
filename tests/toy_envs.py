"""Toy environments for tests, importable as `toy_envs:Id` (Gymnasium imports the module)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np


class DictObsEnv(gym.Env):
    """A Dict observation space no network fits: its entry 'name' is Text."""

    observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,)), "name": gym.spaces.Text(8)})
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"a": np.zeros(2, np.float32), "name": "a"}, {}

    def step(self, action):
        return {"a": np.zeros(2, np.float32), "name": "a"}, 0.0, True, False, {}


class ImageVectorDictEnv(gym.Env):
    """Dict observations of an image and a vector (SB3's MultiInputPolicy kind): 'camera' a
    uint8 [40, 40, 3] picture whose mean brightness is the target, 'state' a float vector
    [position, target]. Action 1 moves the position up, 0 down; reward 1 when it ends on
    the target after 8 steps. With image=False only 'state' (a vector-only Dict); with
    extra=True a third entry, 'flag' (Discrete(3))."""

    def __init__(self, image: bool = True, extra: bool = False):
        entries = {"state": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)}
        if image:
            entries["camera"] = gym.spaces.Box(0, 255, (40, 40, 3), np.uint8)
        if extra:
            entries["flag"] = gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Dict(entries)
        self.action_space = gym.spaces.Discrete(2)
        self.image, self.extra = image, extra

    def _obs(self):
        obs = {"state": np.array([self.pos / 4, self.target / 4], np.float32)}
        if self.image:
            obs["camera"] = np.full((40, 40, 3), 60 * (self.target + 2), np.uint8)
        if self.extra:
            obs["flag"] = self.t % 3
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        self.target = int(self.np_random.integers(-2, 3))
        return self._obs(), {}

    def step(self, action):
        self.pos = int(np.clip(self.pos + (1 if action == 1 else -1), -4, 4))
        self.t += 1
        done = self.t >= 8
        return self._obs(), float(done and self.pos == self.target), done, False, {}


class ChainEnv(gym.Env):
    """A short chain: action 1 moves right, 0 moves left; reward 1 at the right end (terminal).
    Observation: one-hot position as a Discrete space (encoded by the torso)."""

    def __init__(self, n: int = 5):
        self.n = n
        self.observation_space = gym.spaces.Discrete(n)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self.pos, {}

    def step(self, action):
        self.pos = min(self.n - 1, self.pos + 1) if action == 1 else max(0, self.pos - 1)
        done = self.pos == self.n - 1
        return self.pos, float(done), done, False, {}


class ChainWithSuccess(ChainEnv):
    """The chain, saying in its last step's info whether the right end was reached (the
    Gymnasium / SB3 convention, info["is_success"]); 6 steps at most."""

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, done, _, info = super().step(action)
        self.t += 1
        truncated = not done and self.t >= 6
        if done or truncated:
            info = {"is_success": done}
        return obs, reward, done, truncated, info


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, never terminates: only the time limit ends an episode. Under
    correct truncation handling V(s) -> 1/(1-gamma); treating the cut as terminal gives less."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), 1.0, False, False, {}


class TargetActionEnv(gym.Env):
    """One step with a 1-D continuous action in [-1, 1]: reward -(a - target)^2 of the action
    received, the observation constant. The best action is the target (0.6)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, target: float = 0.6):
        self.target = target

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(2, np.float32), {}

    def step(self, action):
        return np.ones(2, np.float32), -float((action[0] - self.target) ** 2), True, False, {}


class ActionSpaceEnv(gym.Env):
    """A one-step env with a given action space, for the spaces an algorithm must refuse."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, action_space: gym.Space):
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


class ExplodingCartPole(gym.Wrapper):
    """CartPole whose every instance raises RuntimeError('boom in env.step') at its own 50th step."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.n = 0

    def step(self, action):
        self.n += 1
        if self.n == 50:
            raise RuntimeError("boom in env.step")
        return super().step(action)


class TextObsEnv(DictObsEnv):
    """Observation space no network fits (Text)."""

    observation_space = gym.spaces.Text(8)

    def reset(self, *, seed=None, options=None):
        gym.Env.reset(self, seed=seed)
        return "a", {}

    def step(self, action):
        return "a", 0.0, True, False, {}


def first_time(marker: str) -> bool:
    """True for the first caller across all processes (creates `marker` atomically)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class FaultOnThirdEpisode(gym.Wrapper):
    """CartPole that fails once in the whole run, at the start of some instance's 3rd episode:
    `fault` "raise" raises RuntimeError('flaky env: 3rd episode'), "hang" sleeps for an hour.
    `marker` (a path that must not exist yet) makes it once across processes."""

    def __init__(self, marker: str, fault: str = "raise"):
        super().__init__(gym.make("CartPole-v1"))
        self.marker, self.fault, self.episodes = marker, fault, 0

    def reset(self, **kwargs):
        self.episodes += 1
        if self.episodes == 3 and first_time(self.marker):
            if self.fault == "hang":
                time.sleep(3600)
            raise RuntimeError("flaky env: 3rd episode")
        return super().reset(**kwargs)


class FailingResetEnv(ConstantRewardEnv):
    """Builds fine (its spaces can be read), then raises on every reset."""

    def reset(self, *, seed=None, options=None):
        raise RuntimeError("this env fails on every reset")


class NaNRewardCartPole(gym.Wrapper):
    """CartPole whose reward is nan at every step (`every` = 1) or only at each instance's
    `at`-th step (`every` = 0): a non-finite loss and gradient for each segment holding one."""

    metadata = {"render_modes": []}     # read from the class by gym.make

    def __init__(self, at: int = 30, every: int = 0):
        super().__init__(gym.make("CartPole-v1"))
        self.n, self.at, self.every = 0, at, every

    def step(self, action):
        obs, reward, term, trunc, info = super().step(action)
        self.n += 1
        if self.n == self.at or (self.every and self.n % self.every == 0):
            reward = float("nan")
        return obs, reward, term, trunc, info


gym.register("UnboundedAction-v0", entry_point=ActionSpaceEnv, max_episode_steps=10,
             kwargs={"action_space": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)})
gym.register("MultiDiscreteAction-v0", entry_point=ActionSpaceEnv, max_episode_steps=10,
             kwargs={"action_space": gym.spaces.MultiDiscrete([2, 3])})
gym.register("TargetAction-v0", entry_point=TargetActionEnv)
gym.register("DictObs-v0", entry_point=DictObsEnv, max_episode_steps=10)
gym.register("TextObs-v0", entry_point=TextObsEnv, max_episode_steps=10)
gym.register("ImageVectorDict-v0", entry_point=ImageVectorDictEnv)
gym.register("VectorDict-v0", entry_point=ImageVectorDictEnv, kwargs={"image": False, "extra": True})
gym.register("FailingReset-v0", entry_point=FailingResetEnv, max_episode_steps=10)
gym.register("NaNRewardOnce-v0", entry_point=NaNRewardCartPole, kwargs={"at": 30})
gym.register("NaNRewardAlways-v0", entry_point=NaNRewardCartPole, kwargs={"every": 1})
gym.register("Chain-v0", entry_point=ChainEnv, max_episode_steps=50)
gym.register("ChainWithSuccess-v0", entry_point=ChainWithSuccess)
gym.register("ConstantReward-v0", entry_point=ConstantRewardEnv, max_episode_steps=20)


class FaultAfterFileCartPole(gym.Wrapper):
    """CartPole that misbehaves at an instance's 3rd step once the file named by the
    environment variable TOY_FAULT_FILE exists (e.g. a run's checkpoints/final.pt: the final
    evaluation, or a later `asyncrl eval`, but no training worker, meets the fault).
    TOY_FAULT: "hang" sleeps for an hour, "sigint" sends SIGINT to this process (once),
    "sleep:S" sleeps S seconds (once per instance)."""

    metadata = {"render_modes": []}     # read from the class by gym.make

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.n, self.done = 0, False

    def step(self, action):
        self.n += 1
        path = os.environ.get("TOY_FAULT_FILE", "")
        if self.n >= 3 and not self.done and path and os.path.exists(path):
            self.done = True
            fault = os.environ.get("TOY_FAULT", "hang")
            if fault == "hang":
                time.sleep(3600)
            elif fault == "sigint":
                import signal

                os.kill(os.getpid(), signal.SIGINT)
            elif fault.startswith("sleep:"):
                time.sleep(float(fault[6:]))
        return super().step(action)


gym.register("FaultAfterFile-v0", entry_point=FaultAfterFileCartPole, max_episode_steps=500)


class EngineCartPole(gym.Wrapper):
    """CartPole that starts a process of its own, as ViZDoom starts its game engine: the
    process ignores SIGTERM and outlives its parent unless something kills it. Its pid is
    written to the folder named by TOY_ENGINE_DIR; close() kills it. With TOY_ENGINE_FAIL_AT=K
    an instance's K-th step raises (a worker that fails, its env not closed)."""

    metadata = {"render_modes": []}     # read from the class by gym.make

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.steps, self.fail_at = 0, int(os.environ.get("TOY_ENGINE_FAIL_AT", "0"))
        code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(900)"
        self.engine = subprocess.Popen([sys.executable, "-c", code])
        folder = os.environ.get("TOY_ENGINE_DIR")
        if folder:
            open(os.path.join(folder, str(self.engine.pid)), "w").close()

    def step(self, action):
        self.steps += 1
        if self.steps == self.fail_at:
            raise RuntimeError("the engine stopped answering")
        return super().step(action)

    def close(self):
        if self.engine.poll() is None:
            self.engine.kill()
            self.engine.wait()
        super().close()


gym.register("EngineCartPole-v0", entry_point=EngineCartPole, max_episode_steps=200)
