"""reference_scores: each env's random and expert scores in one file, each with its source."""

from __future__ import annotations

import json

import pytest

from tests.support.datasets import write_env_dataset
from workflow_scripts.reference_scores import main, reference_scores

ENVS = ["CartPole-v1", "FrozenLake-v1"]


@pytest.fixture
def inputs(tmp_path):
    baselines, datasets, experts = [], [], []
    for index, env in enumerate(ENVS):
        baseline = tmp_path / f"{env}.json"
        baseline.write_text(json.dumps({
            "env_id": env, "policy": "uniform random", "mean_return": 10.0 + index,
            "std_return": 2.0, "stderr_return": 0.2, "n_episodes": 100, "seed": 100000,
            "max_episode_steps": 500,
        }))  # fmt: skip
        baselines.append(baseline)
        datasets.append(
            write_env_dataset(tmp_path / f"{env}.h5", env, 50, expert_mean_return=400.0 + index)
        )
        expert = tmp_path / env / "expert.json"
        expert.parent.mkdir()
        expert.write_text(json.dumps({
            "env_id": env, "algo": "ppo", "quality": {"status": "pass"},
            "deterministic_check": {"n_episodes": 20, "seed": 10000, "mean_return": 450.0,
                                    "std_return": 0.0},
        }))  # fmt: skip
        experts.append(expert)
    return baselines, datasets, experts


def test_each_env_gets_its_three_references_from_its_own_files(inputs):
    baselines, datasets, experts = inputs
    # Given in any order: each file is matched by the env it declares.
    scores = reference_scores(ENVS, baselines[::-1], datasets, experts[::-1])
    assert list(scores["envs"]) == ENVS
    frozen = scores["envs"]["FrozenLake-v1"]
    assert frozen["random"]["mean_return"] == 11.0
    assert frozen["random"]["source"] == str(baselines[1])
    assert frozen["expert_sampled"]["mean_return"] == 401.0  # the normalization's 100%
    assert frozen["expert_sampled"]["source"] == str(datasets[1])
    assert frozen["expert_deterministic"] == {
        "mean_return": 450.0, "std_return": 0.0, "n_episodes": 20, "seed": 10000,
        "quality": "pass", "source": str(experts[1]),
    }  # fmt: skip
    assert "expert_sampled.mean_return" in scores["normalization"]


def test_a_missing_env_is_named_and_nothing_is_written(inputs, tmp_path, capsys):
    baselines, datasets, experts = inputs
    output = tmp_path / "scores.json"
    with pytest.raises(SystemExit) as stopped:
        main(["--envs", *ENVS, "--baselines", str(baselines[0]), "--datasets", *map(str, datasets),
              "--experts", *map(str, experts), "--output", str(output)])  # fmt: skip
    assert stopped.value.code == 1
    assert "no baseline file of FrozenLake-v1" in capsys.readouterr().err
    assert not output.exists()
