"""The training core: settings and CLI, checkpoint store, and a stop signal in both trainers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.datasets import write_env_dataset
from tests.support.model_folders import tiny_qwen_command
from tests.support.tiny_models import TINY_DM_RUN, TINY_OPTIMISATION, as_flags
from workflow_scripts.distributed import DistributedContext
from workflow_scripts.training import (
    EXIT_INTERRUPTED,
    CheckpointMismatch,
    CheckpointStore,
    TrainingSettings,
    list_checkpoints,
    option,
    settings_parser,
    slurm_job_end,
)

CPU = DistributedContext(0, 0, 1, torch.device("cpu"), None)
OPTIMISATION = TINY_OPTIMISATION | {"max_steps": 10, "warmup_steps": 2, "checkpoint_every": 5}


@dataclass(kw_only=True)
class ToySettings(TrainingSettings):
    width: int = option("a model's width")
    mode: str = option("a choice", default="a", choices=("a", "b"))


def toy_settings(tmp_path: Path, **changes) -> ToySettings:
    values = dict(
        datasets=["x.h5"], output=tmp_path / "final", checkpoint_dir=tmp_path / "ck", width=4
    )
    return ToySettings(**(values | OPTIMISATION | changes))


# --------------------------------------------------------------------------- settings and CLI
def test_cli_flags_come_from_the_fields_with_help_and_no_invented_defaults():
    parser = settings_parser(ToySettings, "toy")
    text = parser.format_help()
    assert "--width WIDTH" in text and "a model's width" in text
    assert "--max-steps-this-run" in text and "--no-scan-data" in text
    # A value the config gives has no default: omitting it is an error, not a silent 30000.
    with pytest.raises(SystemExit):
        parser.parse_args(["--datasets", "x.h5", "--output", "o", "--checkpoint-dir", "c"])
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in OPTIMISATION.items()]
    args = parser.parse_args(
        ["--datasets", "x.h5", "--output", "o", "--checkpoint-dir", "c", "--width", "8", *flags]
    )
    settings = ToySettings(**vars(args))
    assert settings.width == 8 and settings.mode == "a" and settings.output == Path("o")
    assert settings.datasets == [Path("x.h5")] and settings.scan_data is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"warmup_steps": 11}, "warmup_steps: 11 exceeds max_steps 10"),
        ({"min_learning_rate": 1e-2}, "min_learning_rate: 0.01 exceeds learning_rate"),
        ({"checkpoint_every": 0}, "checkpoint_every must be at least 1"),
        ({"datasets": []}, "no datasets given"),
    ],
)
def test_inconsistent_settings_are_refused_by_name(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        toy_settings(tmp_path, **change)


# --------------------------------------------------------------------------- checkpoints
def test_checkpoint_store_writes_whole_folders_prunes_and_resumes_only_its_run(tmp_path):
    saved = []
    store = CheckpointStore(tmp_path, keep=2, fingerprint={"a": {"lr": 1}}, ctx=CPU)

    def save(folder):
        (folder / "weights.txt").write_text(str(len(saved)))
        saved.append(folder.name)
        rng_at_save.append(torch.get_rng_state())

    rng_at_save = []
    torch.manual_seed(7)
    for step in (5, 10, 15):
        torch.rand(1)
        store.save(step, save)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [10, 15]
    assert all(name.startswith(".step_") and name.endswith(".partial") for name in saved)
    # A folder without trainer_state.json (a save cut short) is not a checkpoint.
    (tmp_path / "step_00000020").mkdir()
    assert [step for step, _ in list_checkpoints(tmp_path)] == [10, 15]

    torch.manual_seed(123)
    loaded = []
    fresh = CheckpointStore(tmp_path, keep=2, fingerprint={"a": {"lr": 1}}, ctx=CPU)
    assert fresh.resume(lambda folder: loaded.append(folder.name)) == 15
    assert loaded == ["step_00000015"] and fresh.last == tmp_path / "step_00000015"
    # The RNG state of the checkpoint is back: the draws after a resume are the saved run's.
    assert torch.equal(torch.get_rng_state(), rng_at_save[-1])

    other = CheckpointStore(tmp_path, keep=2, fingerprint={"a": {"lr": 2}}, ctx=CPU)
    with pytest.raises(CheckpointMismatch, match=r"a\.lr: checkpoint 1 vs now 2"):
        other.resume(lambda folder: None)


# --------------------------------------------------------------------------- stop signals
def _run_until_first_step_then_signal(command: list[str], signum: int) -> tuple[int, str]:
    """Start ``command``, send ``signum`` once it has logged a step, return (code, stderr)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("step "):
            process.send_signal(signum)
            break
    process.stdout.read()
    stderr = process.stderr.read()
    return process.wait(timeout=300), stderr


def test_a_slurm_job_stops_itself_before_its_time_limit(tmp_path):
    assert slurm_job_end({}) is None
    assert slurm_job_end({"SLURM_JOB_ID": "7", "SLURM_JOB_END_TIME": "1700000000"}) == 1.7e9
    datasets = [write_env_dataset(tmp_path / "CartPole-v1.h5", "CartPole-v1", 300, seed=1)]
    # The job "ends" 602 s from now; the trainer stops 600 s before, with a checkpoint.
    environ = os.environ | {"SLURM_JOB_ID": "7", "SLURM_JOB_END_TIME": str(int(time.time()) + 602)}
    result = subprocess.run(
        [*_dm_command(tmp_path, datasets, "a", 100_000), "--stop-before-time-limit=600"],
        capture_output=True,
        text=True,
        env=environ,
    )
    assert result.returncode == EXIT_INTERRUPTED, result.stderr
    assert "the SLURM time limit: stopped at step" in result.stderr
    assert len(list_checkpoints(tmp_path / "a" / "checkpoints")) == 1


def _dm_command(tmp_path: Path, datasets: list[Path], run: str, max_steps: int = 200) -> list[str]:
    values = TINY_DM_RUN | {"max_steps": max_steps, "checkpoint_every": 10000}
    return [
        sys.executable, "-m", "workflow_scripts.train_dm", "--threads", "1",
        "--datasets", *map(str, datasets), "--output", str(tmp_path / run / "final"),
        "--checkpoint-dir", str(tmp_path / run / "checkpoints"),
        *as_flags(values),
    ]  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGTERM], ids=["SIGUSR1", "SIGTERM"])
def test_dm_stops_on_a_signal_with_a_checkpoint_and_resumes_to_the_same_weights(tmp_path, signum):
    datasets = [
        write_env_dataset(tmp_path / "CartPole-v1.h5", "CartPole-v1", 300, seed=1),
        write_env_dataset(tmp_path / "Pendulum-v1.h5", "Pendulum-v1", 300, seed=2),
    ]
    code, stderr = _run_until_first_step_then_signal(_dm_command(tmp_path, datasets, "b"), signum)
    assert code == EXIT_INTERRUPTED, stderr
    assert f"{signal.Signals(signum).name}: stopped at step" in stderr
    checkpoints = list_checkpoints(tmp_path / "b" / "checkpoints")
    # One checkpoint, at the step the signal arrived (none was due before step 1000).
    assert len(checkpoints) == 1 and 0 < checkpoints[0][0] < 200
    assert not (tmp_path / "b" / "final").exists()

    resumed = subprocess.run(_dm_command(tmp_path, datasets, "b"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {checkpoints[0][1]} (step {checkpoints[0][0]})" in resumed.stdout
    straight = subprocess.run(_dm_command(tmp_path, datasets, "a"), capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    reference = load_file(tmp_path / "a" / "final" / "model.safetensors")
    final = load_file(tmp_path / "b" / "final" / "model.safetensors")
    assert all(torch.equal(reference[name], final[name]) for name in reference)


def test_qwen_stops_on_a_signal_with_a_checkpoint_and_resumes(tmp_path):
    command = tiny_qwen_command(tmp_path, max_steps=300, checkpoint_every=1000)
    code, stderr = _run_until_first_step_then_signal(command, signal.SIGTERM)
    assert code == EXIT_INTERRUPTED, stderr
    (step, _), *others = list_checkpoints(tmp_path / "checkpoints")
    assert not others and 0 < step < 300
    # The rest of the run resumes from that step (its end moved closer to keep the test fast:
    # max_steps does not define a Qwen run, so the checkpoint is still this run's).
    command[command.index("--max-steps=300")] = f"--max-steps={step + 2}"
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "final" / "training.json").read_text())
    assert summary["resumed_from_step"] == step and summary["steps"] == step + 2
