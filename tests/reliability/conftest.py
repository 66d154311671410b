"""Fixtures for the fault-injection tests: one tiny workflow run, built once, to copy from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The DM and Qwen test helpers (tiny real-env datasets, a tiny Qwen3 shape) are reused here,
# not copied: their folders go on the path as pytest puts them when it collects those tests.
TESTS = Path(__file__).resolve().parents[1]
for folder in (TESTS / "dm", TESTS / "qwen"):
    if str(folder) not in sys.path:
        sys.path.append(str(folder))

from reliability_helpers import (  # noqa: E402
    clone_workflow,
    copy_workflow,
    final_targets,
    snakemake,
    tiny_config,
    write_overlay,
)


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
