"""Fixtures for the Qwen tests: the packaged Qwen3 tokenizer, and a tiny random Qwen3 trained
through the CLI on two envs (module-scoped runs, seconds each)."""

from __future__ import annotations

import json

import pytest

from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import TINY_QWEN3
from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer
from workflow_scripts.qwen_budgets import main as budgets_cli
from workflow_scripts.train_qwen import main as train_cli


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="session")
def encoder(tokenizer):
    return ChatMLEncoder(tokenizer)


MAX_SEQ_LENGTH = 384


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen_inputs")
    datasets = [
        write_env_dataset(folder / "CartPole-v1.h5", "CartPole-v1", 400, 0, policy="heuristic"),
        write_env_dataset(folder / "FrozenLake-v1.h5", "FrozenLake-v1", 300, 1),
    ]
    budgets = folder / "budgets.json"
    budgets_cli(
        ["--datasets", *map(str, datasets), "--max-seq-length", str(MAX_SEQ_LENGTH)]
        + ["--sample-rows", "400", "--output", str(budgets)]
    )
    return datasets, budgets


def train_args(inputs, run_dir, **changes) -> list[str]:
    datasets, budgets = inputs
    flags = {
        "--budgets": str(budgets),
        "--output": str(run_dir / "final"),
        "--checkpoint-dir": str(run_dir / "checkpoints"),
        "--tensorboard-dir": str(run_dir / "tensorboard"),
        "--random-init": json.dumps(TINY_QWEN3),
        "--max-seq-length": str(MAX_SEQ_LENGTH),
        "--global-batch-size": "4",
        "--micro-batch-size": "2",
        "--max-steps": "6",
        "--learning-rate": "1e-2",
        "--min-learning-rate": "1e-3",
        "--warmup-steps": "1",
        "--checkpoint-every": "2",
        "--log-every": "1",
        "--num-workers": "0",
        "--display-name": "tiny",
        "--weight-decay": "0.0",
        "--adam-beta1": "0.9",
        "--adam-beta2": "0.95",
        "--grad-clip": "1.0",
        "--seed": "0",
        "--parallelism": "fsdp",
        "--keep-checkpoints": "2",
        "--stop-before-time-limit": "0",
    }
    flags.update(changes)
    pairs = [item for pair in flags.items() for item in pair]
    return ["--datasets", *map(str, datasets), *pairs, "--gradient-checkpointing"]


@pytest.fixture(scope="module")
def trained(inputs, tmp_path_factory):
    """One uninterrupted run through the CLI, with gradient checkpointing on."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train_cli(train_args(inputs, run_dir) + ["--gradient-checkpointing"])
    return run_dir / "final"
