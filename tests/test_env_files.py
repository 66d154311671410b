"""Finding each env's file among a stage's inputs by the env id the file declares."""

from __future__ import annotations

import json

import pytest

from tests.support.datasets import write_dataset
from workflow_scripts.env_files import dataset_env, files_by_env, json_env


def write_baseline(path, env_id):
    path.write_text(json.dumps({"env_id": env_id, "mean_return": 0.0}))
    return path


def test_files_are_matched_by_the_env_they_declare_not_their_names(tmp_path):
    # Names that say nothing (or the wrong thing): only the content counts.
    first = write_baseline(tmp_path / "a.json", "Pendulum-v1")
    second = write_baseline(tmp_path / "CartPole-v1.json", "Taxi-v3")
    found = files_by_env([first, second], ["Taxi-v3", "Pendulum-v1"], json_env, "baseline")
    assert found == {"Pendulum-v1": first, "Taxi-v3": second}


def test_two_files_of_one_env_or_an_env_without_a_file_are_refused(tmp_path):
    first = write_baseline(tmp_path / "a.json", "Taxi-v3")
    second = write_baseline(tmp_path / "b.json", "Taxi-v3")
    with pytest.raises(ValueError, match="two baseline files of Taxi-v3"):
        files_by_env([first, second], ["Taxi-v3"], json_env, "baseline")
    with pytest.raises(ValueError, match="no baseline file of CartPole-v1 among the 1 given"):
        files_by_env([first], ["Taxi-v3", "CartPole-v1"], json_env, "baseline")


def test_dataset_env_reads_the_file_attributes(tmp_path):
    path = write_dataset(tmp_path / "data.h5", "CartPole-v1", expert_mean_return=10.0)
    assert dataset_env(path) == "CartPole-v1"
