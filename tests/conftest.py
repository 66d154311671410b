"""Shared test set-up: one torch thread (CI has 2 cores), the repository root, tiny datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture
def tiny_ppo_hyperparams(tmp_path):
    """Hyperparameters of a CartPole PPO expert that trains in seconds (3072 steps)."""
    from workflow_scripts.hyperparams import resolve_hyperparams, write_hyperparams

    document = resolve_hyperparams(
        "CartPole-v1", "ppo", 3072, overrides={"n_steps": 256, "batch_size": 64, "n_epochs": 2}
    )
    path = tmp_path / "CartPole-v1.yml"
    write_hyperparams(document, path)
    return path


@pytest.fixture
def tiny_expert(tmp_path, tiny_ppo_hyperparams):
    """A trained tiny CartPole expert: its folder under ``tmp_path / "experts"``."""
    from workflow_scripts.experts.layout import ExpertFiles
    from workflow_scripts.train_expert import train_expert

    files = ExpertFiles.of("CartPole-v1", tmp_path / "experts")
    train_expert(tiny_ppo_hyperparams, files.folder, seed=0, checkpoint_every=1024, eval_episodes=3)
    return files
