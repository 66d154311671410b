"""The SLURM profile's plan for the paper's full experiment, without a cluster (seconds).

`snakemake -n --profile profiles/slurm results/table.csv` with config.yaml: the two
training jobs must ask for one whole 8xH200 node, every other job must stay small.
tests/slurm/test_slurm_cluster.py then shows that a real SLURM schedules these requests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE = REPO_ROOT / "profiles" / "slurm"
TRAINING_RULES = ("train_dm", "train_qwen")


def planned_jobs(dry_run_output: str) -> list[dict]:
    """Each job block of a dry run: rule, threads (1 unless printed) and resources."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        header = re.match(r"(?:local)?rule (\w+):", block)
        if not header:
            continue
        threads = re.search(r"^\s+threads: (\d+)$", block, re.MULTILINE)
        resources_line = re.search(r"^\s+resources: (.+)$", block, re.MULTILINE)
        resources = {}
        if resources_line:
            for item in resources_line.group(1).split(", "):
                name, _, value = item.partition("=")
                resources[name] = value
        jobs.append(
            {
                "rule": header.group(1),
                "threads": int(threads.group(1)) if threads else 1,
                "resources": resources,
            }
        )
    return jobs


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory) -> list[dict]:
    workdir = tmp_path_factory.mktemp("slurm-plan")
    # A dry run without --cores caps every job's threads at 1 (Snakemake sets cores=1 for
    # it); a real SLURM submission caps nothing. --cores 96 (the training node's CPUs) shows
    # the threads the jobs really get.
    command = [sys.executable, "-m", "snakemake", "results/table.csv", "-n", "--cores", "96"]
    command += ["--profile", str(PROFILE), "-s", str(REPO_ROOT / "Snakefile"), "-d", str(workdir)]
    command += ["--configfile", str(REPO_ROOT / "config.yaml")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return [job for job in planned_jobs(result.stdout) if job["rule"] != "all"]


def test_profile_uses_squeue_status_and_the_plugin_settings_it_names():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"
    # Snakemake would treat a misspelt plugin setting as an unknown option; check the names
    # against the installed plugin's settings so a plugin upgrade that renames one shows here.
    from snakemake_executor_plugin_slurm import ExecutorSettings

    plugin_settings = {name.replace("_", "-") for name in ExecutorSettings.__dataclass_fields__}
    for key in profile:
        if key.startswith("slurm-"):
            assert key.removeprefix("slurm-") in plugin_settings, key


def test_training_jobs_ask_for_one_whole_8_gpu_h200_node(paper_plan):
    for rule in TRAINING_RULES:
        jobs = [job for job in paper_plan if job["rule"] == rule]
        assert len(jobs) == 1, f"{rule}: {len(jobs)} jobs planned"
        job = jobs[0]
        resources = job["resources"]
        assert resources["gpu"] == "8", (rule, resources)
        assert resources["gpu_model"] == "h200", (rule, resources)
        # One task that torchrun splits into 8 GPU processes, with the node's CPUs.
        assert resources["tasks_per_gpu"] == "0", (rule, resources)
        # Threads are per torchrun process: the node's CPUs shared by its 8 GPU processes.
        assert resources["cpus_per_task"] == "96" and job["threads"] == 96 // 8, (rule, job)
        assert int(resources["mem_mb"]) >= 500_000, (rule, resources)
        assert resources["slurm_extra"] == "--exclusive", (rule, resources)
    by_rule = {job["rule"]: job["resources"] for job in paper_plan}
    assert int(by_rule["train_dm"]["runtime"]) == 24 * 60  # "less than one day"
    assert int(by_rule["train_qwen"]["runtime"]) == 48 * 60  # 60+ h: resumed in a second job


def test_every_other_job_is_small(paper_plan):
    others = [job for job in paper_plan if job["rule"] not in TRAINING_RULES]
    assert {job["rule"] for job in others} >= {
        "hyperparams",
        "train_expert",
        "baseline",
        "rollout",
        "evaluate_snapshot",  # the paper's protocol: one job per snapshot
        "aggregate",
    }
    for job in others:
        resources = job["resources"]
        assert job["threads"] <= 8, job
        assert int(resources["mem_mb"]) <= 64_000, job
        assert int(resources["runtime"]) <= 24 * 60, job
        assert "gpu_model" not in resources and "slurm_extra" not in resources, job
        # At most one GPU (Qwen's evaluations decode on one), never a node's worth.
        assert int(resources.get("gpu", "0")) <= 1, job
