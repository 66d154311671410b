"""Figures: the score panels and the expert-curve grid are written from small inputs."""

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from tests.eval.eval_inputs import write_baseline, write_scores, write_seed_record
from tests.support.datasets import write_dataset
from workflow_scripts.aggregate import TableProtocol
from workflow_scripts.plots import plot_expert_curves, plot_normalized_scores

ENVS = ["CartPole-v1", "Pendulum-v1", "FrozenLake-v1"]


def write_monitor(path, env_id, n_episodes, with_timesteps=True):
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 200, size=n_episodes)
    returns = np.linspace(0, 100, n_episodes) + rng.normal(0, 5, n_episodes)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "r,l,t,timesteps" if with_timesteps else "r,l,t"
    rows = []
    for index, (episode_return, length) in enumerate(zip(returns, lengths, strict=True)):
        row = f"{episode_return:.6g},{length},{index * 0.5:.6g}"
        rows.append(row + (f",{lengths[: index + 1].sum()}" if with_timesteps else ""))
    path.write_text(f'#{{"env_id": "{env_id}"}}\n' + header + "\n" + "\n".join(rows) + "\n")


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
        write_monitor(tmp_path / "experts" / env_id / "monitor.csv", env_id, [30, 700, 120][index])
        write_baseline(tmp_path / "baselines" / f"{env_id}.json", env_id, 10.0, None)
        write_dataset(tmp_path / "datasets" / f"{env_id}.h5", env_id, 90.0)
    return tmp_path


def per_env_files(results):
    """The monitor logs, baselines and datasets the plots rule is given, in its layout."""
    return (
        [results / "experts" / env_id / "monitor.csv" for env_id in ENVS],
        [results / "baselines" / f"{env_id}.json" for env_id in ENVS],
        [results / "datasets" / f"{env_id}.h5" for env_id in ENVS],
    )


def records(results, models=("dm", "qwen")):
    return sorted(path for model in models for path in (results / "eval" / model).rglob("*.json"))


@pytest.mark.parametrize("models", [["dm", "qwen"], ["dm"]])
def test_normalized_score_panels(results, models):
    output = results / "plots" / "normalized_scores.png"
    plot_normalized_scores(
        records(results, models),
        models,
        ENVS,
        TableProtocol("final", (0, 1, 2, 3)),
        output,
        {"dm": "DM"},
    )
    height, width, _ = matplotlib.image.imread(output).shape
    assert width > height > 200  # three panels side by side
    assert not list(output.parent.glob(".*partial"))


def test_expert_curve_grid(results):
    output = results / "plots" / "expert_curves.png"
    monitors, baselines, datasets = per_env_files(results)
    # Each file is found by the env it declares, whatever the order it is given in.
    plot_expert_curves(ENVS, monitors[::-1], baselines, datasets[1:] + datasets[:1], output)
    height, width, _ = matplotlib.image.imread(output).shape
    assert width > height > 200


def test_env_without_its_file_is_named(results):
    monitors, baselines, datasets = per_env_files(results)
    output = results / "plots" / "expert_curves.png"
    with pytest.raises(ValueError, match="no baseline file of Pendulum-v1 among the 2 given"):
        plot_expert_curves(ENVS, monitors, baselines[::2], datasets, output)
    with pytest.raises(ValueError, match="two expert monitor log files of CartPole-v1"):
        plot_expert_curves(ENVS, monitors + monitors[:1], baselines, datasets, output)
    assert not output.exists()


def test_cli(results):
    monitors, baselines, datasets = per_env_files(results)
    command = [
        sys.executable, "-m", "workflow_scripts.plots", "--records", *map(str, records(results)),
        "--monitors", *map(str, monitors), "--baselines", *map(str, baselines),
        "--datasets", *map(str, datasets), "--models", "dm", "qwen",
        "--envs", *ENVS, "--seeds", "0", "1", "2", "3", "--display-name", "qwen=Qwen3-tiny",
        "--scores-png", str(results / "out" / "scores.png"),
        "--curves-png", str(results / "out" / "curves.png"),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert (results / "out" / "scores.png").stat().st_size > 10_000
    assert (results / "out" / "curves.png").stat().st_size > 10_000
