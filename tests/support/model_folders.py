"""Trained model folders for tests: a tiny DM trained for a few steps, as train_dm writes it."""

from __future__ import annotations

from pathlib import Path

from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import TINY_DM_RUN


def train_tiny_dm(folder: Path, env_ids=("CartPole-v1",), n_transitions: int = 600) -> Path:
    """Train a :data:`TINY_DM_RUN` Decision Model (4 steps, about a second) on heuristic
    (CartPole, Pendulum) or random datasets of ``env_ids``; return its final folder,
    ``folder / "final"``, laid out as ``results/models/dm/final``."""
    from tests.support.controllers import HEURISTICS
    from workflow_scripts.dm.train import TrainSettings, train

    folder.mkdir(parents=True, exist_ok=True)
    datasets = [
        write_env_dataset(
            folder / f"{env_id}.h5",
            env_id,
            n_transitions,
            seed=index,
            policy="heuristic" if env_id in HEURISTICS else "random",
        )
        for index, env_id in enumerate(env_ids)
    ]
    settings = TrainSettings(
        datasets=datasets,
        output=folder / "final",
        checkpoint_dir=folder / "checkpoints",
        scan_data=False,
        **TINY_DM_RUN,
    )
    return train(settings)
