"""Tools for the fault-injection tests: background Snakemake runs, kills, output checks
(the workflow copy and the Snakemake runner are :mod:`tests.support.workflow`).

A module of its own (not conftest.py) so tests import it by a name no other test folder
uses. Every workflow run happens in a copy of the workflow under a temporary folder, with
tiny budgets; nothing here reads or writes the repository's own ``results/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import psutil
import yaml

from tests.support.tiny_models import (
    TINY_DM_ARCHITECTURE,
    TINY_DM_RUN,
    TINY_QWEN3,
    TINY_QWEN_RUN,
    as_flags,
)
from tests.support.workflow import QUIET_ENV, SNAKEMAKE, output_of

# The smallest run of the whole DAG on one env: a PPO expert that checkpoints twice,
# a dataset of 2000 rows, a DM of ~50k parameters trained for a few steps, two
# evaluation seeds. Overlaid on config.yaml (mappings merge, lists replace).
TINY_DM = {
    **TINY_DM_ARCHITECTURE,
    "batch_size_per_gpu": 4,
    "max_steps": 12,
    "warmup_steps": 2,
    "learning_rate": 3.0e-3,
    "min_learning_rate": 3.0e-4,
    "checkpoint_every": 4,
    "log_every": 4,
    "num_workers": 0,
    "eval_slide_transitions": 4,
    "resources": {"threads": 1, "mem_mb": 2000, "runtime": 30, "gpu": 0},
}
TINY_CONFIG = {
    "envs": ["CartPole-v1"],
    "models": ["dm"],
    "experts": {"CartPole-v1": {"n_timesteps": 2048}},
    "expert_training": {"checkpoint_every": 1024, "eval_episodes": 1},
    "baseline": {"n_episodes": 5},
    "dataset": {"n_transitions": 2000, "n_envs": 4},
    # The final protocol (per-seed jobs of the final model), as the fault tests expect.
    "evaluation": {"protocol": "final", "seeds": [0, 1], "resources": {"dm": {"threads": 1}}},
}


def clone_workflow(source: Path, destination: Path) -> Path:
    """Copy a workflow folder with its results and Snakemake metadata, keeping file times."""
    shutil.copytree(source, destination, symlinks=True)
    return destination


def write_overlay(workdir: Path, overlay: dict, name: str = "tiny.yaml") -> str:
    """Write a config overlay into ``workdir`` and return its file name."""
    (workdir / name).write_text(yaml.safe_dump(overlay, sort_keys=False))
    return name


def tiny_config(**changes) -> dict:
    """:data:`TINY_CONFIG` with top-level keys replaced by ``changes``; it trains and
    evaluates the tiny DM (:data:`TINY_DM`, merged under any ``dm`` change)."""
    config = json.loads(json.dumps(TINY_CONFIG))
    config.update(json.loads(json.dumps(changes)))
    if "dm" in config["models"]:
        config["dm"] = {**TINY_DM, **config.get("dm", {})}
    return config


def final_targets(config: dict) -> list[str]:
    """Every file of the tiny run: datasets and baselines, and evaluations when a model runs."""
    targets = []
    for env in config["envs"]:
        targets += [f"results/datasets/{env}.h5", f"results/baselines/{env}.json"]
        for model in config["models"]:
            targets += [f"results/eval/{model}/{env}/seed{seed}.json" for seed in config["evaluation"]["seeds"]]  # fmt: skip
    return targets


def start_snakemake(workdir: Path, *args: str, log_name: str = "snakemake.out") -> subprocess.Popen:
    """Start Snakemake in its own session (so the whole run can be killed as a group)."""
    log = open(workdir / log_name, "w")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(
        SNAKEMAKE + list(args),
        cwd=workdir,
        env=QUIET_ENV,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(
    condition: Callable[[], object],
    process: subprocess.Popen | None = None,
    timeout: float = 300,
    what: str = "condition",
) -> object:
    """Poll ``condition`` until it is truthy; fail if ``process`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended (code {process.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stage_processes(run: subprocess.Popen, module: str) -> list[psutil.Process]:
    """Processes under ``run`` whose command line runs ``workflow_scripts.<module>``."""
    try:
        children = psutil.Process(run.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            command = child.cmdline()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        # The module as the command (python -m M), not as an argument of the launcher.
        if "-m" in command and command[command.index("-m") + 1 :][:1] == [
            f"workflow_scripts.{module}"
        ]:
            found.append(child)
    return found


def kill_job(run: subprocess.Popen, module: str) -> int:
    """SIGKILL the job running ``module`` (its shell and everything under it), as a
    scheduler killing the job's process tree would; Snakemake itself stays alive."""
    targets = stage_processes(run, module)
    assert targets, f"no running workflow_scripts.{module} under Snakemake"
    tree = set(targets)
    for target in targets:
        # The job's shell (bash -c ...) is the stage's parent under Snakemake.
        parent = target.parent()
        if parent is not None and parent.pid != run.pid:
            tree.add(parent)
        tree.update(target.children(recursive=True))
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(tree), timeout=30)
    return targets[0].pid


def kill_run(run: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every job it started (a node failure or ``kill -9``)."""
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    # Jobs are in Snakemake's session: nothing of the run may survive.
    leftovers = [p for p in psutil.process_iter(["pid"]) if _in_session(p, run.pid)]
    for process in leftovers:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(leftovers, timeout=30)


def _in_session(process: psutil.Process, session_id: int) -> bool:
    try:
        return os.getsid(process.pid) == session_id
    except (ProcessLookupError, PermissionError):
        return False


def finish(run: subprocess.Popen, timeout: float = 600) -> int:
    try:
        return run.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_run(run)
        raise


# --------------------------------------------------------------------------- outputs
def looks_partial(path: Path) -> bool:
    """Names stages give unfinished work: hidden, with ``.partial`` in the name."""
    return path.name.startswith(".") and ".partial" in path.name


def check_outputs_are_complete(results: Path) -> list[Path]:
    """Open every file under ``results`` that looks finished and check it is whole.

    A file looks finished when neither it nor a folder above it has a partial name
    (checkpoint folders are a stage's own scratch and are checked by their stage).
    Returns the files checked; raises AssertionError naming the first broken one.
    """
    from workflow_scripts.dataset import DatasetError, validate_dataset

    checked = []
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results)
        if not path.is_file() or any(looks_partial(Path(part)) for part in relative.parts):
            continue
        if "checkpoints" in relative.parts or "tensorboard" in relative.parts:
            continue
        suffix = path.suffix
        try:
            if suffix == ".h5":
                validate_dataset(path)
            elif suffix == ".json":
                json.loads(path.read_text())
            elif suffix in (".yml", ".yaml"):
                yaml.safe_load(path.read_text())
            elif suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    assert archive.testzip() is None
            elif suffix == ".png":
                assert path.read_bytes().endswith(b"IEND\xaeB`\x82"), "PNG has no end chunk"
            elif suffix == ".csv" and path.name == "monitor.csv":
                from workflow_scripts.experts.monitor import read_monitor

                episodes = read_monitor(path)
                assert list(episodes.columns) == ["r", "l", "t", "timesteps"]
            elif suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), "pt") as handle:
                    assert list(handle.keys())
        except (DatasetError, AssertionError, ValueError, zipfile.BadZipFile, OSError) as error:
            raise AssertionError(f"{path} looks finished but is not: {error}") from error
        checked.append(path)
    return checked


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder``: compare two to see what changed."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# ------------------------------------------------------------------- trainer command lines
def dm_arguments(datasets: list[Path], run: Path) -> list[str]:
    """``train_dm`` flags for a 4-step run of the tiny DM (tests.support.tiny_models) writing under ``run``."""
    return [
        "--datasets", *map(str, datasets), "--output", str(run / "final"),
        "--checkpoint-dir", str(run / "checkpoints"), "--eval-slide-transitions", "2",
        *as_flags(TINY_DM_RUN | {"checkpoint_every": 1000}),
    ]  # fmt: skip


def qwen_arguments(datasets: list[Path], run: Path, budgets: Path) -> list[str]:
    """``train_qwen`` flags for a 2-step run of the tiny random Qwen3 (tests.support.tiny_models)."""
    return [
        "--datasets", *map(str, datasets), "--budgets", str(budgets),
        "--output", str(run / "final"), "--checkpoint-dir", str(run / "checkpoints"),
        "--random-init", json.dumps(TINY_QWEN3), "--no-gradient-checkpointing",
        *as_flags(TINY_QWEN_RUN | {"max_steps": 2, "checkpoint_every": 1000}),
    ]  # fmt: skip


def summary_table(result: subprocess.CompletedProcess) -> dict[str, dict[str, str]]:
    """``snakemake --summary`` as {output file: {date, rule, log-file(s), status, plan}}."""
    rows = {}
    header = None
    for line in result.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "output_file":
            header = fields
            continue
        if header and len(fields) == len(header):
            rows[fields[0]] = dict(zip(header[1:], fields[1:], strict=True))
    assert rows, f"no --summary table in:\n{output_of(result)}"
    return rows
