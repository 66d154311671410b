"""The SLURM profile against a real one-node SLURM cluster, not a mock.

The module's fixture starts slurmctld, slurmd and munge with tests/slurm/start-local-slurm.sh
(installing them from Debian packages when missing; root needed) on a node that poses as
one 8xH200 machine, and stops them afterwards. The workflow then runs through
`snakemake --profile profiles/slurm`, the profile file unchanged, so every rule is a real
`sbatch` job. Budgets are tiny: each SLURM job costs ~10-25 s of submission and polling
here, whatever it runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.support.tiny_models import TINY_DM_ARCHITECTURE
from tests.support.workflow import REPO_ROOT, SNAKEMAKE, copy_workflow
from workflow_scripts.training import list_checkpoints

pytestmark = pytest.mark.slurm

START_SCRIPT = REPO_ROOT / "tests" / "slurm" / "start-local-slurm.sh"
STOP_SCRIPT = REPO_ROOT / "tests" / "slurm" / "stop-local-slurm.sh"
PROFILE = REPO_ROOT / "profiles" / "slurm"

ENVS = ["CartPole-v1", "FrozenLake-v1"]
# The data half for two envs and the DM, at sizes that train in seconds.
TINY_CONFIG = {
    "envs": ENVS,
    "models": ["dm"],
    "experts": {env: {"n_timesteps": 2048} for env in ENVS},
    "expert_training": {"checkpoint_every": 1024, "eval_episodes": 1},
    "baseline": {"n_episodes": 5},
    "dataset": {"n_transitions": 300, "n_envs": 2},
    "evaluation": {"protocol": "final", "seeds": [0]},
    "dm": {
        **TINY_DM_ARCHITECTURE,
        "batch_size_per_gpu": 3,
        "max_steps": 4,
        "warmup_steps": 1,
        "checkpoint_every": 2,
        "log_every": 2,
        "num_workers": 0,
        "eval_slide_transitions": 3,
    },
}
MODEL = "results/models/dm/final"
# Test-only speed-up: the first status poll after 2 s instead of the profile's 40 s. The
# cluster's MinJobAge (600 s) keeps the squeue status check valid either way.
FAST_POLLING = ["--slurm-init-seconds-before-status-checks", "2"]
JOB_LIMIT = 3
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


@dataclass(frozen=True)
class Cluster:
    state_dir: Path
    environ: dict[str, str]

    def run(self, *command: str) -> str:
        """A SLURM client command against this cluster; its standard output."""
        result = subprocess.run(
            command, env=self.environ, capture_output=True, text=True, timeout=30, check=True
        )
        return result.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    # Not a skip: CI runs as root on Debian, where the start script can always install SLURM,
    # so a cluster that cannot start is a failure to look at, not a test to pass over.
    deselect = 'deselect these tests with -m "not slurm" where that is expected'
    if os.geteuid() != 0:
        pytest.fail(
            f"the local SLURM cluster needs root (installs packages, runs slurmd); {deselect}"
        )
    installed = all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not installed and not shutil.which("apt-get"):
        pytest.fail(f"SLURM is not installed and there is no apt-get to install it; {deselect}")
    state_dir = tmp_path_factory.mktemp("slurm-state")
    try:
        started = subprocess.run(
            ["bash", str(START_SCRIPT), str(state_dir)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert started.returncode == 0, f"cluster did not start:\n{started.stderr}"
        conf = re.search(r"^export SLURM_CONF=(.+)$", started.stdout, re.MULTILINE).group(1)
        # The node poses as a GPU node: training on its CPU is this test's explicit choice.
        environ = dict(
            os.environ, SLURM_CONF=conf, OMP_NUM_THREADS="1", WORKFLOW_ALLOW_CPU_TRAINING="1"
        )
        yield Cluster(state_dir, environ)
    finally:
        subprocess.run(["bash", str(STOP_SCRIPT), str(state_dir)], timeout=120, check=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow with the tiny config overlay, shared by this module's runs.

    The copy includes workflow_scripts: `python -m` in the working directory (Snakemake's
    and each job's) imports it before the installed package, so the rules' code hashes and
    the jobs' code stay those of the copy even when the checkout is edited meanwhile.
    """
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm-workflow"), with_code=True)
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    return workdir


def snakemake_with_profile(
    cluster: Cluster,
    workdir: Path,
    args: list[str],
    timeout: int = 600,
    configfile: str = "tiny.yaml",
) -> subprocess.CompletedProcess:
    """`snakemake --profile profiles/slurm ...`, ended with its children if it outlives
    `timeout` seconds (a lost job can hang it) or the test is interrupted."""
    command = [*SNAKEMAKE, "--profile", str(PROFILE)]
    command += ["--configfile", configfile, *FAST_POLLING, *args]
    # Its own process group, so that everything it started (sbatch, squeue, ...) can be ended
    # with it and nothing keeps polling a cluster the fixture is about to stop.
    with subprocess.Popen(
        command,
        cwd=workdir,
        env=cluster.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException as error:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            if isinstance(error, subprocess.TimeoutExpired):
                pytest.fail(f"snakemake still running after {timeout}s:\n{stdout}{stderr}")
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def submitted_jobs(output: str) -> dict[str, Path]:
    """SLURM job id -> SLURM log file, for every job Snakemake submitted."""
    return {job_id: Path(log) for job_id, log in SUBMITTED.findall(output)}


def job_records(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Every job slurmctld still remembers (MinJobAge): id -> state, start, end, comment,
    nodes (empty if it never got any) and reason."""
    fields = ("state", "start", "end", "comment", "nodes", "reason")
    lines = cluster.run("squeue", "--states=all", "--noheader", "--format=%i|%T|%S|%e|%k|%N|%r")
    records = {}
    for line in lines.splitlines():
        job_id, *values = line.strip().split("|")
        records[job_id] = dict(zip(fields, values, strict=True))
    return records


def most_jobs_at_once(records: list[dict[str, str]]) -> int:
    """Largest number of these jobs running at the same instant (end before start on ties)."""
    events = []
    for record in records:
        events.append((datetime.fromisoformat(record["start"]), 1))
        events.append((datetime.fromisoformat(record["end"]), -1))
    running = peak = 0
    for _, change in sorted(events):
        running += change
        peak = max(peak, running)
    return peak


def test_node_poses_as_an_8_gpu_h200_node(cluster):
    node = cluster.run("scontrol", "show", "node")
    assert "Gres=gpu:h200:8" in node
    assert "State=IDLE" in node
    # Accounting is off, as on sites without slurmdbd: the profile must not rely on sacct.
    config = cluster.run("scontrol", "show", "config")
    assert re.search(r"AccountingStorageType\s*=\s*accounting_storage/none", config)
    assert re.search(r"MinJobAge\s*=\s*600", config)


def test_two_envs_at_once_with_a_job_limit(cluster, workdir):
    """Many envs in one submission, at most --jobs SLURM jobs at a time, all through sbatch.

    Eight jobs, four ready at the start (hyperparams and baseline of each env), so the
    limit of three is what holds them back.
    """
    targets = [f"results/datasets/{env}.h5" for env in ENVS]
    targets += [f"results/baselines/{env}.json" for env in ENVS]
    result = snakemake_with_profile(cluster, workdir, [*targets, "--jobs", str(JOB_LIMIT)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    from workflow_scripts.dataset import validate_dataset

    for env in ENVS:
        info = validate_dataset(workdir / f"results/datasets/{env}.h5", env_id=env)
        assert info.n_transitions == TINY_CONFIG["dataset"]["n_transitions"]
        assert (workdir / f"results/baselines/{env}.json").exists()

    # Four rules per env, each one its own SLURM job, each leaving its SLURM log behind.
    jobs = submitted_jobs(output)
    assert len(jobs) == 4 * len(ENVS), output
    rules = sorted(
        log.relative_to(workdir / ".snakemake/slurm_logs").parts[0] for log in jobs.values()
    )
    assert rules == sorted(
        f"rule_{rule}"
        for rule in ("hyperparams", "train_expert", "baseline", "rollout")
        for _ in ENVS
    )
    for job_id, log in jobs.items():
        assert log.name == f"{job_id}.log" and log.exists(), log

    # slurmctld's own view: every one of them ran and completed, never more than the limit
    # at once, and each carries its rule and wildcards in its comment.
    records = job_records(cluster)
    ours = [records[job_id] for job_id in jobs]
    assert {record["state"] for record in ours} == {"COMPLETED"}, ours
    assert 2 <= most_jobs_at_once(ours) <= JOB_LIMIT, ours
    for job_id, log in jobs.items():
        rule, wildcards = log.parent.parent.name, log.parent.name
        assert records[job_id]["comment"] == f"{rule}_wildcards_{wildcards}", records[job_id]

    # A second submission finds everything done and submits nothing.
    again = snakemake_with_profile(cluster, workdir, targets)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not submitted_jobs(again.stdout + again.stderr)


def profile_set_resources(**changes: dict) -> list[str]:
    """`--set-resources` arguments equal to the profile's, with some values changed."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    arguments = []
    for rule, resources in profile["set-resources"].items():
        for name, value in (resources | changes.get(rule, {})).items():
            arguments.append(f"{rule}:{name}={value}")
    return ["--set-resources", *arguments]


def test_more_gpus_than_the_node_has_fail_at_submission(cluster, workdir):
    """9 GPUs: sbatch refuses the job at once, nothing runs, Snakemake reports it."""
    known_jobs = set(job_records(cluster))
    args = [MODEL, "--retries", "0", *profile_set_resources(train_dm={"gpu": 9})]
    result = snakemake_with_profile(cluster, workdir, args)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "SLURM sbatch failed" in output, output
    assert "--gpus=h200:9" in output, output
    assert "Requested node configuration is not available" in output, output
    # The data jobs this target needs may have run; the train_dm job never did. slurmctld
    # (22.05) keeps a record of the rejected submission: FAILED at once, no node, reason
    # BadConstraints.
    new_jobs = [
        record for job_id, record in job_records(cluster).items() if job_id not in known_jobs
    ]
    rejected = [record for record in new_jobs if record["comment"] == "rule_train_dm"]
    assert len(rejected) <= 1, new_jobs
    for record in rejected:
        assert record["state"] == "FAILED" and record["nodes"] == "", record
        assert record["reason"] == "BadConstraints" and record["start"] == record["end"], record
    assert not (workdir / MODEL).exists()


def test_gpu_job_without_cuda_fails_fast_without_the_opt_in(cluster, workdir):
    """Granted 8 GPUs that CUDA cannot see, the launcher stops at once instead of training
    for a day on the CPU (the other tests opt in with WORKFLOW_ALLOW_CPU_TRAINING=1)."""
    environ = {k: v for k, v in cluster.environ.items() if k != "WORKFLOW_ALLOW_CPU_TRAINING"}
    result = snakemake_with_profile(Cluster(cluster.state_dir, environ), workdir,
                                    [MODEL, "--retries", "0"])  # fmt: skip
    assert result.returncode != 0
    log = (workdir / "logs/dm/train.log").read_text()
    assert "[launch] error: the allocation has 8 GPU(s) but CUDA sees none" in log, log
    assert "step " not in log and not (workdir / MODEL).exists()


def test_train_dm_in_two_cpu_processes_inside_its_allocation(cluster, workdir):
    """dm.resources.cpu_processes 2: torchrun starts both ranks inside the SLURM job."""
    two = {**TINY_CONFIG, "dm": {**TINY_CONFIG["dm"], "resources": {"cpu_processes": 2}}}
    (workdir / "two.yaml").write_text(yaml.safe_dump(two))
    result = snakemake_with_profile(cluster, workdir, [MODEL], configfile="two.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    log = (workdir / "logs/dm/train.log").read_text()
    assert "[launch] CPU, 2 processes (gloo)" in log, log
    training = json.loads((workdir / MODEL / "training.json").read_text())
    assert training["world_size"] == 2
    shutil.rmtree(workdir / "results/models/dm")  # the next test trains its own


def test_train_dm_gets_the_whole_8_gpu_node(cluster, workdir):
    """The profile's request as SLURM granted it, and the launcher seeing all 8 GPUs.

    Run after the failed 9-GPU submission above, this is also the rerun after a failure.
    """
    result = snakemake_with_profile(cluster, workdir, [MODEL])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    trained = [
        (job_id, log)
        for job_id, log in submitted_jobs(output).items()
        if "rule_train_dm" in log.parts
    ]
    assert len(trained) == 1, output
    job_id, slurm_log = trained[0]
    assert slurm_log.exists()

    job = cluster.run("scontrol", "show", "job", job_id)
    assert "JobState=COMPLETED" in job, job
    assert "TresPerJob=gres:gpu:h200:8" in job, job
    # One task with 96 CPUs and 1 TB; --exclusive hands it every CPU of the node.
    assert re.search(r"NumTasks=1 CPUs/Task=96\b", job), job
    assert "NumCPUs=112" in job and "MinMemoryNode=1000000M" in job, job
    assert "TimeLimit=1-00:00:00" in job, job

    # Inside the job SLURM announced 8 GPUs; CUDA has none here, so the launcher ran the
    # trainer as one CPU process and said why.
    train_log = (workdir / "logs/dm/train.log").read_text()
    assert "[launch] CPU, one process (allocation advertises 8 GPU(s), CUDA sees none" in train_log
    assert (workdir / MODEL / "config.json").exists()


@pytest.mark.slow
def test_train_dm_longer_than_its_time_limit_is_resumed_by_the_retry(cluster, workdir):
    """A 2-minute job limit for a DM run that needs far longer: the job stops itself with a
    checkpoint `stop_before_time_limit` seconds before its limit (a FAILED job with exit 75,
    not a TIMEOUT that SLURM kills), and the profile's retry resumes from exactly that step.

    Two attempts (`--retries 1`), so the run is left unfinished whatever the machine's speed.
    """
    shutil.rmtree(workdir / "results/models/dm", ignore_errors=True)
    long_run = {
        **TINY_CONFIG,
        "dm": {**TINY_CONFIG["dm"], "max_steps": 1_000_000, "checkpoint_every": 1_000_000,
               "log_every": 1000, "stop_before_time_limit": 75},
    }  # fmt: skip
    (workdir / "long.yaml").write_text(yaml.safe_dump(long_run))
    args = [MODEL, "--set-resources", "train_dm:runtime=2", "--retries", "1"]
    result = snakemake_with_profile(cluster, workdir, args, timeout=900, configfile="long.yaml")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output  # unfinished by design

    attempts = [job for job, log in submitted_jobs(output).items() if "rule_train_dm" in log.parts]
    assert len(attempts) == 2, output
    records = job_records(cluster)
    # Both attempts stopped themselves before SLURM had to end them.
    assert [records[job]["state"] for job in attempts] == ["FAILED", "FAILED"], records
    # One checkpoint per attempt, each at the step where it stopped (none was due).
    checkpoints = list_checkpoints(workdir / "results/models/dm/checkpoints")
    assert len(checkpoints) == 2, checkpoints
    (first_step, first_path), (second_step, _) = checkpoints
    assert 0 < first_step < second_step
    # The second attempt's log (the first's was replaced): it resumed from the first's step.
    log = (workdir / "logs/dm/train.log").read_text()
    assert f"resumed from {first_path.relative_to(workdir)} (step {first_step})" in log, log
    assert f"the SLURM time limit: stopped at step {second_step}" in log, log
    assert not (workdir / MODEL).exists()
