"""Videos of evaluation episodes (`asyncrl eval --video FILE`, `agent.evaluate(video=...)`).

The evaluation env is made with render_mode="rgb_array" and its frames (one after the
reset and one per agent step) are streamed to the writer: MP4 (H.264) through
imageio-ffmpeg, or GIF through Pillow. The file appears only when it is complete (written
under a temporary name in the same folder, then renamed)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import ConfigError, EnvError
from .paths import check_output_file

FORMATS = (".mp4", ".gif")
DEFAULT_FPS = 30


def check_video_path(path: str) -> str:
    """The video's format (its extension) once the path is usable, else a ConfigError."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ConfigError(f"video file {path!r} must end in .mp4 or .gif")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"video file {path!r}: {folder!r} is not a folder")
    problem = check_output_file(path, "video file")     # before any episode is played
    if problem:
        raise ConfigError(problem)
    try:
        import imageio  # noqa: F401
    except ImportError:
        raise ConfigError(f"writing {path!r} needs imageio: pip install 'asyncrl[video]'") from None
    if ext == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError(f"writing {path!r} needs imageio-ffmpeg: pip install 'asyncrl[video]' "
                              f"(or give a .gif file)") from None
    return ext


class VideoRecorder:
    """Collects the rendered frames of the first `episodes` evaluation episodes into one file."""

    #: what the evaluation env must be made with
    make_kwargs = {"render_mode": "rgb_array"}

    def __init__(self, path: str, episodes: int = 1):
        self.ext = check_video_path(path)
        if episodes < 1:
            raise ConfigError(f"video episodes must be >= 1, got {episodes}")
        self.path, self.episodes = path, episodes
        self.frames = 0
        self._writer: Any = None
        self._tmp = ""
        self._shape: tuple[int, ...] | None = None
        # pygame (Gymnasium's classic-control renderer) opens an audio device when it starts;
        # a headless machine has none and would print ALSA errors
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")     # nor a display (rgb_array needs none)
        if not os.environ.get("DISPLAY"):
            # MuJoCo renders off-screen through EGL where there is no X display (GLFW needs one)
            os.environ.setdefault("MUJOCO_GL", "egl")

    def add(self, env: Any, env_name: str) -> None:
        """Append env.render() (an RGB frame) to the video."""
        try:
            frame = env.render()
        except Exception as exc:   # e.g. gymnasium's DependencyNotInstalled for pygame
            text = str(exc).strip().splitlines()
            raise EnvError(f"cannot record a video of {env_name!r}: {text[0] if text else type(exc).__name__}") \
                from None
        frame = np.asarray(frame) if frame is not None else None
        if frame is None or frame.ndim != 3 or frame.shape[2] not in (3, 4):
            got = "nothing" if frame is None else f"an array of shape {frame.shape}"
            raise EnvError(f"cannot record a video of {env_name!r}: render() returned {got}, not an RGB "
                           f"frame; a factory's env must be made with render_mode='rgb_array'")
        frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
        if self.ext == ".mp4" and (frame.shape[0] % 2 or frame.shape[1] % 2):   # H.264 4:2:0 needs even sizes
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)))
        if self._writer is None:
            self._open(env)
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise EnvError(f"cannot record a video of {env_name!r}: its frames changed size from "
                           f"{self._shape} to {frame.shape}")
        self._writer.append_data(frame)
        self.frames += 1

    def _open(self, env: Any) -> None:
        import imageio.v2 as imageio

        fps = float((getattr(env, "metadata", None) or {}).get("render_fps") or DEFAULT_FPS)
        folder, name = os.path.split(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        self._tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp{self.ext}")
        if self.ext == ".mp4":
            self._writer = imageio.get_writer(self._tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                              macro_block_size=1, ffmpeg_log_level="error")
        else:
            self._writer = imageio.get_writer(self._tmp, format="GIF", mode="I", duration=1000.0 / fps, loop=0)

    def close(self, ok: bool = True) -> None:
        """Finish the file (ok) or discard what was written (an evaluation that failed)."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except BaseException:
            ok = False
            raise
        finally:
            if ok:
                os.replace(self._tmp, self.path)
            elif os.path.exists(self._tmp):
                os.remove(self._tmp)
