"""House style, checked in CI: ruff (lint and format) for Python, snakefmt for the rules."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECKS = {
    "ruff check": [sys.executable, "-m", "ruff", "check", "."],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "."],
    "snakefmt": [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"],
}


@pytest.mark.parametrize("name", CHECKS)
def test_tree_passes(repo_root, name):
    result = subprocess.run(
        CHECKS[name], cwd=repo_root, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{name} found problems:\n{result.stdout}{result.stderr}"
