"""Disk and concurrency: a run states its datasets' disk need before its first job and a
rollout that cannot fit refuses before writing a row; two workflows in different folders
run at the same time without touching each other's files.
"""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import pytest

from tests.reliability.reliability_helpers import (
    clone_workflow,
    finish,
    kill_run,
    snapshot,
    start_snakemake,
    tiny_config,
    write_overlay,
)
from tests.support.workflow import QUIET_ENV, REPO_ROOT, output_of, snakemake

DATASET = "results/datasets/CartPole-v1.h5"
PROFILE = ("--profile", "profiles/local", "--cores", "1")


def test_paper_plan_states_its_disk_need_with_a_small_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.disk_plan", "--configfile",
         str(REPO_ROOT / "config.yaml"), "--results", str(tmp_path)],
        capture_output=True, text=True, env=QUIET_ENV, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    per_env = {line.split()[0]: float(line.split()[1]) for line in lines[1:21]}
    assert len(per_env) == 20 and per_env["Humanoid-v4"] > per_env["CartPole-v1"] > 0
    total = float(lines[21].split()[-1])
    assert lines[21].startswith("total datasets") and abs(total - sum(per_env.values())) < 0.05
    assert lines[22].startswith(f"free on {tmp_path}: ")


def test_run_states_the_disk_need_first_and_a_rollout_that_cannot_fit_writes_nothing(
    built_copy,
):
    workdir = built_copy
    before = snapshot(workdir / "results")
    # 10^12 CartPole rows: 30 TB, more than any test machine has.
    overlay = write_overlay(workdir, tiny_config(dataset={"n_transitions": 10**12}), "huge.yaml")
    (workdir / DATASET).unlink()

    result = snakemake(workdir, *PROFILE, DATASET, "--configfile", overlay)
    text = output_of(result)
    assert result.returncode != 0
    warning = text.index("WARNING disk plan: 1 dataset(s) still to collect into results/datasets need 30000.00 GB")  # fmt: skip
    assert warning < text.index("rule rollout")  # stated before the first job
    assert "NOT ENOUGH" in text
    log = (workdir / "logs/rollout/CartPole-v1.log").read_text()
    assert "CartPole-v1.h5 (1000000000000 rows) needs 30000.00 GB" in log
    after = snapshot(workdir / "results")
    # Nothing written (no partial file either), nothing else removed.
    assert {name for name in after if "benchmarks" not in name} == {
        name
        for name in before
        if name != DATASET.removeprefix("results/") and "benchmarks" not in name
    }


@pytest.mark.slow
def test_two_workflows_in_different_folders_run_together_without_interfering(
    built_workflow, tmp_path
):
    first = clone_workflow(built_workflow, tmp_path / "first")
    second = clone_workflow(built_workflow, tmp_path / "second")
    reference = snapshot(built_workflow / "results")
    # The second run collects with another seed, so its output differs from the first's.
    other_seed = write_overlay(second, tiny_config(dataset={"seed": 5}), "seed5.yaml")
    runs = [
        start_snakemake(
            # The target first: --forcerun takes every name after it up to the next option.
            first,
            *PROFILE,
            DATASET,
            "--forcerun",
            "rollout",
            "--configfile",
            "tiny.yaml",
        ),  # fmt: skip
        start_snakemake(second, *PROFILE, DATASET, "--configfile", other_seed),
    ]
    try:
        codes = [finish(run, timeout=300) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                kill_run(run)
    assert codes == [0, 0], [(folder / "snakemake.out").read_text() for folder in (first, second)]

    dataset = DATASET.removeprefix("results/")
    # The first run's dataset is byte for byte the one the fixture built (same config).
    assert snapshot(first / "results")[dataset] == reference[dataset]
    with h5py.File(second / DATASET, "r") as handle:
        assert int(handle.attrs["seed"]) == 5
    assert snapshot(second / "results")[dataset] != reference[dataset]
    # Each run's outputs and logs stayed in its own folder.
    for folder in (first, second):
        assert json.loads((folder / "results/experts/CartPole-v1/expert.json").read_text())
        assert not list(folder.rglob(".*.partial*"))
