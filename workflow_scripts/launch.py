"""Start a training module on every GPU of the allocation, or as CPU processes.

Training rules call ``python -m workflow_scripts.launch --cpu-processes N --threads T
workflow_scripts.train_dm ARGS``. Inside a job with GPUs this becomes
``torchrun --standalone --nproc_per_node <GPUs> -m workflow_scripts.train_dm ARGS``; on a
machine without CUDA it runs the module in this interpreter, or, with ``--cpu-processes
N`` > 1, N CPU processes under the running interpreter's torchrun (gloo), each given T / N
threads. The GPU count comes from the allocation (SLURM, then CUDA_VISIBLE_DEVICES), never
a hard-coded 8, and is capped by what CUDA can actually see.

An allocation with GPUs that CUDA cannot see (a CPU build of torch, a driver mismatch) is
an error, not a silent CPU run that would last until the time limit; set
``WORKFLOW_ALLOW_CPU_TRAINING=1`` to train on the CPU anyway (the fake-GPU SLURM test does).
"""

from __future__ import annotations

import argparse
import os
import sys

ALLOW_CPU_VARIABLE = "WORKFLOW_ALLOW_CPU_TRAINING"


class LaunchError(RuntimeError):
    """The allocation and the machine disagree; the message says how."""


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


def torchrun(n_processes: int) -> list[str]:
    """torchrun of the running interpreter (not whatever ``torchrun`` PATH finds first)."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={n_processes}",
    ]  # fmt: skip


def build_command(
    module: str,
    module_args: list[str],
    allocated_gpus: int,
    visible_gpus: int,
    cpu_processes: int = 1,
    threads: int = 0,
    allow_cpu: bool = False,
) -> tuple[list[str], str]:
    """The command to run and a one-line explanation for the log.

    ``threads`` (0: leave torch's default) reaches the module as ``--threads``. For GPU
    processes it is each process's threads (the SLURM profile's ``set-threads`` is
    ``cpus_per_task / gpu``); several CPU processes share the job's ``threads`` cores,
    ``threads // cpu_processes`` each.
    """
    if visible_gpus >= 1:
        n_processes = min(allocated_gpus, visible_gpus) if allocated_gpus else visible_gpus
        reason = f"{n_processes} GPU process(es): allocation has {allocated_gpus}, CUDA sees {visible_gpus}"
        command = [*torchrun(n_processes), "-m", module]
        return command + module_args + _threads_flag(threads, 1), reason
    if allocated_gpus and not allow_cpu:
        raise LaunchError(
            f"the allocation has {allocated_gpus} GPU(s) but CUDA sees none (a CPU build of "
            "torch, or a driver that does not match?): not training for hours on the CPU. "
            f"Check `python -c 'import torch; print(torch.cuda.is_available())'` on the node, "
            f"or set {ALLOW_CPU_VARIABLE}=1 to train on the CPU anyway."
        )
    if cpu_processes > 1:
        per_process = threads // cpu_processes if threads else 0
        reason = f"CPU, {cpu_processes} processes (gloo), {per_process or 'default'} thread(s) each"
        command = [*torchrun(cpu_processes), "-m", module]
        return command + module_args + _threads_flag(threads, cpu_processes), reason
    reason = (
        f"CPU, one process (allocation advertises {allocated_gpus} GPU(s), CUDA sees none; "
        f"{ALLOW_CPU_VARIABLE} set)"
        if allocated_gpus
        else "CPU, one process (no GPU)"
    )
    return [sys.executable, "-m", module, *module_args, *_threads_flag(threads, 1)], reason


def _threads_flag(threads: int, n_processes: int) -> list[str]:
    if not threads:
        return []
    return ["--threads", str(max(1, threads // n_processes))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu-processes",
        type=int,
        default=1,
        help="without GPUs: this many training processes (torchrun, gloo)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="the job's CPU threads, split between processes"
    )
    parser.add_argument("module", help="module to run, e.g. workflow_scripts.train_dm")
    parser.add_argument("module_args", nargs=argparse.REMAINDER, help="arguments for the module")
    args = parser.parse_args(argv)
    if args.cpu_processes < 1:
        parser.error("--cpu-processes must be at least 1")
    try:
        command, reason = build_command(
            args.module,
            args.module_args,
            gpus_in_allocation(),
            cuda_device_count(),
            cpu_processes=args.cpu_processes,
            threads=args.threads,
            allow_cpu=os.environ.get(ALLOW_CPU_VARIABLE, "") not in ("", "0"),
        )
    except LaunchError as error:
        print(f"[launch] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"[launch] {reason}: {' '.join(command)}", flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
