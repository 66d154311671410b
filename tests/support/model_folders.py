"""Trained model folders for tests: a tiny DM trained for a few steps, as train_dm writes
it, and the train_qwen command of a tiny Qwen3 run with its inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import TINY_DM_RUN, TINY_QWEN3, TINY_QWEN_RUN, as_flags


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


def tiny_qwen_command(folder: Path, *flags: str, **changes) -> list[str]:
    """The ``python -m workflow_scripts.train_qwen`` command of a :data:`TINY_QWEN_RUN` run
    (one CPU thread, a random-init :data:`TINY_QWEN3`, 256-token windows) on a 200-row
    random CartPole-v1 dataset and its token budgets, both written into ``folder`` here.

    ``changes`` override the run's settings (``max_steps=4``); ``flags`` are appended
    (``"--snapshot-dir", ...``). The model goes to ``folder / "final"``, checkpoints to
    ``folder / "checkpoints"``.
    """
    from workflow_scripts.qwen_budgets import main as budgets_cli

    dataset = write_env_dataset(folder / "CartPole-v1.h5", "CartPole-v1", 200, seed=0)
    budgets = folder / "budgets.json"
    budgets_cli(
        ["--datasets", str(dataset), "--max-seq-length", "256", "--sample-rows", "200"]
        + ["--output", str(budgets)]
    )
    values = TINY_QWEN_RUN | {"max_seq_length": 256} | changes
    return [
        sys.executable, "-m", "workflow_scripts.train_qwen", "--threads", "1",
        "--datasets", str(dataset), "--budgets", str(budgets),
        "--random-init", json.dumps(TINY_QWEN3), "--no-gradient-checkpointing",
        "--output", str(folder / "final"), "--checkpoint-dir", str(folder / "checkpoints"),
        *as_flags(values), *flags,
    ]  # fmt: skip
