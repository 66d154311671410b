"""Fixtures for the fault-injection tests: one tiny workflow run, built once, to copy from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reliability_helpers import copy_workflow, snakemake, tiny_config, write_overlay


def final_targets(config: dict) -> list[str]:
    """Every file of the tiny run: datasets and baselines, and evaluations when a model runs."""
    targets = []
    for env in config["envs"]:
        targets += [f"results/datasets/{env}.h5", f"results/baselines/{env}.json"]
        for model in config["models"]:
            targets += [f"results/eval/{model}/{env}/seed{seed}.json" for seed in config["evaluation"]["seeds"]]  # fmt: skip
    return targets


@pytest.fixture(scope="session")
def built_workflow(tmp_path_factory) -> Path:
    """A workflow copy in which the tiny config has run to completion (do not modify it:
    copy it with :func:`clone_workflow`)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("built") / "workflow")
    config = tiny_config()
    overlay = write_overlay(workdir, config)
    snakemake(
        workdir, "--profile", "profiles/local", "--cores", "2", *final_targets(config),
        "--configfile", overlay, check=True,
    )  # fmt: skip
    return workdir


def clone_workflow(source: Path, destination: Path) -> Path:
    """Copy a workflow folder with its results and Snakemake metadata, keeping file times."""
    shutil.copytree(source, destination, symlinks=True)
    return destination


@pytest.fixture
def built_copy(built_workflow, tmp_path) -> Path:
    """A private copy of :func:`built_workflow` a test may change."""
    return clone_workflow(built_workflow, tmp_path / "workflow")
