"""Episode videos: where they live, how frames are captured headless, how the mp4 is written.

A video shows the episode the evaluation scores: the env is built by
:func:`workflow_scripts.envs.make_env` with ``render_mode="rgb_array"`` and the episode is
played by :func:`workflow_scripts.evaluate.run_episode`; :class:`FrameRecorder` only
watches it. One frame is taken after ``reset`` and one after every ``step``, so an
episode of ``T`` steps gives ``T + 1`` frames (the last one shows the state that ended
it). Several episodes in one file follow each other, ``sum(T_i + 1)`` frames.

Headless rendering: classic control, toy text and Box2D draw with pygame onto an
off-screen surface in ``rgb_array`` mode and need no display (seen here: all nine render
with no display and no SDL setting; only ``env.close()`` then prints a harmless SDL
"XDG_RUNTIME_DIR is invalid" line, which ``SDL_VIDEODRIVER=dummy`` silences). MuJoCo
needs an OpenGL context: without a display :func:`prepare_headless_rendering` selects
``MUJOCO_GL=egl`` (Mesa's software EGL works here; ``osmesa`` needs libOSMesa), before
MuJoCo is imported. docs/publishing.md lists the system packages.

The mp4 is H.264 in yuv420p (what browsers and the Hugging Face Hub play), written by the
ffmpeg binary that the imageio-ffmpeg wheel ships, under a temporary name and moved into
place when the last frame is in. Imports nothing heavy (rule files use the path layout).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

VIDEOS_DIR = Path("results/videos")
# ffmpeg's H.264 encoder in yuv420p needs even sizes; every env here renders even sizes,
# so nothing is padded (imageio-ffmpeg's default block of 16 would pad CartPole to 608).
MACRO_BLOCK_SIZE = 2
CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"
# When an env declares no render_fps.
DEFAULT_FPS = 30
# What a video depends on beyond the tracked packages: the writer, its ffmpeg binary, and
# pygame, which draws classic control, toy text and Box2D; recorded with every video.
VIDEO_PACKAGES = ("imageio", "imageio-ffmpeg", "pygame")


def model_video(
    model: str, env_id: str, seed: int | str, videos_dir: str | os.PathLike = VIDEOS_DIR
) -> Path:
    """The video of ``model``'s evaluation episode of ``env_id`` with env seed ``seed``."""
    return Path(videos_dir) / model / env_id / f"seed{seed}.mp4"


def expert_video(env_id: str, videos_dir: str | os.PathLike = VIDEOS_DIR) -> Path:
    """The video of the expert of ``env_id``."""
    return Path(videos_dir) / "experts" / f"{env_id}.mp4"


def info_path(video: str | os.PathLike) -> Path:
    """The JSON beside a video: what it shows (episodes, policy, hashes) and how it was made."""
    return Path(video).with_suffix(".json")


def has_display(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """Whether a window can open: always on macOS and Windows, with X11 or Wayland on Linux."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def prepare_headless_rendering(environ: dict[str, str] | os._Environ = os.environ) -> str | None:
    """Off-screen rendering settings for a machine without a display; returns ``MUJOCO_GL``.

    Without a display, and unless the user set them: ``MUJOCO_GL=egl`` (GLFW, MuJoCo's
    default, needs a display) and ``SDL_VIDEODRIVER=dummy`` (pygame renders off-screen
    anyway; this only keeps SDL from complaining when the env closes). MuJoCo reads its
    variable when it is first imported, so this runs before any MuJoCo env is made.
    """
    if has_display(environ):
        return environ.get("MUJOCO_GL")
    environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if "MUJOCO_GL" not in environ:
        if "mujoco" in sys.modules:
            # Too late to choose for this process; say so rather than fail obscurely later.
            print(
                "warning: mujoco is already imported; MUJOCO_GL=egl cannot apply to it",
                file=sys.stderr,
            )
        environ["MUJOCO_GL"] = "egl"
    return environ.get("MUJOCO_GL")


def is_mujoco(env: gym.Env) -> bool:
    """Whether ``env`` is one of gymnasium's MuJoCo envs (rendered through OpenGL)."""
    return type(env.unwrapped).__module__.startswith("gymnasium.envs.mujoco")


def render_fps(env: gym.Env) -> int:
    """Frames per second the env declares for rendering (real time), else :data:`DEFAULT_FPS`."""
    fps = env.metadata.get("render_fps") or env.unwrapped.metadata.get("render_fps")
    return int(round(fps)) if fps else DEFAULT_FPS


class FrameRecorder(gym.Wrapper):
    """Hands ``env.render()`` to ``on_frame`` after ``reset`` and after every ``step``.

    It changes nothing the policy sees: observations, rewards and flags pass through. The
    env must have been made with ``render_mode="rgb_array"``.
    """

    def __init__(self, env: gym.Env, on_frame: Callable[[np.ndarray], None]):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"recording needs render_mode='rgb_array', not {env.render_mode!r}")
        self.on_frame = on_frame

    def reset(self, **kwargs):
        result = self.env.reset(**kwargs)
        self._capture()
        return result

    def step(self, action):
        result = self.env.step(action)
        self._capture()
        return result

    def _capture(self) -> None:
        try:
            frame = self.env.render()
        except Exception as error:
            if not is_mujoco(self.env):
                raise
            raise RuntimeError(
                f"{self.env.spec.id if self.env.spec else 'MuJoCo env'}: MuJoCo could not "
                f"render off-screen with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({error!r}). "
                "Install EGL (Debian: libegl1 libgl1-mesa-dri) and set MUJOCO_GL=egl, or "
                "OSMesa (libosmesa6) and MUJOCO_GL=osmesa; see docs/publishing.md"
            ) from error
        self.on_frame(np.asarray(frame))


@dataclass(frozen=True)
class VideoInfo:
    """What an mp4 holds, as read back or as written."""

    frames: int
    width: int
    height: int
    fps: float


class Mp4Writer:
    """Frames (H x W x 3 uint8, all of one size) streamed to ffmpeg, published atomically.

    Use as a context manager: the file appears at ``path`` only when the block ends
    without an exception; a temporary ``.<name>.partial`` beside it is removed otherwise.
    The size is taken from the first frame; a frame of another size is refused.
    """

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        self.fps = float(fps)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height)
        self._writer = None

    def __enter__(self) -> Mp4Writer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial.unlink(missing_ok=True)
        return self

    def add(self, frame: np.ndarray) -> None:
        """Append one RGB frame."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a frame must be H x W x 3 uint8, got {frame.shape} {frame.dtype}")
        size = (frame.shape[1], frame.shape[0])
        if self._writer is None:
            self._open(size)
        elif size != self.size:
            raise ValueError(f"frame {self.frames} is {size[0]}x{size[1]}, the video {self.size}")
        self._writer.send(np.ascontiguousarray(frame))
        self.frames += 1

    def _open(self, size: tuple[int, int]) -> None:
        import imageio_ffmpeg

        self.size = size
        self._writer = imageio_ffmpeg.write_frames(
            str(self.partial),
            size,
            fps=self.fps,
            codec=CODEC,
            pix_fmt_out=PIXEL_FORMAT,
            macro_block_size=MACRO_BLOCK_SIZE,
            ffmpeg_log_level="error",
            # The temporary name has no .mp4 to guess the container from; faststart puts
            # the index first, so a browser starts playing before the whole file is in.
            output_params=["-f", "mp4", "-movflags", "+faststart"],
        )
        self._writer.send(None)  # start ffmpeg

    def info(self) -> VideoInfo:
        """What was written (frames, size, fps)."""
        width, height = self.size or (0, 0)
        return VideoInfo(self.frames, width, height, self.fps)

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if exc_type is None:
                if self.frames == 0:
                    raise ValueError(f"{self.path}: no frame to write")
                os.replace(self.partial, self.path)
        finally:
            self.partial.unlink(missing_ok=True)


def read_video_info(path: str | os.PathLike) -> VideoInfo:
    """Frames (decoded and counted), size and fps of a video file, read back with imageio."""
    import imageio.v2 as imageio

    with imageio.get_reader(str(path), format="FFMPEG") as reader:
        meta: dict[str, Any] = reader.get_meta_data()
        frames = reader.count_frames()
    width, height = meta["size"]
    return VideoInfo(int(frames), int(width), int(height), float(meta["fps"]))
