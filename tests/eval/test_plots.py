"""Figures: the score panels and the expert-curve grid are written from small inputs."""

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from eval_inputs import write_baseline, write_scores, write_seed_record

from tests.support.datasets import write_dataset
from workflow_scripts.plots import plot_expert_curves, plot_normalized_scores, read_monitor

ENVS = ["CartPole-v1", "Pendulum-v1", "FrozenLake-v1"]


def write_monitor(path, n_episodes, with_timesteps=True):
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 200, size=n_episodes)
    returns = np.linspace(0, 100, n_episodes) + rng.normal(0, 5, n_episodes)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "r,l,t,timesteps" if with_timesteps else "r,l,t"
    rows = []
    for index, (episode_return, length) in enumerate(zip(returns, lengths, strict=True)):
        row = f"{episode_return:.6g},{length},{index * 0.5:.6g}"
        rows.append(row + (f",{lengths[: index + 1].sum()}" if with_timesteps else ""))
    path.write_text('#{"env_id": "x"}\n' + header + "\n" + "\n".join(rows) + "\n")


@pytest.fixture
def results(tmp_path):
    """Per-seed records, monitor logs, baselines and datasets for three envs."""
    rng = np.random.default_rng(1)
    write_scores(
        tmp_path / "eval",
        {(model, env): list(rng.normal(60, 15, 4)) for model in ("dm", "qwen") for env in ENVS},
    )
    write_seed_record(tmp_path / "eval", "qwen", "Pendulum-v1", 2, 0.0, failure="bad JSON")
    for index, env_id in enumerate(ENVS):
        write_monitor(
            tmp_path / "experts" / env_id / "monitor.csv", n_episodes=[30, 700, 120][index]
        )
        write_baseline(tmp_path / "baselines" / f"{env_id}.json", env_id, 10.0, None)
        write_dataset(tmp_path / "datasets" / f"{env_id}.h5", env_id, 90.0)
    return tmp_path


@pytest.mark.parametrize("models", [["dm", "qwen"], ["dm"]])
def test_normalized_score_panels(results, models):
    output = results / "plots" / "normalized_scores.png"
    plot_normalized_scores(results / "eval", models, ENVS, [0, 1, 2, 3], output, {"dm": "DM"})
    height, width, _ = matplotlib.image.imread(output).shape
    assert width > height > 200  # three panels side by side
    assert not list(output.parent.glob(".*partial"))


def test_expert_curve_grid(results):
    output = results / "plots" / "expert_curves.png"
    plot_expert_curves(
        ENVS, results / "experts", results / "baselines", results / "datasets", output
    )
    height, width, _ = matplotlib.image.imread(output).shape
    assert width > height > 200


def test_plain_monitor_log_gets_cumulative_timesteps(tmp_path):
    path = tmp_path / "monitor.csv"
    path.write_text('#{"t_start": 0}\nr,l,t\n5,10,2.0\n3,20,1.0\n')
    episodes = read_monitor(path)
    # Wall-time order first (the episode ending at t=1.0), then the running sum of lengths.
    assert episodes["r"].tolist() == [3, 5]
    assert episodes["timesteps"].tolist() == [20, 30]


def test_expert_stage_monitor_log_keeps_its_timesteps(tmp_path):
    path = tmp_path / "monitor.csv"
    write_monitor(path, n_episodes=5)
    episodes = read_monitor(path)
    assert episodes["timesteps"].tolist() == episodes["l"].cumsum().tolist()


@pytest.mark.parametrize(
    ("text", "problem"),
    [("r,l,t\n1,2,3\n", "not an SB3 Monitor log"), ("#{}\nr,l\n1,2\n", "lacks column")],
)
def test_bad_monitor_log_is_named(tmp_path, text, problem):
    path = tmp_path / "monitor.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem):
        read_monitor(path)


def test_missing_monitor_log_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere/monitor\.csv"):
        read_monitor(tmp_path / "nowhere" / "monitor.csv")


def test_cli(results):
    command = [
        sys.executable, "-m", "workflow_scripts.plots", "--eval-dir", str(results / "eval"),
        "--experts-dir", str(results / "experts"), "--baselines-dir", str(results / "baselines"),
        "--datasets-dir", str(results / "datasets"), "--models", "dm", "qwen",
        "--envs", *ENVS, "--seeds", "0", "1", "2", "3", "--display-name", "qwen=Qwen3-tiny",
        "--scores-png", str(results / "out" / "scores.png"),
        "--curves-png", str(results / "out" / "curves.png"),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert (results / "out" / "scores.png").stat().st_size > 10_000
    assert (results / "out" / "curves.png").stat().st_size > 10_000
