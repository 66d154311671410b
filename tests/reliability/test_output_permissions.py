"""Outputs get the permissions the user's umask gives, not mkstemp's private 0600.

Every stage writes through :func:`workflow_scripts.provenance.atomic_path` (a temporary
file beside the output, renamed into place); on a shared cluster file system the group
must be able to read ``results/`` when the umask says so.
"""

from __future__ import annotations

import os
import stat

import pytest

from workflow_scripts.provenance import atomic_path, current_umask, write_json


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_umasks_permissions(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    write_json(tmp_path / "results" / "record.json", {"score": 1.0})
    with atomic_path(tmp_path / "results" / "table.md", suffix=".md") as tmp:
        tmp.write_text("| env |\n")
    for name in ("record.json", "table.md"):
        assert stat.S_IMODE((tmp_path / "results" / name).stat().st_mode) == mode, name
