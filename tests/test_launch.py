"""Unit tests of workflow_scripts.launch: GPUs counted from the allocation, command built.

Inside a real SLURM job (tests/slurm/test_slurm_cluster.py) the launcher is checked
end to end with SLURM_GPUS_ON_NODE=8 and no CUDA.
"""

import json
import subprocess
import sys

import pytest

from workflow_scripts import launch

MODULE = "workflow_scripts.train_dm"
MODULE_ARGS = ["--config", "run.json", "--output", "results/models/dm/final"]


@pytest.mark.parametrize(
    ("environ", "expected_gpus"),
    [
        ({"SLURM_GPUS_ON_NODE": "8"}, 8),
        ({"SLURM_GPUS_ON_NODE": "1"}, 1),
        # SLURM's count wins over CUDA_VISIBLE_DEVICES when both are set.
        ({"SLURM_GPUS_ON_NODE": "2", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 2),
        ({"SLURM_GPUS_ON_NODE": "", "CUDA_VISIBLE_DEVICES": "0,1,2"}, 3),
        ({"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}, 8),
        ({"CUDA_VISIBLE_DEVICES": "3"}, 1),
        # Spaces and a trailing comma do not count as devices.
        ({"CUDA_VISIBLE_DEVICES": " 0, 1, "}, 2),
        # Devices may be named by UUID rather than index.
        ({"CUDA_VISIBLE_DEVICES": "GPU-8f1c2a4e,GPU-0b9d7e11"}, 2),
        # The ways of saying "no GPU".
        ({"CUDA_VISIBLE_DEVICES": ""}, 0),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, 0),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, 0),
        ({}, 0),
    ],
)
def test_gpus_in_allocation(environ, expected_gpus):
    assert launch.gpus_in_allocation(environ) == expected_gpus


def test_gpus_in_allocation_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "4")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert launch.gpus_in_allocation() == 4


def test_eight_allocated_gpus_without_cuda_are_an_error_unless_allowed():
    with pytest.raises(launch.LaunchError, match="has 8 GPU.s. but CUDA sees none"):
        launch.build_command(MODULE, MODULE_ARGS, allocated_gpus=8, visible_gpus=0)
    command, reason = launch.build_command(
        MODULE, MODULE_ARGS, allocated_gpus=8, visible_gpus=0, allow_cpu=True
    )
    assert command == [sys.executable, "-m", MODULE, *MODULE_ARGS]
    assert "CPU, one process" in reason
    assert "advertises 8 GPU(s)" in reason
    assert "CUDA sees none" in reason


def test_cpu_processes_run_under_this_interpreters_torchrun_with_threads_split():
    command, reason = launch.build_command(
        MODULE, MODULE_ARGS, allocated_gpus=0, visible_gpus=0, cpu_processes=2, threads=6
    )
    assert command == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", MODULE, *MODULE_ARGS, "--threads", "3",
    ]  # fmt: skip
    assert reason == "CPU, 2 processes (gloo), 3 thread(s) each"
    # GPUs win over CPU processes: one process per GPU, each with the job's per-process
    # threads (profiles/slurm: set-threads = cpus_per_task / gpu), as before the launcher
    # learnt CPU processes.
    command, _ = launch.build_command(MODULE, [], 4, 4, cpu_processes=2, threads=8)
    assert "--nproc_per_node=4" in command and command[-2:] == ["--threads", "8"]


def test_no_gpu_anywhere_runs_one_cpu_process():
    command, reason = launch.build_command(MODULE, MODULE_ARGS, allocated_gpus=0, visible_gpus=0)
    assert command == [sys.executable, "-m", MODULE, *MODULE_ARGS]
    assert reason == "CPU, one process (no GPU)"


@pytest.mark.parametrize(
    ("allocated_gpus", "visible_gpus", "expected_processes"),
    [
        (8, 8, 8),
        (1, 1, 1),
        # Never more processes than CUDA can address...
        (8, 4, 4),
        # ...nor than the scheduler granted.
        (2, 8, 2),
        # Outside a scheduler, every GPU CUDA sees.
        (0, 2, 2),
    ],
)
def test_gpus_start_one_torchrun_process_each(allocated_gpus, visible_gpus, expected_processes):
    command, reason = launch.build_command(MODULE, MODULE_ARGS, allocated_gpus, visible_gpus)
    assert command[:4] == [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    assert command[4:] == [
        f"--nproc_per_node={expected_processes}",
        "-m",
        MODULE,
        *MODULE_ARGS,
    ]
    assert reason.startswith(f"{expected_processes} GPU process(es)")


def test_main_reports_and_execs_the_cpu_command(monkeypatch, capsys):
    """SLURM_GPUS_ON_NODE=8 on a machine without CUDA: one CPU process, said clearly."""
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "8")
    monkeypatch.setenv(launch.ALLOW_CPU_VARIABLE, "1")
    monkeypatch.setattr(launch, "cuda_device_count", lambda: 0)
    executed = []
    monkeypatch.setattr(launch.os, "execvp", lambda file, args: executed.append((file, args)))

    launch.main([MODULE, *MODULE_ARGS])

    assert executed == [(sys.executable, [sys.executable, "-m", MODULE, *MODULE_ARGS])]
    printed = capsys.readouterr().out
    assert "[launch] CPU, one process (allocation advertises 8 GPU(s), CUDA sees none" in printed


def test_main_passes_option_like_arguments_through(monkeypatch):
    """Arguments after the module belong to the module, even ones argparse would claim."""
    monkeypatch.delenv("SLURM_GPUS_ON_NODE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(launch, "cuda_device_count", lambda: 0)
    executed = []
    monkeypatch.setattr(launch.os, "execvp", lambda file, args: executed.append(args))

    launch.main([MODULE, "--help", "-x"])

    assert executed == [[sys.executable, "-m", MODULE, "--help", "-x"]]


def test_cli_runs_the_module_on_cpu(tmp_path):
    """The real CLI, exec and all: an 8-GPU allocation on this CPU machine runs the module once."""
    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"answer": 42}))
    environ = {"SLURM_GPUS_ON_NODE": "8", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    refused = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.launch", "json.tool", str(document)],
        capture_output=True, text=True, env=environ, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 1 and "CUDA sees none" in refused.stderr
    assert refused.stdout == ""  # the module never ran
    environ[launch.ALLOW_CPU_VARIABLE] = "1"
    # A CUDA build of torch on a GPU machine would (rightly) start torchrun instead.
    if launch.cuda_device_count() > 0:
        pytest.skip("this machine has CUDA GPUs; the CPU path is not what would run")
    result = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.launch", "json.tool", str(document)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=True,
    )
    assert "allocation advertises 8 GPU(s), CUDA sees none" in result.stdout
    assert json.loads(result.stdout.split("\n", 1)[1]) == {"answer": 42}
