"""asyncrl.video: the recorder's checks, padding, and all-or-nothing files."""
import os

import imageio.v2 as imageio
import numpy as np
import pytest

from asyncrl.errors import ConfigError, EnvError
from asyncrl.video import VideoRecorder, check_video_path


class FakeEnv:
    """render() returns the frames given, in turn."""

    metadata = {"render_fps": 10}

    def __init__(self, frames):
        self.frames = list(frames)

    def render(self):
        return self.frames.pop(0)


def _frames(n, h=5, w=7):
    return [np.full((h, w, 3), 30 * i, np.uint8) for i in range(n)]


def test_check_video_path_accepts_mp4_and_gif_only(tmp_path):
    assert check_video_path(str(tmp_path / "a.MP4")) == ".mp4"
    assert check_video_path(str(tmp_path / "new" / "a.gif")) == ".gif"   # the folder is made later
    with pytest.raises(ConfigError, match=r"'x.avi' must end in .mp4 or .gif"):
        check_video_path("x.avi")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a folder"):
        check_video_path(str(tmp_path / "file" / "a.mp4"))


def test_mp4_pads_odd_frames_to_even_sizes_and_keeps_every_frame(tmp_path):
    path = str(tmp_path / "v.mp4")
    rec = VideoRecorder(path)
    env = FakeEnv(_frames(6))
    for _ in range(6):
        rec.add(env, "fake")
    rec.close()
    reader = imageio.get_reader(path)
    assert reader.count_frames() == 6 and rec.frames == 6
    assert reader.get_meta_data()["fps"] == 10.0
    first, last = reader.get_data(0), reader.get_data(5)
    assert first.shape == (6, 8, 3)                      # 5x7 padded with black
    assert abs(int(last[:5, :7].mean()) - 150) <= 10    # the content survives H.264 (lossy)
    assert int(first[:5, :7].mean()) <= 20
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]


def test_gif_keeps_the_frames_and_an_rgba_frame_loses_its_alpha(tmp_path):
    path = str(tmp_path / "v.gif")
    rec = VideoRecorder(path)
    rgba = [np.concatenate([f, np.full((5, 7, 1), 255, np.uint8)], axis=2) for f in _frames(3)]
    env = FakeEnv(rgba)
    for _ in range(3):
        rec.add(env, "fake")
    rec.close()
    frames = imageio.mimread(path)
    assert len(frames) == 3 and frames[2].shape[:2] == (5, 7)
    assert int(frames[2][..., :3].mean()) == 60


def test_a_failed_evaluation_leaves_no_file(tmp_path):
    path = str(tmp_path / "v.mp4")
    rec = VideoRecorder(path)
    rec.add(FakeEnv(_frames(1)), "fake")
    rec.close(ok=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("frame,needle", [
    (None, "render() returned nothing, not an RGB frame; a factory's env must be made with "
           "render_mode='rgb_array'"),
    (np.zeros((4, 4), np.uint8), "render() returned an array of shape (4, 4)"),
])
def test_an_env_that_does_not_render_is_one_clear_error(tmp_path, frame, needle):
    rec = VideoRecorder(str(tmp_path / "v.gif"))
    with pytest.raises(EnvError) as info:
        rec.add(FakeEnv([frame]), "my-env")
    assert str(info.value).startswith("cannot record a video of 'my-env': ") and needle in str(info.value)


def test_frames_that_change_size_are_an_error(tmp_path):
    rec = VideoRecorder(str(tmp_path / "v.gif"))
    env = FakeEnv([np.zeros((4, 4, 3), np.uint8), np.zeros((6, 4, 3), np.uint8)])
    rec.add(env, "e")
    with pytest.raises(EnvError, match=r"changed size from \(4, 4, 3\) to \(6, 4, 3\)"):
        rec.add(env, "e")
    rec.close(ok=False)
    assert os.listdir(tmp_path) == []


def test_api_evaluate_records_and_checks_its_arguments(tmp_path):
    import asyncrl

    agent = asyncrl.A3C("CartPole-v1", workers=1)
    with pytest.raises(ConfigError, match="video episodes must be between 1 and the 2 episodes evaluated, got 3"):
        agent.evaluate(2, video=str(tmp_path / "v.gif"), video_episodes=3)
    res = agent.evaluate(2, video=str(tmp_path / "v.mp4"))
    assert res["video_frames"] == res["returns"][0] + 1      # CartPole: reward 1 per step; + the reset frame
    assert imageio.get_reader(str(tmp_path / "v.mp4")).count_frames() == res["video_frames"]


def test_a_mujoco_env_records_without_a_display(tmp_path, monkeypatch):
    """MuJoCo renders through EGL when there is no X display (its default, GLFW, needs one)."""
    pytest.importorskip("mujoco")
    import asyncrl

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    agent = asyncrl.A3C("InvertedPendulum-v5", workers=1)
    res = agent.evaluate(1, video=str(tmp_path / "ip.mp4"))
    reader = imageio.get_reader(str(tmp_path / "ip.mp4"))
    assert reader.count_frames() == res["video_frames"] == res["mean_length"] + 1
    assert reader.get_data(0).std() > 0          # a picture, not a blank frame
