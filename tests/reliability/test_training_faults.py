"""Training faults: a diverging run stops with a clear error and keeps its last good
checkpoint; a checkpoint of another model configuration is refused, never half-loaded.

The divergence is real, not injected: a learning rate typed as ``1e3`` instead of ``1e-3``
(the schema accepts any positive rate) blows the DM up at its second step. The injected
NaN at a chosen step, for both trainers, is in the unit tests
(``tests/dm/test_train.py``, ``tests/qwen/test_train.py``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from tests.reliability.reliability_helpers import (
    qwen_arguments,
    snapshot,
    tiny_config,
    write_overlay,
)
from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import TINY_DM_RUN, TINY_QWEN3, as_flags
from tests.support.workflow import QUIET_ENV, snakemake
from workflow_scripts.training import list_checkpoints


@pytest.fixture(scope="module")
def cartpole_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    dataset = write_env_dataset(
        folder / "CartPole-v1.h5", "CartPole-v1", 600, seed=1, policy="heuristic"
    )
    from workflow_scripts.qwen_budgets import main as budgets_cli

    budgets_cli(["--datasets", str(dataset), "--max-seq-length", "384", "--sample-rows", "200",
                 "--output", str(folder / "budgets.json")])  # fmt: skip
    return dataset


def test_diverging_dm_stops_with_a_clear_error_and_keeps_its_last_good_checkpoint(
    cartpole_dataset, tmp_path
):
    command = [
        sys.executable, "-m", "workflow_scripts.train_dm", "--datasets", str(cartpole_dataset),
        "--output", str(tmp_path / "final"), "--checkpoint-dir", str(tmp_path / "checkpoints"),
        "--threads", "1",
        *as_flags(TINY_DM_RUN | {
            "max_steps": 20, "warmup_steps": 0, "learning_rate": 1e3, "min_learning_rate": 1e3,
            "checkpoint_every": 1, "batch_size": 4, "weight_decay": 0.1,
        }),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=QUIET_ENV, timeout=300)

    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr  # one message, no traceback
    match = re.match(r"\[train_dm\] error: non-finite loss or gradient at step (\d+) ", errors[0])
    assert match, errors[0]
    diverged = int(match.group(1))
    last_good = tmp_path / "checkpoints" / f"step_{diverged - 1:08d}"
    assert f"the last good checkpoint {last_good} is kept" in errors[0]
    assert "Lower dm.learning_rate" in errors[0]
    # Every step before was finite and checkpointed; the diverged one was never applied or saved.
    assert list_checkpoints(tmp_path / "checkpoints")[-1] == (diverged - 1, last_good)
    weights = load_file(last_good / "model.safetensors")
    assert all(tensor.isfinite().all() for tensor in weights.values())
    assert not (tmp_path / "final").exists()


def test_dm_checkpoint_of_another_architecture_is_refused_by_the_workflow(built_copy):
    workdir = built_copy
    checkpoints = workdir / "results/models/dm/checkpoints"
    before = snapshot(checkpoints)
    config = tiny_config(dm={"hidden_size": 48})
    overlay = write_overlay(workdir, config, "wider.yaml")

    result = snakemake(workdir, "--profile", "profiles/local", "--cores", "1",
                       "results/models/dm/final", "--configfile", overlay)  # fmt: skip
    assert result.returncode != 0
    log = (workdir / "logs/dm/train.log").read_text()
    assert "belongs to a different training run and is not loaded" in log
    assert "architecture.hidden_size: checkpoint 32 vs now 48" in log
    assert "Move or delete results/models/dm/checkpoints" in log
    assert "step 1/" not in log and "resumed from" not in log
    assert snapshot(checkpoints) == before  # refused, not touched
    assert not (workdir / "results/models/dm/final").exists()  # no half-loaded model


def test_qwen_checkpoint_of_another_model_shape_is_refused(cartpole_dataset, tmp_path, capsys):
    from workflow_scripts.train_qwen import main
    from workflow_scripts.training import list_checkpoints as qwen_checkpoints

    budgets = cartpole_dataset.parent / "budgets.json"
    arguments = qwen_arguments([cartpole_dataset], tmp_path, budgets)
    main([*arguments, "--max-steps", "1", "--checkpoint-every", "1"])
    assert [step for step, _ in qwen_checkpoints(tmp_path / "checkpoints")] == [1]
    before = snapshot(tmp_path / "checkpoints")
    capsys.readouterr()

    wider = json.dumps({**TINY_QWEN3, "hidden_size": 96})
    with pytest.raises(SystemExit) as stopped:
        main([*arguments, "--max-steps", "2", "--random-init", wider])
    assert stopped.value.code == 1
    error = capsys.readouterr().err.strip()
    assert (
        error.startswith("[train_qwen] error: ")
        and "random_init.hidden_size: checkpoint 64 vs now 96" in error
    )
    assert snapshot(tmp_path / "checkpoints") == before
