"""Videos: the mp4 writer, frames of an episode (T + 1), headless settings, MuJoCo off-screen,
and the demo DM's CartPole video made by one ``snakemake`` command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from tests.support.model_folders import train_tiny_dm
from tests.support.workflow import QUIET_ENV, copy_workflow, job_counts, planned_outputs, snakemake
from workflow_scripts.video import (
    FrameRecorder,
    Mp4Writer,
    expert_video,
    has_display,
    info_path,
    model_video,
    prepare_headless_rendering,
    read_video_info,
    render_fps,
)

CARTPOLE_SIZE = (600, 400)  # width, height of CartPole-v1's rgb_array frames


def test_layout():
    assert str(model_video("dm", "CartPole-v1", 3)) == "results/videos/dm/CartPole-v1/seed3.mp4"
    assert str(expert_video("Hopper-v4")) == "results/videos/experts/Hopper-v4.mp4"
    assert info_path(model_video("dm", "CartPole-v1", 3)).name == "seed3.json"


def test_written_frames_are_read_back(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = [np.full((64, 96, 3), 40 * index, dtype=np.uint8) for index in range(5)]
    with Mp4Writer(path, fps=10) as writer:
        for frame in frames:
            writer.add(frame)
    assert writer.info().frames == 5
    info = read_video_info(path)
    assert (info.frames, info.width, info.height, info.fps) == (5, 96, 64, 10.0)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no partial file left


def test_a_failed_recording_leaves_no_file(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(ValueError, match="frame 1 is 32x32, the video"):
        with Mp4Writer(path, fps=10) as writer:
            writer.add(np.zeros((64, 96, 3), dtype=np.uint8))
            writer.add(np.zeros((32, 32, 3), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_an_episode_of_t_steps_gives_t_plus_one_frames(tmp_path):
    frames = []
    env = FrameRecorder(gym.make("CartPole-v1", render_mode="rgb_array"), frames.append)
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(steps % 2)
        steps += 1
        done = terminated or truncated
    assert render_fps(env) == 50
    env.close()
    assert len(frames) == steps + 1
    assert frames[0].shape == (CARTPOLE_SIZE[1], CARTPOLE_SIZE[0], 3)


def test_recording_needs_rgb_array():
    with pytest.raises(ValueError, match="rgb_array"):
        FrameRecorder(gym.make("CartPole-v1"), lambda frame: None)


def test_headless_settings_only_without_a_display(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    headless: dict[str, str] = {}
    assert prepare_headless_rendering(headless) == "egl"
    assert headless == {"MUJOCO_GL": "egl", "SDL_VIDEODRIVER": "dummy"}
    chosen = {"MUJOCO_GL": "osmesa"}
    assert prepare_headless_rendering(chosen) == "osmesa"  # the user's choice is kept
    with_display = {"DISPLAY": ":0"}
    assert has_display(with_display)
    assert prepare_headless_rendering(with_display) is None and "MUJOCO_GL" not in with_display


def test_mujoco_renders_off_screen_without_a_display(tmp_path):
    # A process of its own: MuJoCo reads MUJOCO_GL when first imported.
    environ = {
        key: value
        for key, value in QUIET_ENV.items()
        if key not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL")
    }
    video = tmp_path / "pendulum.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.enjoy", "--model", "random",
         "--env", "InvertedPendulum-v4", "--episodes", "1", "--max-episode-steps", "5",
         "--record", str(video)],
        env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(info_path(video).read_text())
    assert record["render"]["MUJOCO_GL"] == "egl"
    info = read_video_info(video)
    assert info.frames == record["episodes"][0]["length"] + 1
    assert (info.width, info.height) == (480, 480)


@pytest.fixture(scope="module")
def demo_with_trained_dm(tmp_path_factory):
    """A copy of the workflow under the demo config where everything upstream of the DM's
    videos is up to date: the DM folder is a tiny DM really trained on CartPole-v1, the
    other upstream outputs are placeholders older than it (nothing reads them)."""
    workdir = tmp_path_factory.mktemp("video_demo")
    copy_workflow(workdir)
    demo = ["--configfile", "config.demo.yaml"]
    target = str(model_video("dm", "CartPole-v1", 0))
    plan = snakemake(workdir, "-n", "--forceall", target, *demo)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    tiny_dm = train_tiny_dm(tmp_path_factory.mktemp("tiny_dm"))
    start = 1_700_000_000
    outputs = planned_outputs(plan.stdout)
    assert outputs[-2:] == [target, str(info_path(target))], outputs
    for index, path in enumerate(outputs[:-2]):
        output = workdir / path
        output.parent.mkdir(parents=True, exist_ok=True)
        if path == "results/models/dm/final":
            shutil.copytree(tiny_dm, output)
        elif not output.exists():
            output.write_text("placeholder")
        os.utime(output, (start + index, start + index))
    return workdir, demo, target


def test_demo_dm_video_on_cartpole_from_one_snakemake_command(demo_with_trained_dm):
    workdir, demo, target = demo_with_trained_dm
    plan = snakemake(workdir, "-n", target, *demo)
    assert job_counts(plan.stdout) == {"video": 1}, plan.stdout + plan.stderr

    run = snakemake(workdir, target, "--cores", "1", *demo, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    record = json.loads((workdir / info_path(target)).read_text())
    (episode,) = record["episodes"]
    info = read_video_info(workdir / target)
    # One frame after reset and one after every step.
    assert info.frames == episode["length"] + 1 == record["video"]["frames"]
    assert (info.width, info.height) == CARTPOLE_SIZE
    assert info.fps == 50
    assert episode["seed"] == 0 and record["max_episode_steps"] == 500
    assert record["player"]["model"] == "dm"
    log = (workdir / "logs/video/dm/CartPole-v1/seed0.log").read_text()
    assert re.search(rf"video: .*seed0\.mp4 \({info.frames} frames, 600x400", log)
