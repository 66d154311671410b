"""Fixtures for the DM tests: tiny real-env datasets and a tiny Decision Model (seconds each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import tiny_dm_config
from workflow_scripts.dm.modeling_dm import DecisionModel


@pytest.fixture(scope="session")
def tiny_datasets(tmp_path_factory) -> list[Path]:
    """CartPole (Box obs, Discrete act), Pendulum (Box/Box), FrozenLake (Discrete/Discrete)."""
    folder = tmp_path_factory.mktemp("dm_datasets")
    return [
        write_env_dataset(
            folder / "CartPole-v1.h5", "CartPole-v1", 600, seed=1, policy="heuristic"
        ),
        write_env_dataset(
            folder / "Pendulum-v1.h5", "Pendulum-v1", 600, seed=2, policy="heuristic"
        ),
        write_env_dataset(
            folder / "FrozenLake-v1.h5", "FrozenLake-v1", 300, seed=3, policy="random"
        ),
    ]


@pytest.fixture
def tiny_model() -> DecisionModel:
    import torch

    torch.manual_seed(0)
    return DecisionModel(tiny_dm_config()).eval()
