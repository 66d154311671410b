"""Corrupt or wrong dataset files: one clear error naming the file and the problem, before
any training step, and nothing else deleted or changed.

Each fault is made from a good file the way it happens in practice: a copy cut short by a
full disk, a file edited or written by another tool, a dataset of another env (or of another
Gymnasium version, whose spaces differ) put under this env's name, rows of NaN/inf. The
same file is refused by the hand-run check (``python -m workflow_scripts.validate_dataset``),
by both trainers before their first step, and by the workflow (the ``train_dm`` job fails
naming it, and every other file under ``results/`` stays as it was).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from gymnasium import spaces

from tests.reliability.reliability_helpers import dm_arguments, qwen_arguments, snapshot
from tests.support.datasets import write_env_dataset
from tests.support.workflow import QUIET_ENV, snakemake
from workflow_scripts.dataset import DatasetWriter, check_training_dataset

TARGET = "CartPole-v1.h5"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def drop_rewards(path: Path) -> None:
    with h5py.File(path, "a") as handle:
        del handle["rewards"]


def drop_attribute(path: Path) -> None:
    with h5py.File(path, "a") as handle:
        del handle.attrs["n_transitions"]


def garble_space(path: Path) -> None:
    with h5py.File(path, "a") as handle:
        handle.attrs["observation_space"] = '{"type": "Tuple"}'


def mark_incomplete(path: Path) -> None:
    with h5py.File(path, "a") as handle:
        handle.attrs["complete"] = False


def other_env(path: Path, sources: dict[str, Path]) -> None:
    shutil.copy(sources["Pendulum-v1"], path)


def other_space(path: Path) -> None:
    """A CartPole-v1 file with 5 observation values (as another env version might have)."""
    path.unlink()
    n = 200
    attrs = {"env_id": "CartPole-v1", "n_episodes": 1, "expert_mean_return": 1.0,
             "expert_std_return": 0.0, "seed": 0}  # fmt: skip
    observation_space = spaces.Box(-1.0, 1.0, (5,), np.float32)
    with DatasetWriter(path, n, observation_space, spaces.Discrete(2), attrs) as writer:
        writer.append(np.zeros((n, 5)), np.zeros(n), np.ones(n), np.zeros(n), np.zeros(n))


def poison(name: str, row: int, value: float):
    def corrupt(path: Path) -> None:
        with h5py.File(path, "a") as handle:
            values = handle[name][row]
            handle[name][row] = np.full_like(values, value)

    return corrupt


# fault → (how it is made, the problem the error must state)
FAULTS = {
    "truncated": (truncate, "cannot be opened as HDF5"),
    "missing_dataset": (drop_rewards, "missing dataset(s) rewards"),
    "missing_attribute": (drop_attribute, "missing attribute(s) n_transitions"),
    "unreadable_space_attribute": (garble_space, "unreadable space attribute"),
    "incomplete": (mark_incomplete, "marked incomplete"),
    "other_env": (other_env, "holds env 'Pendulum-v1', expected 'CartPole-v1'"),
    "other_space": (
        other_space,
        "observation space Box(-1.0, 1.0, (5,), float32) is not CartPole-v1's",
    ),  # fmt: skip
    "nan_observation": (
        poison("observations", 123, np.nan),
        "observations has a non-finite value (NaN/inf) at row 123",
    ),  # fmt: skip
    "inf_reward": (
        poison("rewards", 321, np.inf),
        "rewards has a non-finite value (NaN/inf) at row 321",
    ),  # fmt: skip
}


@pytest.fixture(scope="module")
def good_datasets(tmp_path_factory) -> dict[str, Path]:
    """Valid CartPole-v1 and Pendulum-v1 datasets (real env steps) and Qwen budgets for both."""
    folder = tmp_path_factory.mktemp("good")
    paths = {
        "CartPole-v1": write_env_dataset(
            folder / "CartPole-v1.h5", "CartPole-v1", 600, seed=1, policy="heuristic"
        ),
        "Pendulum-v1": write_env_dataset(
            folder / "Pendulum-v1.h5", "Pendulum-v1", 600, seed=2, policy="heuristic"
        ),
    }
    from workflow_scripts.qwen_budgets import main as budgets_cli

    budgets_cli(["--datasets", *map(str, paths.values()), "--max-seq-length", "384",
                 "--sample-rows", "200", "--output", str(folder / "budgets.json")])  # fmt: skip
    return paths


def faulty_copy(fault: str, good_datasets: dict[str, Path], folder: Path) -> list[Path]:
    """The two datasets copied into ``folder``, CartPole-v1's with ``fault``."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = [Path(shutil.copy(path, folder / path.name)) for path in good_datasets.values()]
    corrupt = FAULTS[fault][0]
    if corrupt is other_env:
        corrupt(folder / TARGET, good_datasets)
    else:
        corrupt(folder / TARGET)
    return copies


def test_good_files_pass_every_check(good_datasets):
    for env_id, path in good_datasets.items():
        assert check_training_dataset(path).env_id == env_id


def test_validation_command_names_each_bad_file_and_its_problem(good_datasets, tmp_path):
    files = []
    for fault in FAULTS:
        folder = tmp_path / fault
        faulty_copy(fault, good_datasets, folder)
        files.append(folder / TARGET)
    good = good_datasets["Pendulum-v1"]
    result = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.validate_dataset", str(good), *map(str, files)],
        capture_output=True, text=True, env=QUIET_ENV, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.startswith(f"OK {good}: Pendulum-v1, 600 transitions")
    invalid = result.stderr.strip().splitlines()
    assert len(invalid) == len(FAULTS)  # one line per bad file, no traceback
    for line, (fault, (_, problem)), path in zip(invalid, FAULTS.items(), files, strict=True):
        assert line.startswith(f"INVALID {path}: "), (fault, line)
        assert problem in line, (fault, line)


@pytest.mark.parametrize("model", ["dm", "qwen"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_trainer_refuses_before_any_step_and_touches_nothing(
    model, fault, good_datasets, tmp_path, capsys
):
    datasets = faulty_copy(fault, good_datasets, tmp_path / "datasets")
    run = tmp_path / "run"
    # A checkpoint of an earlier attempt: a refused input must not cost it.
    earlier = run / "checkpoints" / "step_00000002"
    earlier.mkdir(parents=True)
    (earlier / "trainer_state.json").write_text('{"step": 2}')
    before = snapshot(tmp_path)

    if model == "dm":
        from workflow_scripts.train_dm import main

        arguments = dm_arguments(datasets, run)
    else:
        from workflow_scripts.train_qwen import main

        budgets = good_datasets["CartPole-v1"].parent / "budgets.json"
        arguments = qwen_arguments(datasets, run, budgets)
    with pytest.raises(SystemExit) as stopped:
        main(arguments)

    assert stopped.value.code == 1
    output = capsys.readouterr()
    errors = output.err.strip().splitlines()
    assert len(errors) == 1  # one line, no traceback
    assert errors[0].startswith(f"[train_{model}] error: {tmp_path / 'datasets' / TARGET}: ")
    assert FAULTS[fault][1] in errors[0]
    assert "step 1/" not in output.out and "resum" not in output.out  # no step, no resume
    assert snapshot(tmp_path) == before  # nothing deleted, nothing written, nothing changed


def test_workflow_stops_at_the_bad_dataset_and_keeps_everything_else(built_copy):
    """A dataset corrupted after the workflow finished: the rerun of ``train_dm`` fails
    naming the file; every other file under results/ (checkpoints, expert, baseline,
    evaluations) is untouched. Snakemake removes only the output it was rebuilding."""
    workdir = built_copy
    dataset = workdir / "results/datasets" / TARGET
    poison("observations", 7, np.nan)(dataset)
    results = workdir / "results"
    before = snapshot(results)

    result = snakemake(workdir, "--profile", "profiles/local", "--cores", "1",
                       "results/models/dm/final", "--configfile", "tiny.yaml")  # fmt: skip
    assert result.returncode != 0
    assert "Error in rule train_dm" in result.stdout + result.stderr
    log = (workdir / "logs/dm/train.log").read_text()
    assert f"[train_dm] error: results/datasets/{TARGET}: observations has a non-finite value (NaN/inf) at row 7" in log  # fmt: skip
    assert "step 1/" not in log
    after = snapshot(results)
    removed = {path for path in before if path not in after}
    assert removed and all(path.startswith("models/dm/final/") for path in removed)
    assert {path: after[path] for path in before if path in after} == {
        path: digest for path, digest in before.items() if path in after
    }
    assert not [path for path in after if path not in before and "benchmarks" not in path]
