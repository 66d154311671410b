"""Disk needs are known before a run, and a dataset that cannot fit is refused up front."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
from gymnasium import spaces

from workflow_scripts import disk_plan
from workflow_scripts.dataset import DatasetWriter


def test_row_bytes_follow_the_dataset_layout():
    # CartPole: 4 float32 observations + one int64 action + reward + two flags
    assert disk_plan.row_bytes(spaces.Box(-1, 1, (4,)), spaces.Discrete(2)) == 16 + 8 + 6
    assert disk_plan.dataset_bytes("Humanoid-v4", 1000) == 1000 * (376 * 4 + 17 * 4 + 6)


def test_full_disk_is_refused_before_any_row(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(disk_plan.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 1000, 1000))
    path = tmp_path / "d.h5"
    with pytest.raises(OSError, match=r"d\.h5 \(100 rows\) needs .* GB free"):
        with DatasetWriter(
            path, 100, spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), {"env_id": "T"}
        ):
            pass
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_the_total(repo_root, tmp_path, capsys):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("envs: [CartPole-v1, Pendulum-v1]\nmodels: []\n")
    disk_plan.main(
        ["--configfile", str(repo_root / "config.yaml"), str(overlay), "--results", str(tmp_path)]
    )
    output = capsys.readouterr().out
    assert "CartPole-v1" in output and "total datasets" in output and "0.52" in output
