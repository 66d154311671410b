"""``enjoy``: an expert, a random policy or a trained model plays, in a window or into an mp4,
through the evaluation's own episode loop."""

import json
import re
import sys

import pytest

from tests.support.model_folders import train_tiny_dm
from workflow_scripts.dm.policy import load_policy
from workflow_scripts.enjoy import enjoy, main
from workflow_scripts.evaluate import evaluate_policy
from workflow_scripts.video import info_path, read_video_info


@pytest.fixture(scope="module")
def tiny_dm(tmp_path_factory):
    """A tiny DM trained on CartPole-v1: its final folder."""
    return train_tiny_dm(tmp_path_factory.mktemp("tiny_dm"))


def test_deterministic_returns_are_those_of_the_experts_own_check(tiny_expert, capsys):
    check = json.loads(tiny_expert.summary.read_text())["deterministic_check"]
    experts_dir = str(tiny_expert.folder.parent)
    argv = ["--env", "CartPole-v1", "--experts-dir", experts_dir]
    main(argv + ["--episodes", str(check["n_episodes"]), "--seed", str(check["seed"])])
    printed = capsys.readouterr().out
    returns = [float(value) for value in re.findall(r"return (-?[\d.]+),", printed)]
    assert len(returns) == check["n_episodes"]
    mean = re.search(r"mean return over \d+ episodes: (-?[\d.]+) ± (-?[\d.]+)", printed)
    assert float(mean.group(1)) == pytest.approx(check["mean_return"], abs=0.005)
    assert float(mean.group(2)) == pytest.approx(check["std_return"], abs=0.005)


def test_sampled_episodes_are_seeded(tiny_expert):
    experts_dir = tiny_expert.folder.parent
    first = enjoy("CartPole-v1", experts_dir, n_episodes=2, seed=4, deterministic=False)
    second = enjoy("CartPole-v1", experts_dir, n_episodes=2, seed=4, deterministic=False)
    assert first == second and len(first) == 2


def test_missing_expert_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--env", "CartPole-v1", "--experts-dir", str(tmp_path)])
    assert "no trained expert for CartPole-v1" in capsys.readouterr().err


def test_recorded_expert_video_holds_its_episodes(tiny_expert, tmp_path):
    video = tmp_path / "expert.mp4"
    main(["--env", "CartPole-v1", "--experts-dir", str(tiny_expert.folder.parent),
          "--episodes", "2", "--seed", "7", "--record", str(video)])  # fmt: skip
    record = json.loads(info_path(video).read_text())
    assert record["player"]["kind"] == "expert" and record["player"]["actions"] == "deterministic"
    assert [episode["seed"] for episode in record["episodes"]] == [7, 8]
    info = read_video_info(video)
    assert info.frames == sum(episode["length"] + 1 for episode in record["episodes"])
    assert (info.width, info.height) == (600, 400)


def test_a_models_video_is_its_evaluation_episode(tiny_dm, tmp_path):
    video = tmp_path / "seed3.mp4"
    (recorded,) = enjoy("CartPole-v1", model="dm", model_dir=tiny_dm, n_episodes=1, seed=3,
                        max_episode_steps=200, device="cpu", record=video)  # fmt: skip
    policy = load_policy(tiny_dm, "CartPole-v1", "cpu")
    evaluated = evaluate_policy(policy, "CartPole-v1", 3, 10.0, 200.0, max_episode_steps=200)
    assert (recorded.episode_return, recorded.length) == (evaluated["return"], evaluated["length"])
    record = json.loads(info_path(video).read_text())
    assert record["player"]["model"] == "dm" and len(record["player"]["model_sha256"]) == 64
    assert record["max_episode_steps"] == 200 and record["out_of_bounds"] == "clip"
    assert read_video_info(video).frames == recorded.length + 1


def test_random_player_is_seeded():
    first = enjoy("Pendulum-v1", model="random", n_episodes=1, seed=2, max_episode_steps=20)
    second = enjoy("Pendulum-v1", model="random", n_episodes=1, seed=2, max_episode_steps=20)
    assert first == second and first[0].length == 20


def test_an_env_without_episode_cap_is_refused():
    with pytest.raises(ValueError, match="CliffWalking-v0 has no episode cap"):
        enjoy("CliffWalking-v0", model="random", n_episodes=1)


def test_watching_opens_a_window(monkeypatch, capsys):
    # SDL's dummy driver stands in for a display: the env draws its window every step.
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    main(["--env", "CartPole-v1", "--model", "random", "--episodes", "1",
          "--max-episode-steps", "5", "--render"])  # fmt: skip
    assert "5 steps" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "random", "--render"], "--render needs a display"),
        (["--model", "random", "--record", "x.gif"], "--record takes an .mp4 path"),
        (["--model", "dm", "--sample"], "--sample is for the expert"),
        (["--model", "random", "--render", "--record", "x.mp4"], "not allowed with argument"),
    ],
)
def test_bad_requests_are_refused(argv, message, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(SystemExit):
        main(["--env", "CartPole-v1", *argv])
    assert message in capsys.readouterr().err


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained dm model folder"):
        enjoy("CartPole-v1", model="dm", model_dir=tmp_path / "nothing", n_episodes=1)
