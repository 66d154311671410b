"""Model snapshots for learning curves: written by the training core, whole, across kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.datasets import write_env_dataset
from tests.support.model_folders import tiny_qwen_command
from tests.support.tiny_models import TINY_DM_RUN, TINY_QWEN3, as_flags


def _dm_command(tmp_path: Path, datasets: list[Path], run: str) -> list[str]:
    values = TINY_DM_RUN | {"max_steps": 120, "checkpoint_every": 40, "snapshot_every": 30}
    folder = tmp_path / run
    return [
        sys.executable, "-m", "workflow_scripts.train_dm", "--threads", "1",
        "--datasets", *map(str, datasets), "--output", str(folder / "final"),
        "--checkpoint-dir", str(folder / "checkpoints"),
        "--snapshot-dir", str(folder / "snapshots"), *as_flags(values),
    ]  # fmt: skip


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def _kill_after_staged_snapshot(command: list[str], staged: Path) -> None:
    """Start ``command`` and SIGKILL it as soon as ``staged`` (a snapshot folder) exists."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not staged.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {staged} before the run ended: {process.stderr.read()}")
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_dm_snapshots_survive_a_kill_whole_and_equal_an_uninterrupted_run(tmp_path):
    from workflow_scripts.dm.modeling_dm import DecisionModel
    from workflow_scripts.dm.policy import load_policy

    datasets = [
        write_env_dataset(tmp_path / "CartPole-v1.h5", "CartPole-v1", 300, seed=1),
        write_env_dataset(tmp_path / "Pendulum-v1.h5", "Pendulum-v1", 300, seed=2),
    ]
    killed = _dm_command(tmp_path, datasets, "killed")
    staging = tmp_path / "killed" / "checkpoints" / "snapshots"
    # Killed after the step-60 snapshot, before the step-80 checkpoint: the retry resumes
    # from step 40 and writes snapshot 60 again.
    _kill_after_staged_snapshot(killed, staging / "step60")
    assert not (tmp_path / "killed" / "snapshots").exists()  # published only when complete
    for folder in staging.iterdir():  # staged snapshots are whole or have a hidden name
        assert folder.name.startswith(".") or (folder / "training.json").is_file()

    resumed = subprocess.run(killed, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    straight = subprocess.run(_dm_command(tmp_path, datasets, "straight"), capture_output=True)
    assert straight.returncode == 0, straight.stderr

    published = tmp_path / "killed" / "snapshots"
    assert sorted(path.name for path in published.iterdir()) == [
        "step120", "step30", "step60", "step90",
    ]  # fmt: skip
    assert not any(staging.iterdir())  # moved, not copied
    for step in (30, 60, 90, 120):
        reference = _weights(tmp_path / "straight" / "snapshots" / f"step{step}")
        snapshot = _weights(published / f"step{step}")
        assert all(torch.equal(reference[name], snapshot[name]) for name in reference), step
        progress = json.loads((published / f"step{step}" / "training.json").read_text())
        record = progress["progress"]
        # batch_size windows of sequence_length / 2 transitions per step, 2 positions each.
        per_step = TINY_DM_RUN["batch_size"] * TINY_DM_RUN["sequence_length"] // 2
        assert record["step"] == step and record["transitions_seen"] == step * per_step
        assert record["tokens_seen"] == 2 * record["transitions_seen"]
        assert record["train_hours"] > 0 and record["device_hours"] == record["train_hours"]
    final = _weights(tmp_path / "killed" / "final")
    last = _weights(published / "step120")
    assert all(torch.equal(final[name], last[name]) for name in final)
    # Loadable as the final model is: from_pretrained and the evaluation policy.
    model = DecisionModel.from_pretrained(published / "step30")
    assert model.config.env_ids == ["CartPole-v1", "Pendulum-v1"]
    policy = load_policy(published / "step30", "CartPole-v1", "cpu")
    policy.reset()
    assert policy.act(torch.zeros(4).numpy(), None, None) in (0, 1)


def test_qwen_writes_snapshots_loadable_by_from_pretrained(tmp_path):
    from transformers import AutoModelForCausalLM

    command = tiny_qwen_command(
        tmp_path, "--snapshot-dir", str(tmp_path / "snapshots"), max_steps=4, snapshot_every=2
    )
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for step in (2, 4):
        folder = tmp_path / "snapshots" / f"step{step}"
        record = json.loads((folder / "training.json").read_text())["progress"]
        assert record["step"] == step and record["tokens_seen"] > 0
        assert record["transitions_seen"] > 0
        model = AutoModelForCausalLM.from_pretrained(folder)
        assert model.config.hidden_size == TINY_QWEN3["hidden_size"]
        assert (folder / "qwen_envs.json").is_file()


def test_snapshot_every_needs_a_folder_to_publish_in(tmp_path):
    from workflow_scripts.dm.train import TrainSettings

    with pytest.raises(ValueError, match="snapshot_every needs a snapshot_dir"):
        TrainSettings(
            datasets=["x.h5"], output=tmp_path / "final", checkpoint_dir=tmp_path / "ck",
            **(TINY_DM_RUN | {"snapshot_every": 2}),
        )  # fmt: skip


# --------------------------------------------------------------------------- the plan (light)
def test_snapshot_plan_seeds_and_the_protocols_needs():
    from workflow_scripts.snapshots import (
        curve_seeds,
        kept_snapshot_steps,
        protocol_problems,
        snapshot_steps,
        table_snapshot_steps,
    )

    section = {"max_steps": 3000, "snapshot_every": 600, "keep_snapshots": 2}
    curves = {"seeds_per_snapshot": 3, "first_seed": 1000}
    assert snapshot_steps(section) == [600, 1200, 1800, 2400, 3000]
    assert kept_snapshot_steps(section) == [2400, 3000]  # the rest are temp outputs
    assert kept_snapshot_steps(section | {"keep_snapshots": None}) == snapshot_steps(section)
    assert snapshot_steps(section | {"snapshot_every": 0}) == []
    seeds = [curve_seeds(section, curves, step) for step in snapshot_steps(section)]
    assert seeds[0] == [1000, 1001, 1002] and seeds[-1] == [1012, 1013, 1014]
    assert len({seed for group in seeds for seed in group}) == 15  # each its own seeds
    evaluation = {"protocol": "last_evaluations", "last_evaluations": 10, "curves": curves}
    assert table_snapshot_steps(section, evaluation) == [1200, 1800, 2400, 3000]  # 4 x 3 >= 10
    config = {"models": ["dm"], "dm": section, "evaluation": evaluation}
    assert protocol_problems(config) == []
    short = {**config, "dm": section | {"snapshot_every": 1500}}  # 2 snapshots x 3 = 6 < 10
    (problem,) = protocol_problems(short)
    assert problem.startswith("evaluation.protocol: last_evaluations needs 10 evaluations")
    assert "dm has 2 snapshot(s)" in problem
    assert protocol_problems({**short, "evaluation": evaluation | {"protocol": "final"}}) == []
