"""Both trainers in 2 CPU processes (torchrun, gloo) through the launcher, as a GPU node runs them.

What a GPU node would do with NCCL, run here with gloo: DDP for the DM, FSDP2 for Qwen.
Only rank 0 writes; a killed 2-process run resumes to the weights of an uninterrupted
one; another process count is refused by name; a 2-process Qwen step equals a 1-process
step of the same global batch; a failing rank ends the job promptly with its own error.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import TINY_DM_RUN, TINY_QWEN3, TINY_QWEN_RUN, as_flags
from workflow_scripts.training import list_checkpoints

ENVIRON = {**os.environ, "OMP_NUM_THREADS": "1"}
DM_RUN = TINY_DM_RUN | {"max_steps": 12, "checkpoint_every": 4, "log_every": 4, "batch_size": 4}


def launch(processes: int, module: str) -> list[str]:
    return [
        sys.executable, "-m", "workflow_scripts.launch", "--cpu-processes", str(processes),
        "--threads", str(processes), module,
    ]  # fmt: skip


def dm_command(datasets: list[Path], run: Path, processes: int = 2, **changes) -> list[str]:
    return [
        *launch(processes, "workflow_scripts.train_dm"), "--datasets", *map(str, datasets),
        "--output", str(run / "final"), "--checkpoint-dir", str(run / "checkpoints"),
        *as_flags(DM_RUN | changes),
    ]  # fmt: skip


def run(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=ENVIRON, timeout=timeout)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("distributed")
    return [
        write_env_dataset(folder / "CartPole-v1.h5", "CartPole-v1", 400, 1, "heuristic"),
        write_env_dataset(folder / "Pendulum-v1.h5", "Pendulum-v1", 400, 2, "heuristic"),
    ]


@pytest.fixture(scope="module")
def uninterrupted(datasets, tmp_path_factory) -> tuple[Path, str]:
    """A whole 2-process DM run: its folder and its log."""
    folder = tmp_path_factory.mktemp("dm_two_processes")
    result = run(dm_command(datasets, folder))
    assert result.returncode == 0, result.stderr
    return folder, result.stdout


def test_dm_in_two_processes_trains_and_only_rank_0_writes(uninterrupted):
    folder, log = uninterrupted
    assert "[launch] CPU, 2 processes (gloo), 1 thread(s) each" in log
    # One line per log interval and one message per checkpoint: rank 0 alone prints.
    assert [line.split(" |")[0] for line in log.splitlines() if line.startswith("step ")] == [
        "step 4/12", "step 8/12", "step 12/12",
    ]  # fmt: skip
    losses = [float(line.split("loss ")[1].split()[0]) for line in log.splitlines()
              if line.startswith("step ")]  # fmt: skip
    assert losses[-1] < losses[0]  # it learns
    assert log.count("[train_dm] checkpoint ") == 3
    assert [step for step, _ in list_checkpoints(folder / "checkpoints")] == [8, 12]
    summary = json.loads((folder / "final" / "training.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 12
    assert not list(folder.glob(".*partial*")) and not list(folder.glob("checkpoints/.*"))


def test_killed_two_process_dm_resumes_to_the_uninterrupted_weights(
    datasets, uninterrupted, tmp_path
):
    process = subprocess.Popen(
        dm_command(datasets, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=ENVIRON, start_new_session=True,
    )  # fmt: skip
    for line in process.stdout:
        if "checkpoint" in line and "step_00000004" in line:
            os.killpg(process.pid, signal.SIGKILL)  # torchrun and both ranks at once
            break
    process.wait(timeout=60)
    assert [step for step, _ in list_checkpoints(tmp_path / "checkpoints")][-1] >= 4
    resumed = run(dm_command(datasets, tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    reference, final = weights(uninterrupted[0] / "final"), weights(tmp_path / "final")
    assert all(torch.equal(reference[name], final[name]) for name in reference)


def test_another_process_count_is_refused_by_name(datasets, uninterrupted, tmp_path):
    (tmp_path / "checkpoints").symlink_to(uninterrupted[0] / "checkpoints")
    result = run(dm_command(datasets, tmp_path, processes=1, max_steps=16))
    assert result.returncode == 1
    assert "optimisation.world_size: checkpoint 2 vs now 1" in result.stderr


def test_ranks_draw_disjoint_windows_that_make_up_the_one_process_batch(datasets):
    from workflow_scripts.dataset import read_info
    from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
    from workflow_scripts.dm.data import WindowBatches

    infos = [read_info(path) for path in datasets]
    config = DecisionModelConfig(
        envs=[env_entry(i.env_id, i.observation_space, i.action_space) for i in infos],
        **{key: DM_RUN[key] for key in ("hidden_size", "num_layers", "num_heads",
                                        "intermediate_size", "sequence_length",
                                        "value_embedding_dim")},
    )  # fmt: skip
    for step in (0, 5, 11):
        ranks = [
            WindowBatches(infos, config, 4, 0, rank, 2).window_indices(step) for rank in (0, 1)
        ]
        alone = WindowBatches(infos, config, 8, 0).window_indices(step)
        assert ranks[0] + ranks[1] == alone  # rank r takes the r-th half of the global batch
        assert ranks[0] != ranks[1]


def test_a_failing_rank_ends_the_job_promptly_with_its_own_error(datasets, tmp_path):
    # The second file is rank 1's to scan: a NaN in it stops rank 1 while rank 0 waits.
    poisoned = tmp_path / "Pendulum-v1.h5"
    poisoned.write_bytes(datasets[1].read_bytes())
    with h5py.File(poisoned, "r+") as handle:
        handle["observations"][7] = np.nan
    started = time.monotonic()
    result = run(dm_command([datasets[0], poisoned], tmp_path / "run"), timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "[rank 1] DatasetError" in result.stderr and "Pendulum-v1.h5" in result.stderr
    assert elapsed < 90, elapsed  # not the 30-minute collective timeout
    assert not (tmp_path / "run" / "final").exists()


@pytest.fixture(scope="module")
def qwen_inputs(tmp_path_factory) -> tuple[Path, Path]:
    from workflow_scripts.qwen_budgets import main as budgets_cli

    folder = tmp_path_factory.mktemp("qwen_distributed")
    dataset = write_env_dataset(folder / "CartPole-v1.h5", "CartPole-v1", 300, 0, "heuristic")
    budgets = folder / "budgets.json"
    budgets_cli(["--datasets", str(dataset), "--max-seq-length", "384", "--sample-rows", "300",
                 "--output", str(budgets)])  # fmt: skip
    return dataset, budgets


def qwen_command(inputs, folder: Path, processes: int, **changes) -> list[str]:
    dataset, budgets = inputs
    values = TINY_QWEN_RUN | {
        "max_steps": 3, "global_batch_size": 4, "micro_batch_size": 2, "checkpoint_every": 3,
    } | changes  # fmt: skip
    return [
        *launch(processes, "workflow_scripts.train_qwen"), "--datasets", str(dataset),
        "--budgets", str(budgets), "--random-init", json.dumps(TINY_QWEN3),
        "--no-gradient-checkpointing", "--output", str(folder / "final"),
        "--checkpoint-dir", str(folder / "checkpoints"), *as_flags(values),
    ]  # fmt: skip


@pytest.mark.parametrize("parallelism", ["fsdp", "ddp"])
def test_qwen_in_two_processes_matches_one_process_on_the_same_global_batch(
    qwen_inputs, tmp_path, parallelism
):
    losses = {}
    for processes in (1, 2):
        folder = tmp_path / f"qwen{processes}"
        # Global batch 8: 4 accumulation passes in 1 process, 2 per process in 2 (so the
        # skipped gradient sync on all but the last pass runs too: FSDP2's and DDP's).
        command = qwen_command(
            qwen_inputs, folder, processes, global_batch_size=8, parallelism=parallelism
        )
        result = run(command, timeout=400)
        assert result.returncode == 0, result.stderr
        summary = json.loads((folder / "final" / "training.json").read_text())
        assert summary["world_size"] == processes
        losses[processes] = [loss for _, loss in summary["losses_this_attempt"]]
    np.testing.assert_allclose(losses[2], losses[1], rtol=1e-4)
    assert losses[2][-1] < losses[2][0]  # and it learns


def test_qwen_fsdp2_in_two_processes_resumes_to_the_uninterrupted_weights(qwen_inputs, tmp_path):
    straight = run(qwen_command(qwen_inputs, tmp_path / "a", 2, max_steps=4, checkpoint_every=2))
    assert straight.returncode == 0, straight.stderr
    # Stopped with a checkpoint after step 2 (the full state gathered from both shards)...
    first = run(qwen_command(qwen_inputs, tmp_path / "b", 2, max_steps=4, checkpoint_every=2,
                             max_steps_this_run=2))  # fmt: skip
    assert first.returncode == 0 and not (tmp_path / "b" / "final").exists(), first.stderr
    # ...and resumed in 2 processes (the state broadcast from rank 0 and resharded).
    second = run(qwen_command(qwen_inputs, tmp_path / "b", 2, max_steps=4, checkpoint_every=2))
    assert second.returncode == 0 and "resumed from" in second.stdout, second.stderr
    reference, final = weights(tmp_path / "a" / "final"), weights(tmp_path / "b" / "final")
    for name in reference:
        torch.testing.assert_close(final[name], reference[name], rtol=1e-5, atol=1e-6)
    # The full-state checkpoint is not tied to a process count: 1 process resumes it too,
    # with the same global batch (now 2 accumulation passes), to the same weights.
    (tmp_path / "c").mkdir()
    shutil.copytree(tmp_path / "b" / "checkpoints" / "step_00000002",
                    tmp_path / "c" / "checkpoints" / "step_00000002")  # fmt: skip
    alone = run(qwen_command(qwen_inputs, tmp_path / "c", 1, max_steps=4, checkpoint_every=2))
    assert alone.returncode == 0 and "(step 2)" in alone.stdout, alone.stderr
    final = weights(tmp_path / "c" / "final")
    for name in reference:
        torch.testing.assert_close(final[name], reference[name], rtol=1e-5, atol=1e-6)
