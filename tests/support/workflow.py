"""Running the workflow in tests: a copy of it in a temporary folder, Snakemake as a
subprocess, and what a dry run plans (its job table, its jobs' outputs). Nothing here
touches the repository's own ``results/``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# One thread per process: CI has two cores and runs other tests beside these.
QUIET_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WORKFLOW_FOLDERS = ("rules", "report", "envs", "profiles")


def copy_workflow(destination: Path, with_code: bool = False) -> Path:
    """Copy the workflow (Snakefile, every ``config*.yaml``, rules, report, envs,
    profiles) into ``destination`` and return it.

    ``with_code`` also copies the ``workflow_scripts`` package: ``python -m`` and the
    Snakefile's imports then use that copy (the working directory comes first on
    ``sys.path``), so a test can edit stage code without touching the repository.
    """
    destination.mkdir(parents=True, exist_ok=True)
    for path in [REPO_ROOT / "Snakefile", *sorted(REPO_ROOT.glob("config*.yaml"))]:
        shutil.copy(path, destination / path.name)
    folders = [*WORKFLOW_FOLDERS, *(["workflow_scripts"] if with_code else [])]
    for folder in folders:
        shutil.copytree(
            REPO_ROOT / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return destination


def snakemake(
    workdir: Path, *args: str, timeout: float = 900, check: bool = False
) -> subprocess.CompletedProcess:
    """Run ``python -m snakemake ARGS`` in ``workdir``; stdout and stderr as text.

    ``check`` raises AssertionError with Snakemake's output when it fails.
    """
    result = subprocess.run(
        SNAKEMAKE + [str(arg) for arg in args],
        cwd=workdir,
        env=QUIET_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n{output_of(result)}")
    return result


def output_of(result: subprocess.CompletedProcess) -> str:
    """Standard output and standard error of a finished run, together."""
    return (result.stdout or "") + (result.stderr or "")


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count} ({} when nothing is to be done)."""
    if "Job stats:" not in dry_run_output:
        return {}
    counts = {}
    for line in dry_run_output.split("Job stats:")[-1].splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def planned_outputs(dry_run_output: str) -> list[str]:
    """Every planned job's outputs (the ``output:`` lines of a dry run), in the order the
    dry run schedules them: upstream first."""
    paths = []
    for line in dry_run_output.splitlines():
        if line.strip().startswith("output:"):
            paths += [path.strip() for path in line.split(":", 1)[1].split(",")]
    return paths
