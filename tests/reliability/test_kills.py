"""Kills mid-way through Snakemake: the same command finishes, nothing partial looks done.

Two kinds of kill, as they happen on a cluster:

* the job alone (out of memory, a preempted or timed-out SLURM job): Snakemake sees the
  job fail, deletes that job's declared outputs, and stops; the same command finishes;
* Snakemake and its jobs together (``kill -9``, a node failure): Snakemake's lock stays
  behind, so ``snakemake --unlock`` comes first, then the same command finishes.

Either way training resumes from its last checkpoint (asserted from the logs), and every
file under ``results/`` that looks finished is whole (:func:`check_outputs_are_complete`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.reliability.reliability_helpers import (
    check_outputs_are_complete,
    finish,
    kill_job,
    kill_run,
    stage_processes,
    start_snakemake,
    tiny_config,
    wait_for,
    write_overlay,
)
from tests.support.workflow import copy_workflow, job_counts, output_of, snakemake

PROFILE = ("--profile", "profiles/local", "--cores", "1")
EXPERT_OUTPUTS = ("CartPole-v1.zip", "expert.json", "monitor.csv", "curve.png")


@pytest.mark.slow  # about a minute: several Snakemake runs
def test_killed_snakemake_during_expert_training_resumes_from_the_checkpoint(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    # 512-step PPO rollouts and a checkpoint every 1024 steps: several checkpoints in a few
    # seconds, each at a rollout boundary so the resumed run ends at exactly 6144.
    expert = {"n_timesteps": 6144, "overrides": {"n_steps": 512, "batch_size": 128, "n_epochs": 1}}
    overlay = write_overlay(workdir, tiny_config(experts={"CartPole-v1": expert}, models=[]))
    target = "results/experts/CartPole-v1/CartPole-v1.zip"
    command = (*PROFILE, target, "--configfile", overlay)
    expert_dir = workdir / "results/experts/CartPole-v1"
    state = expert_dir / "checkpoints/state.json"

    run = start_snakemake(workdir, *command)
    try:
        wait_for(state.exists, run, what="the first expert checkpoint")
    finally:
        kill_run(run)
    checkpointed = json.loads(state.read_text())["num_timesteps"]
    assert 0 < checkpointed < 6144

    # Nothing the job declares exists: no output is marked incomplete but present.
    assert [name for name in EXPERT_OUTPUTS if (expert_dir / name).exists()] == []
    check_outputs_are_complete(workdir / "results")
    # Snakemake's lock outlives a kill -9; the same command refuses until it is removed.
    locked = snakemake(workdir, *command)
    assert locked.returncode != 0 and "--unlock" in output_of(locked)
    snakemake(workdir, "--unlock", "--configfile", overlay, check=True)
    # Even without the profile's rerun-incomplete, a plain dry run plans the job again.
    plain = snakemake(workdir, "-n", target, "--configfile", overlay)
    assert plain.returncode == 0, output_of(plain)
    assert job_counts(output_of(plain)) == {"train_expert": 1}

    snakemake(workdir, *command, check=True)
    log = (workdir / "logs/train_expert/CartPole-v1.log").read_text()
    assert f"resuming from checkpoint at {checkpointed} timesteps" in log
    summary = json.loads((expert_dir / "expert.json").read_text())
    assert summary["n_timesteps"] == 6144
    from workflow_scripts.experts.monitor import read_monitor

    episodes = read_monitor(expert_dir / "monitor.csv")
    assert episodes["timesteps"].is_monotonic_increasing  # no episode logged twice
    assert episodes["timesteps"].iloc[-1] <= 6144
    check_outputs_are_complete(workdir / "results")


@pytest.mark.slow  # about a minute: several Snakemake runs
def test_killed_rollout_job_is_redone_by_the_same_command(built_copy):
    workdir = built_copy
    dataset = workdir / "results/datasets/CartPole-v1.h5"
    partial = dataset.with_name(f".{dataset.name}.partial")
    # A dataset big enough to take several seconds with two env copies (blocks of 4096
    # rows each), so the kill lands with rows written but the file unfinished.
    config = tiny_config(dataset={"n_transitions": 300_000, "n_envs": 2})
    overlay = write_overlay(workdir, config, "big.yaml")
    command = (*PROFILE, str(dataset.relative_to(workdir)), "--configfile", overlay)

    run = start_snakemake(workdir, *command)
    try:
        wait_for(lambda: partial.exists() and partial.stat().st_size > 1_000_000, run,
                 what="rows in the partial dataset")  # fmt: skip
        kill_job(run, "rollout")
        code = finish(run)
    finally:
        if run.poll() is None:
            kill_run(run)
    assert code != 0
    assert "Error in rule rollout" in (workdir / "snakemake.out").read_text()
    # The old dataset was removed when the job started; the new one never became visible.
    assert not dataset.exists()
    check_outputs_are_complete(workdir / "results")

    snakemake(workdir, *command, check=True)
    from workflow_scripts.dataset import validate_dataset

    assert validate_dataset(dataset, env_id="CartPole-v1").n_transitions == 300_000
    assert not partial.exists()  # the rerun reused and renamed the same scratch file
    check_outputs_are_complete(workdir / "results")


def _training_command(workdir: Path, overlay: str) -> tuple[str, ...]:
    return (*PROFILE, "results/models/dm/final", "--configfile", overlay)


def test_killed_dm_training_job_resumes_from_its_last_checkpoint(built_copy):
    workdir = built_copy
    # A longer run than the fixture's, so it is still training after its first checkpoint.
    config = tiny_config()
    config["dm"].update(max_steps=200, checkpoint_every=4, log_every=4)
    overlay = write_overlay(workdir, config, "longer.yaml")
    checkpoints = workdir / "results/models/dm/checkpoints"
    command = _training_command(workdir, overlay)

    from workflow_scripts.training import list_checkpoints

    # The fixture's checkpoints belong to another run (12 steps, not 200), which the trainer
    # refuses to resume (tests/reliability/test_training_faults.py); start afresh.
    shutil.rmtree(checkpoints)
    run = start_snakemake(workdir, *command)
    try:
        wait_for(lambda: any(step >= 8 for step, _ in list_checkpoints(checkpoints)), run,
                 what="a DM checkpoint at step 8")  # fmt: skip
        kill_job(run, "train_dm")
        finish(run)
    finally:
        if run.poll() is None:
            kill_run(run)
    last_step = list_checkpoints(checkpoints)[-1][0]
    assert 8 <= last_step < 200
    assert not (workdir / "results/models/dm/final").exists()
    check_outputs_are_complete(workdir / "results")

    snakemake(workdir, *command, check=True)
    log = (workdir / "logs/dm/train.log").read_text()
    assert f"(step {last_step})" in log and "resumed from" in log
    assert f"step {last_step + 4}/200" in log and "step 4/200 " not in log
    training = json.loads((workdir / "results/models/dm/final/training.json").read_text())
    assert training["steps"] == 200
    check_outputs_are_complete(workdir / "results")


@pytest.mark.slow  # about a minute: several Snakemake runs
def test_killed_snakemake_during_evaluation_is_redone(built_copy):
    workdir = built_copy
    record = workdir / "results/eval/dm/CartPole-v1/seed0.json"
    overlay = "tiny.yaml"
    record.unlink()
    command = (*PROFILE, str(record.relative_to(workdir)), "--configfile", overlay)

    run = start_snakemake(workdir, *command)
    try:
        wait_for(lambda: stage_processes(run, "evaluate"), run, what="the evaluation job")
    finally:
        kill_run(run)
    assert not record.exists()
    check_outputs_are_complete(workdir / "results")

    snakemake(workdir, "--unlock", "--configfile", overlay, check=True)
    snakemake(workdir, *command, check=True)
    evaluated = json.loads(record.read_text())
    assert evaluated["seed"] == 0 and evaluated["env_id"] == "CartPole-v1"
    check_outputs_are_complete(workdir / "results")
