"""Training: the loss falls, kill-and-resume is exact, NaN and foreign checkpoints are refused, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.support.tiny_models import TINY_DM_RUN, as_flags
from workflow_scripts.dm import train as train_module
from workflow_scripts.dm.modeling_dm import DecisionModel
from workflow_scripts.dm.policy import load_policy
from workflow_scripts.dm.train import TrainSettings, train
from workflow_scripts.training import (
    CheckpointMismatch,
    TrainingDiverged,
    learning_rate_factor,
    list_checkpoints,
)

# A short run: every value the config would give (the settings have no defaults for them).
TINY_RUN = TINY_DM_RUN | dict(
    batch_size=4, max_steps=8, warmup_steps=2, weight_decay=0.1, checkpoint_every=3,
    log_every=4, seed=11,
)  # fmt: skip


def settings(tmp_path, datasets, **overrides) -> TrainSettings:
    values = dict(
        datasets=datasets,
        output=tmp_path / "final",
        checkpoint_dir=tmp_path / "checkpoints",
        scan_data=False,
        **TINY_RUN,
    )
    values.update(overrides)
    return TrainSettings(**values)


def cli_flags(**changes) -> list[str]:
    """TINY_RUN as command-line flags, with ``changes`` applied."""
    values = TINY_RUN | changes
    return as_flags(values)


def test_schedule_warms_up_then_decays_to_the_floor():
    run = settings(
        Path("run"),
        ["x.h5"],
        max_steps=100,
        warmup_steps=10,
        learning_rate=1e-3,
        min_learning_rate=1e-4,
    )
    factors = [learning_rate_factor(step, run) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert factors[100] == pytest.approx(0.1)


def test_loss_falls_on_a_small_dataset(tmp_path, tiny_datasets, capsys):
    train(
        settings(
            tmp_path,
            tiny_datasets[:2],
            max_steps=60,
            log_every=10,
            checkpoint_every=100,
            learning_rate=1e-2,
            min_learning_rate=1e-3,
            tensorboard_dir=tmp_path / "tb",
        )
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(lines) == 6 and "tokens/s" in lines[-1] and "steps/s" in lines[-1]

    def env_loss(line: str, env_id: str) -> float:
        return float(line.split(f"{env_id} ")[1].split()[0])

    # Per env: CartPole's 2-way loss starts near ln 2, Pendulum's 1024-way near ln 1024.
    assert env_loss(lines[-1], "CartPole-v1") < 0.6 * env_loss(lines[0], "CartPole-v1")
    assert env_loss(lines[-1], "Pendulum-v1") < env_loss(lines[0], "Pendulum-v1") - 0.7
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_killed_run_resumes_to_the_same_weights(tmp_path, tiny_datasets):
    uninterrupted = train(settings(tmp_path / "a", tiny_datasets))
    # "Killed" after 4 steps (checkpoints at 3 and 4, as a kill between 4 and 5 would leave).
    assert train(settings(tmp_path / "b", tiny_datasets, max_steps_this_run=4)) is None
    assert [step for step, _ in list_checkpoints(tmp_path / "b" / "checkpoints")] == [3, 4]
    resumed = train(settings(tmp_path / "b", tiny_datasets))
    reference = load_file(uninterrupted / "model.safetensors")
    final = load_file(resumed / "model.safetensors")
    assert reference.keys() == final.keys()
    assert all(torch.equal(reference[name], final[name]) for name in reference)
    summary = json.loads((resumed / "training.json").read_text())
    assert summary["steps"] == 8 and summary["parameters"] > 0


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_datasets, monkeypatch):
    original = DecisionModel.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:  # step 5: after the checkpoint at step 3
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(DecisionModel, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 5 .*last good checkpoint .*step_00000003"):
        train(settings(tmp_path, tiny_datasets))
    assert [step for step, _ in list_checkpoints(tmp_path / "checkpoints")] == [3]
    assert not (tmp_path / "final").exists()


def test_checkpoint_of_another_configuration_is_refused(tmp_path, tiny_datasets):
    train(settings(tmp_path, tiny_datasets, max_steps_this_run=3))
    before = (tmp_path / "checkpoints" / "step_00000003" / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointMismatch, match="hidden_size: checkpoint 32 vs now 64"):
        train(settings(tmp_path, tiny_datasets, hidden_size=64))
    with pytest.raises(CheckpointMismatch, match="learning_rate"):
        train(settings(tmp_path, tiny_datasets, learning_rate=1e-2))
    # Refused, not touched: the checkpoint is still there, byte for byte.
    assert (tmp_path / "checkpoints" / "step_00000003" / "model.safetensors").read_bytes() == before


def test_cli_trains_a_loadable_self_contained_model(tmp_path, tiny_datasets):
    output = tmp_path / "models" / "final"
    command = [
        sys.executable,
        "-m",
        "workflow_scripts.train_dm",
        "--datasets",
        *map(str, tiny_datasets),
        "--output",
        str(output),
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        "--tensorboard-dir",
        str(tmp_path / "tb"),
        "--threads",
        "1",
        "--eval-slide-transitions",
        "3",
        *cli_flags(
            max_steps=4,
            warmup_steps=1,
            batch_size=3,
            checkpoint_every=2,
            log_every=2,
            num_workers=1,
        ),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "step 4/4" in result.stdout and "parameters" in result.stdout
    assert {"config.json", "model.safetensors", "training.json", "README.md"} <= {
        path.name for path in output.iterdir()
    }
    policy = load_policy(output, "Pendulum-v1", device="cpu")
    assert policy.slide_transitions == 3
    action = policy.act(np.zeros(3, np.float32), None, None)
    assert action.shape == (1,) and action.dtype == np.float32 and -2 <= action[0] <= 2
    # A rerun finds the finished checkpoint and only rewrites the final folder.
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert (
        rerun.returncode == 0 and "resumed from" in rerun.stdout and "step 1/" not in rerun.stdout
    )


def test_cli_reports_a_bad_dataset_by_name(tmp_path):
    bad = tmp_path / "CartPole-v1.h5"
    bad.write_bytes(b"not hdf5")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow_scripts.train_dm",
            "--datasets",
            str(bad),
            "--output",
            str(tmp_path / "o"),
            "--checkpoint-dir",
            str(tmp_path / "c"),
            *cli_flags(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "CartPole-v1.h5: cannot be opened as HDF5" in result.stderr


def test_module_exposes_the_training_entry_point():
    assert callable(train_module.train)
