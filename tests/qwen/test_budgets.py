"""Per-env context budgets, for every env of the demo config, and the budgets CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.support.datasets import write_env_dataset
from workflow_scripts.config import merge_config
from workflow_scripts.dataset import read_info
from workflow_scripts.qwen.budgets import (
    BudgetError,
    budgets_from_datasets,
    read_sample_blocks,
    transition_token_counts,
)
from workflow_scripts.qwen.data import tokenize_window
from workflow_scripts.qwen_budgets import main as budgets_cli

PAPER_MAX_SEQ_LENGTH = 16384


def demo_config(repo_root):
    # Merged as Snakemake merges --configfile overlays (other sections are checked elsewhere).
    base, demo = (
        yaml.safe_load((repo_root / name).read_text())
        for name in ("config.yaml", "config.demo.yaml")
    )
    return merge_config(base, demo)


@pytest.fixture(scope="module")
def demo_datasets(tmp_path_factory, repo_root):
    folder = tmp_path_factory.mktemp("demo_datasets")
    envs = demo_config(repo_root)["envs"]
    return [
        write_env_dataset(folder / f"{env_id}.h5", env_id, 600, seed)
        for seed, env_id in enumerate(envs)
    ]


def test_every_demo_env_gets_a_budget_that_fits(demo_datasets, encoder, repo_root):
    config = demo_config(repo_root)
    for max_seq_length in (PAPER_MAX_SEQ_LENGTH, config["qwen"]["max_seq_length"]):
        budgets = budgets_from_datasets(
            encoder, demo_datasets, max_seq_length, quantile=0.99, sample_rows=600, seed=0
        )
        assert sorted(budgets) == sorted(config["envs"])
        for path in demo_datasets:
            info = read_info(path)
            budget = budgets[info.env_id]
            n_max = budget["n_transitions_max"]
            system_tokens = budget["system_prompt_tokens"]
            per_transition = budget["tokens_per_transition"]["quantile"]
            # The most transitions that fit at the quantile's length, and not one more.
            assert system_tokens + n_max * per_transition <= max_seq_length
            assert system_tokens + (n_max + 1) * per_transition > max_seq_length
            if max_seq_length == PAPER_MAX_SEQ_LENGTH:
                # The paper: "between a few dozen and a few hundred transitions".
                assert 24 <= n_max <= 600, (info.env_id, n_max)
            # Real windows of that many rows fit (the quantile covers them).
            import h5py

            with h5py.File(path, "r") as handle:
                n_rows = min(n_max, info.n_transitions)
                for start in range(0, info.n_transitions - n_rows + 1, max(1, n_rows // 2)):
                    rows = {
                        name: handle[name][start : start + n_rows]
                        for name in (
                            "observations",
                            "actions",
                            "rewards",
                            "terminated",
                            "truncated",
                        )
                    }
                    window = tokenize_window(
                        encoder,
                        info.env_id,
                        info.observation_space,
                        info.action_space,
                        **rows,
                        max_seq_length=max_seq_length,
                    )
                    assert len(window.input_ids) <= max_seq_length
                    assert window.n_transitions >= n_rows - 1


def test_token_counts_grow_with_the_printed_numbers(encoder, tmp_path):
    path = write_env_dataset(tmp_path / "Pendulum-v1.h5", "Pendulum-v1", 50, 0)
    info, blocks = read_sample_blocks(path, 50, 0)
    counts = transition_token_counts(encoder, info.observation_space, info.action_space, blocks[0])
    assert len(counts) == 49
    # Qwen tokenizes digits one by one: longer numbers, more tokens.
    short = blocks[0]
    short.observations = np.round(short.observations, 1)
    short.actions = np.round(short.actions, 1)
    short.rewards = np.round(short.rewards, 1)
    fewer = transition_token_counts(encoder, info.observation_space, info.action_space, short)
    assert fewer.mean() < counts.mean() - 10


def test_budget_error_when_one_transition_does_not_fit(demo_datasets, encoder):
    with pytest.raises(BudgetError, match="do not fit max_seq_length 120"):
        budgets_from_datasets(encoder, demo_datasets[:1], 120, 0.99, 600, 0)


def test_budgets_cli_writes_json_and_markdown(demo_datasets, tmp_path):
    output, markdown = tmp_path / "budgets.json", tmp_path / "budgets.md"
    budgets_cli(
        [
            "--datasets",
            str(demo_datasets[0]),
            "--random-policy-envs",
            "Acrobot-v1",
            "--random-policy-rows",
            "200",
            "--sample-rows",
            "300",
            "--output",
            str(output),
            "--markdown",
            str(markdown),
        ]
    )
    budgets = json.loads(output.read_text())
    dataset_env = read_info(demo_datasets[0]).env_id
    assert budgets["max_seq_length"] == PAPER_MAX_SEQ_LENGTH
    assert budgets["envs"][dataset_env]["source"] == "dataset"
    assert budgets["envs"]["Acrobot-v1"]["source"] == "random_policy"
    assert budgets["envs"]["Acrobot-v1"]["n_transitions_measured"] == 199
    table = markdown.read_text()
    assert f"| {dataset_env} | expert dataset (`{demo_datasets[0]}`) |" in table
    assert "| Acrobot-v1 | random policy (estimate) | Box(6) | Discrete(3) |" in table
    with pytest.raises(BudgetError, match="both as dataset and random policy"):
        budgets_cli(
            [
                "--datasets",
                str(demo_datasets[0]),
                "--random-policy-envs",
                dataset_env,
                "--output",
                str(tmp_path / "x.json"),
            ]
        )
