"""CPU time of planning the full paper workflow, before and after the light config layer.

Every ``snakemake`` call parses the workflow first: a dry run, a ``--report``, and the
``snakemake`` that SLURM starts inside each job. Until the light config layer, parsing
imported the trainer CLIs (torch, transformers), loaded the Qwen tokenizer and stepped
every env; now the rules import only light helpers.

Two trees are planned side by side in one run, ``snakemake results/table.csv -n`` with
``config.yaml`` (the 20-env, 2-model, 10-seed plan):

- before: the code of commit ``--before`` (default 8a1be95, the last commit before the
  redesign), exported with ``git archive`` into a temporary folder;
- after: the current working tree (Snakefile, configs, rules, ``workflow_scripts``),
  copied into a temporary folder.

Each runs as ``python -m snakemake`` with its own folder as working directory, so it
imports its own ``workflow_scripts``. One untimed run each first (bytecode caches, page
cache), then ``--rounds`` rounds alternating which goes first. The figure is CPU time
(user + system) of the child process, from ``getrusage(RUSAGE_CHILDREN)`` around each run,
which other load on the machine disturbs far less than wall time; wall time is printed
beside it. A third command per round, ``python -c "import stable_baselines3, sb3_contrib"``,
prices what checking expert overrides against the live SB3 classes would add to a parse
(the workflow reads a snapshot of their signatures instead).

    python benchmarks/workflow_parse.py
    python benchmarks/workflow_parse.py --rounds 3 --before 8a1be95
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What a workflow run needs besides the package: the Snakefile, configs and rule files.
WORKFLOW_FILES = ("Snakefile", "config.yaml", "rules", "report", "envs", "workflow_scripts")
QUIET_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def export_commit(commit: str, destination: Path) -> Path:
    """The tree of ``commit`` in ``destination`` (``git archive``: no worktree left behind)."""
    destination.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)
    return destination


def copy_working_tree(destination: Path) -> Path:
    """The workflow as it is on disk now, committed or not."""
    destination.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        elif source.exists():
            shutil.copy(source, destination / name)
    return destination


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """CPU seconds (user + sys) and wall seconds of one child process, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=QUIET_ENV, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} in {cwd} failed:\n{result.stdout}{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, result.stdout + result.stderr


def plan_command(target: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", target, "-n", "--quiet", "rules"]


def job_count(output: str) -> int:
    match = re.search(r"^total\s+(\d+)$", output, re.M)
    return int(match[1]) if match else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="8a1be95", help="commit of the old code")
    parser.add_argument("--target", default="results/table.csv")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="workflow_parse_") as scratch:
        trees = {
            "before": export_commit(args.before, Path(scratch) / "before"),
            "after": copy_working_tree(Path(scratch) / "after"),
        }
        command = plan_command(args.target)
        for name, tree in trees.items():  # untimed: bytecode and page caches
            _, _, output = timed(command, tree)
            print(f"{name}: {job_count(output)} jobs planned for {args.target}")
        sb3_import = [sys.executable, "-c", "import stable_baselines3, sb3_contrib"]
        timed(sb3_import, REPO)

        cpu: dict[str, list[float]] = {"before": [], "after": [], "sb3 import": []}
        wall: dict[str, list[float]] = {"before": [], "after": [], "sb3 import": []}
        for round_index in range(args.rounds):
            order = ["before", "after"] if round_index % 2 == 0 else ["after", "before"]
            for name in order:
                seconds, wall_seconds, _ = timed(command, trees[name])
                cpu[name].append(seconds)
                wall[name].append(wall_seconds)
            seconds, wall_seconds, _ = timed(sb3_import, REPO)
            cpu["sb3 import"].append(seconds)
            wall["sb3 import"].append(wall_seconds)
            print(
                f"round {round_index + 1}: before {cpu['before'][-1]:.2f} s CPU, "
                f"after {cpu['after'][-1]:.2f} s CPU, "
                f"after / before {cpu['after'][-1] / cpu['before'][-1]:.3f}"
            )

    print()
    print(f"{'':>12} {'CPU s (median)':>15} {'range':>14} {'wall s (median)':>16}")
    for name in cpu:
        print(
            f"{name:>12} {statistics.median(cpu[name]):>15.2f} "
            f"{min(cpu[name]):>6.2f}–{max(cpu[name]):<6.2f} {statistics.median(wall[name]):>16.2f}"
        )
    ratios = [after / before for after, before in zip(cpu["after"], cpu["before"], strict=True)]
    print(
        f"\nafter / before CPU: {statistics.median(ratios):.3f} "
        f"(per round {min(ratios):.3f}–{max(ratios):.3f}; target ≤ 0.333)"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
