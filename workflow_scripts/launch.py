"""Start a training module on every GPU of the allocation, or once on the CPU.

Training rules call ``python -m workflow_scripts.launch workflow_scripts.train_dm ARGS``.
Inside a SLURM job with GPUs this becomes
``torchrun --standalone --nproc_per_node <GPUs allocated> -m workflow_scripts.train_dm ARGS``;
on a machine without CUDA it runs the module in this process's interpreter. The GPU count
comes from the allocation (SLURM, then CUDA_VISIBLE_DEVICES), never a hard-coded 8, and
is capped by what CUDA can actually see.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys


def gpus_in_allocation(environ: dict[str, str] | None = None) -> int:
    """GPUs the scheduler gave this job: SLURM_GPUS_ON_NODE, else CUDA_VISIBLE_DEVICES."""
    environ = os.environ if environ is None else environ
    slurm_gpus = environ.get("SLURM_GPUS_ON_NODE", "").strip()
    if slurm_gpus.isdigit():
        return int(slurm_gpus)
    visible = environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible and visible not in ("-1", "NoDevFiles"):
        return len([device for device in visible.split(",") if device.strip()])
    return 0


def cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def build_command(
    module: str, module_args: list[str], allocated_gpus: int, visible_gpus: int
) -> tuple[list[str], str]:
    """The command to run and a one-line explanation for the log."""
    n_processes = min(allocated_gpus, visible_gpus) if allocated_gpus else visible_gpus
    if n_processes >= 1:
        torchrun = shutil.which("torchrun") or "torchrun"
        command = [torchrun, "--standalone", f"--nproc_per_node={n_processes}", "-m", module]
        reason = f"{n_processes} GPU process(es): allocation has {allocated_gpus}, CUDA sees {visible_gpus}"
    else:
        command = [sys.executable, "-m", module]
        reason = (
            f"CPU, one process (allocation advertises {allocated_gpus} GPU(s), CUDA sees none)"
            if allocated_gpus
            else "CPU, one process (no GPU)"
        )
    return command + module_args, reason


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="module to run, e.g. workflow_scripts.train_dm")
    parser.add_argument("module_args", nargs=argparse.REMAINDER, help="arguments for the module")
    args = parser.parse_args(argv)
    command, reason = build_command(
        args.module, args.module_args, gpus_in_allocation(), cuda_device_count()
    )
    print(f"[launch] {reason}: {' '.join(command)}", flush=True)
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
