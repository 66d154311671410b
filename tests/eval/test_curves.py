"""Learning curves: snapshot evaluations in one job, curves.csv, time-to-score, plateau test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.eval.eval_inputs import write_baseline
from tests.support.datasets import write_dataset
from tests.support.tiny_models import tiny_dm_config
from workflow_scripts.curves import (
    curve_table,
    load_curve_records,
    plateau_test,
    time_to_score,
    write_curves,
)
from workflow_scripts.evaluate import evaluate_model_seed
from workflow_scripts.evaluate_snapshot import evaluate_snapshot

ENVS = ["CartPole-v1", "Pendulum-v1"]
TIMING = ("load_time_s", "wall_time_s", "episode_time_s", "model_dir", "snapshot")


@pytest.fixture
def snapshot(tmp_path):
    """A tiny DM snapshot folder (random weights) with the progress a trainer records."""
    from workflow_scripts.dm.modeling_dm import DecisionModel

    folder = tmp_path / "snapshots" / "step20"
    DecisionModel(tiny_dm_config(ENVS)).save_pretrained(folder)
    progress = {"step": 20, "transitions_seen": 640, "tokens_seen": 1280, "train_hours": 0.01}
    (folder / "training.json").write_text(
        json.dumps({"progress": progress | {"device_hours": 0.01}})
    )
    return folder


def _inputs(tmp_path):
    baselines = [
        write_baseline(tmp_path / "b" / "CartPole-v1.json", "CartPole-v1", 22.0, 500),
        write_baseline(tmp_path / "b" / "Pendulum-v1.json", "Pendulum-v1", -1200.0, 200),
    ]
    datasets = [
        write_dataset(tmp_path / "d" / "CartPole-v1.h5", "CartPole-v1", 500.0),
        write_dataset(tmp_path / "d" / "Pendulum-v1.h5", "Pendulum-v1", -150.0),
    ]
    return baselines, datasets


def test_one_snapshot_job_writes_the_records_per_seed_jobs_write(tmp_path, snapshot):
    baselines, datasets = _inputs(tmp_path)
    output = tmp_path / "curves" / "dm" / "step20"
    records = evaluate_snapshot(
        "dm", snapshot, ENVS, [1002, 1003], baselines, datasets, output, device="cpu"
    )
    assert sorted(path.name for path in output.iterdir()) == ENVS
    assert len(records) == 4 and not list(output.parent.glob(".*partial"))
    for env_id, baseline, dataset in zip(ENVS, baselines, datasets, strict=True):
        for seed in (1002, 1003):
            batched = json.loads((output / env_id / f"seed{seed}.json").read_text())
            assert batched["snapshot"]["step"] == 20
            alone = evaluate_model_seed(
                "dm", snapshot, env_id, seed, baseline, dataset, tmp_path / "alone.json",
                device="cpu",
            )  # fmt: skip
            alone = json.loads(json.dumps(alone))
            assert {k: v for k, v in batched.items() if k not in TIMING} == {
                k: v for k, v in alone.items() if k not in TIMING
            }


def test_a_failing_snapshot_job_leaves_no_output_folder(tmp_path, snapshot):
    baselines, datasets = _inputs(tmp_path)
    output = tmp_path / "curves" / "dm" / "step20"
    with pytest.raises(ValueError, match="baseline of 'CartPole-v1', expected 'Pendulum-v1'"):
        evaluate_snapshot(
            "dm", snapshot, ENVS, [1], [baselines[0]] * 2, datasets, output, device="cpu"
        )
    assert not output.exists()


def _write_curve(tmp_path, model, scores_by_step, envs=ENVS, hours_per_step=0.001):
    """Records for ``{step: {env: [scores]}}``, seeds numbered per snapshot."""
    paths = []
    for index, (step, by_env) in enumerate(sorted(scores_by_step.items())):
        progress = {
            "step": step, "transitions_seen": step * 10, "tokens_seen": step * 20,
            "train_hours": step * hours_per_step, "device_hours": 2 * step * hours_per_step,
        }  # fmt: skip
        for env_id in envs:
            for offset, score in enumerate(by_env[env_id]):
                seed = 1000 + index * len(by_env[env_id]) + offset
                path = tmp_path / model / f"step{step}" / env_id / f"seed{seed}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                record = {"model": model, "env_id": env_id, "seed": seed, "snapshot": progress}
                path.write_text(json.dumps(record | {"normalized_score": score, "failure": None}))
                paths.append(path)
    return paths


def test_curve_table_averages_envs_with_hand_computed_values(tmp_path):
    records = _write_curve(
        tmp_path, "dm",
        {100: {"CartPole-v1": [10.0, 30.0], "Pendulum-v1": [0.0, 0.0]},
         200: {"CartPole-v1": [100.0, 100.0], "Pendulum-v1": [50.0, 70.0]}},
    )  # fmt: skip
    table = curve_table(load_curve_records(records, ["dm"], ENVS), ENVS)
    assert list(table["step"]) == [100, 200]
    # Step 100: CartPole mean 20, Pendulum 0 -> average 10; IQM of [0, 0, 10, 30] = 5.
    first, second = table.iloc[0], table.iloc[1]
    assert first["score_CartPole-v1"] == 20.0 and first["average"] == 10.0
    assert first["iqm"] == pytest.approx(5.0)
    assert first["average_ci_low"] <= 10.0 <= first["average_ci_high"]
    assert second["average"] == pytest.approx(80.0) and second["train_hours"] == 0.2
    assert second["device_hours"] == 0.4 and second["n_seeds"] == 2


def test_curve_records_missing_an_env_are_refused(tmp_path):
    records = _write_curve(tmp_path, "dm", {100: {"CartPole-v1": [1.0]}}, envs=["CartPole-v1"])
    with pytest.raises(ValueError, match="dm step 100: episodes per env"):
        load_curve_records(records, ["dm"], ENVS)


def _synthetic(steps, averages):
    return pd.DataFrame(
        {
            "step": steps,
            "average": averages,
            "train_hours": [step / 100 for step in steps],
            "device_hours": [step / 50 for step in steps],
        }
    )


def test_time_to_score_is_the_first_snapshot_reaching_each_threshold():
    curve = _synthetic([100, 200, 300, 400, 500], [10.0, 40.0, 55.0, 49.0, 85.0])
    reached = time_to_score(curve, [50, 80, 95])
    assert reached[0]["first"] == {"step": 300, "train_hours": 3.0, "device_hours": 6.0}
    assert reached[1]["first"]["step"] == 500
    assert reached[2]["first"] is None


def test_plateau_test_tells_rising_from_flat_curves():
    steps = [1000, 2000, 3000, 4000, 5000, 6000]
    rising = _synthetic(steps, [20.0, 31.0, 39.0, 52.0, 60.0, 71.0])
    trend, verdict = plateau_test(rising, 5)
    assert verdict == "rising" and trend.slope == pytest.approx(10.0, abs=0.5)
    assert trend.n_points == 5  # the last 5 of 6
    flat = _synthetic(steps, [55.0, 57.0, 54.0, 56.0, 55.0, 56.0])
    assert plateau_test(flat, 5)[1] == "flat"
    falling = _synthetic(steps, [90.0, 80.0, 71.0, 60.0, 50.0, 41.0])
    assert plateau_test(falling, 6)[1] == "falling"
    assert plateau_test(_synthetic([1, 2], [1.0, 2.0]), 5)[1] == "too few points"


def test_write_curves_writes_csv_markdown_and_plot(tmp_path):
    rng = np.random.default_rng(0)
    scores = {
        step: {env_id: list(rng.normal(step / 10, 5, size=2)) for env_id in ENVS}
        for step in (100, 200, 300, 400)
    }
    records = _write_curve(tmp_path / "r", "dm", scores)
    out = tmp_path / "out"
    write_curves(
        records, ["dm"], ENVS, [20, 90], 3, out / "curves.csv", out / "curves.md",
        out / "learning_curves.png", display_names={"dm": "DM-tiny"},
    )  # fmt: skip
    table = pd.read_csv(out / "curves.csv")
    assert len(table) == 4 and {"average_ci_low", "iqm", "score_Pendulum-v1"} <= set(table)
    markdown = (out / "curves.md").read_text()
    assert "| DM-tiny | 4 | 400 |" in markdown and "not reached" in markdown
    assert (out / "learning_curves.png").stat().st_size > 10_000


def test_a_snapshot_is_read_once_for_all_envs_and_again_when_it_changes(tmp_path, snapshot):
    from workflow_scripts.dm.modeling_dm import DecisionModel
    from workflow_scripts.dm.policy import load_policy

    first = load_policy(snapshot, "CartPole-v1", "cpu")
    second = load_policy(snapshot, "Pendulum-v1", "cpu")
    assert first.model is second.model  # one load for both envs
    DecisionModel(tiny_dm_config(ENVS)).save_pretrained(snapshot)  # the folder is rewritten
    assert load_policy(snapshot, "CartPole-v1", "cpu").model is not first.model
