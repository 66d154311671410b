"""Fixtures for the fault-injection tests: one tiny workflow run, built once, to copy from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.reliability_helpers import (
    clone_workflow,
    final_targets,
    tiny_config,
    write_overlay,
)
from tests.support.workflow import copy_workflow, snakemake


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


@pytest.fixture
def built_copy(built_workflow, tmp_path) -> Path:
    """A private copy of :func:`built_workflow` a test may change."""
    return clone_workflow(built_workflow, tmp_path / "workflow")
