"""Fixtures of the evaluation tests."""

import pytest

from tests.eval.eval_inputs import write_baseline
from tests.support.datasets import write_dataset


@pytest.fixture
def cartpole_inputs(tmp_path):
    """Baseline (random 22) and dataset (expert 500) files for CartPole-v1."""
    baseline = write_baseline(tmp_path / "baselines" / "CartPole-v1.json", "CartPole-v1", 22.0, 500)
    dataset = write_dataset(tmp_path / "datasets" / "CartPole-v1.h5", "CartPole-v1", 500.0)
    return baseline, dataset
