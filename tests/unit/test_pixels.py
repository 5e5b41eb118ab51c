"""Pixels beyond Atari (asyncrl.pixels): frame skip, resize, gray or colour, frame stack on
any image env, exactly on a toy env and in shapes, dtypes and frame skip on ViZDoom and
CarRacing (a few steps each, no training); ViZDoom ids work without importing vizdoom;
--pixels auto picks colour for them and the paper's preset."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from asyncrl.config import Config
from asyncrl.envs import EnvFactory
from asyncrl.errors import EnvError
from asyncrl.pixels import PixelOptions, PixelPreprocessing
from asyncrl.presets import pixel_mode

pytest.importorskip("cv2")


class Counter(gym.Env):
    """Frames [60, 80, 3] filled with the number of steps taken (R = t, G = 2t, B = 3t);
    reward 1 per step; terminated at step 10."""

    observation_space = gym.spaces.Box(0, 255, (60, 80, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def _frame(self):
        return np.broadcast_to(np.array([self.t, 2 * self.t, 3 * self.t], np.uint8), (60, 80, 3)).copy()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        return self._frame(), 1.0, self.t >= 10, False, {"t": self.t}


def test_frame_skip_sums_rewards_stacks_the_last_frames_and_stops_at_the_end():
    env = PixelPreprocessing(Counter(), PixelOptions(frame_skip=3, frame_stack=2, screen_size=36, grayscale=False),
                             "counter")
    assert env.observation_space == gym.spaces.Box(0, 255, (6, 36, 36), np.uint8)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 36, 36) and obs.dtype == np.uint8
    assert (obs == 0).all()                          # the stack starts as copies of the first frame
    obs, reward, term, trunc, info = env.step(0)
    assert reward == 3.0 and info["t"] == 3 and not term
    assert obs[:3, 0, 0].tolist() == [0, 0, 0] and obs[3:, 0, 0].tolist() == [3, 6, 9]   # oldest first
    obs, reward, *_ = env.step(0)
    assert obs[:3, 5, 5].tolist() == [3, 6, 9] and obs[3:, 5, 5].tolist() == [6, 12, 18]
    env.step(0)
    obs, reward, term, trunc, info = env.step(0)     # steps 10-12: the episode ends at 10
    assert (reward, term, info["t"]) == (1.0, True, 10)


def test_grayscale_gives_one_channel_per_frame():
    env = PixelPreprocessing(Counter(), PixelOptions(frame_skip=1, frame_stack=4, screen_size=40), "counter")
    env.reset(seed=0)
    obs, *_ = env.step(0)
    assert obs.shape == (4, 40, 40)
    gray = round(0.299 * 1 + 0.587 * 2 + 0.114 * 3)   # OpenCV's RGB -> gray weights
    assert obs[-1, 0, 0] == gray and obs[0, 0, 0] == 0


def test_pixels_auto_covers_vizdoom_and_carracing_only():
    assert pixel_mode("VizdoomMyWayHome-v1", "auto") == "color"
    assert pixel_mode("CarRacing-v3", "auto") == "color"
    assert pixel_mode("CartPole-v1", "auto") is None and pixel_mode(None, "auto") is None
    assert pixel_mode("CartPole-v1", "gray") == "gray" and pixel_mode("CarRacing-v3", "off") is None
    # a factory's env is preprocessed when asked for, with the config's sizes
    factory = EnvFactory(Counter).configured(Config(algo="a3c", env="x", pixels="gray", frame_skip=2,
                                                    frame_stack=3, screen_size=48))
    assert factory.pixels == PixelOptions(2, 3, 48, True)
    assert factory().observation_space.shape == (3, 48, 48)


def test_pixels_on_an_env_without_images_is_refused_naming_it():
    with pytest.raises(EnvError, match="environment 'CartPole-v1' has no image observations"):
        EnvFactory("CartPole-v1").configured(Config(algo="a3c", env="CartPole-v1", pixels="gray"))()


def test_vizdoom_ids_work_without_importing_vizdoom_and_are_preprocessed(monkeypatch, tmp_path):
    pytest.importorskip("vizdoom")
    monkeypatch.chdir(tmp_path)                        # ViZDoom writes _vizdoom.ini where it runs
    cfg = Config(algo="a3c", env="VizdoomHealthGatheringSupreme-v1")
    env = EnvFactory(cfg.env).configured(cfg)()
    try:
        space = env.observation_space
        assert isinstance(space, gym.spaces.Dict)
        assert space["screen"] == gym.spaces.Box(0, 255, (12, 84, 84), np.uint8)   # 4 colour frames
        assert space["gamevariables"].shape == (1,)                                 # passed through
        obs, _ = env.reset(seed=0)
        assert obs["screen"].shape == (12, 84, 84) and obs["screen"].dtype == np.uint8
        game = env.unwrapped.game
        tic = game.get_episode_time()
        obs, reward, term, trunc, _ = env.step(0)
        assert game.get_episode_time() - tic == 4              # one agent step = 4 game tics
        assert obs["screen"].shape == (12, 84, 84) and obs["gamevariables"].dtype == np.float32
    finally:
        env.close()


def test_carracing_is_preprocessed_in_colour_with_frame_skip():
    pytest.importorskip("Box2D")
    cfg = Config(algo="a3c", env="CarRacing-v3", frame_skip=2, frame_stack=2)
    env = EnvFactory(cfg.env).configured(cfg)()
    try:
        assert env.observation_space == gym.spaces.Box(0, 255, (6, 84, 84), np.uint8)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (6, 84, 84) and obs.dtype == np.uint8
        t0 = env.unwrapped.t
        obs, reward, *_ = env.step(np.array([0.0, 1.0, 0.0], np.float32))
        assert env.unwrapped.t - t0 == pytest.approx(2 / 50)   # two physics steps of 1/50 s
        assert obs.shape == (6, 84, 84)
    finally:
        env.close()


def test_vizdoom_gets_the_papers_preset_and_a_shared_cnn(monkeypatch, tmp_path):
    pytest.importorskip("vizdoom")
    monkeypatch.chdir(tmp_path)
    import asyncrl
    from asyncrl.nets.multi import DictTorso

    agent = asyncrl.A3C("VizdoomMyWayHome-v1", workers=1, progress=False)
    assert agent.config.preset == "paper" and agent.config.pixels == "auto"
    assert isinstance(agent.model.torso, DictTorso) and type(agent.model.torso.parts[0]).__name__ == "AtariCNN"
    assert agent.model.value_torso is None             # policy and value share the CNN, as on Atari
