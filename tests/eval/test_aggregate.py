"""The results table: means, Welch p-values, bolding, Average row, paper columns,
confidence intervals, IQM, paired comparisons, CLI."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.eval.eval_inputs import write_scores, write_seed_record
from workflow_scripts.aggregate import (
    SeedScores,
    TableProtocol,
    build_table,
    load_last_evaluations,
    load_scores,
    read_paper_results,
    write_tables,
)
from workflow_scripts.uncertainty import bootstrap_ci

QWEN_CARTPOLE = [100.0, 98.0, 99.0, 100.0, 97.0]
DM_CARTPOLE = [60.0, 65.0, 55.0, 70.0, 62.0]
QWEN_PENDULUM = [40.0, 45.0, 35.0, 50.0, 42.0]
DM_PENDULUM = [41.0, 44.0, 36.0, 49.0, 43.0]
SEEDS = [0, 1, 2, 3, 4]
ENVS = ["CartPole-v1", "Pendulum-v1"]
PAIRED = ("paired_mean_difference", "paired_ci_low", "paired_ci_high", "paired_p_value")


@pytest.fixture
def eval_dir(tmp_path):
    eval_dir = tmp_path / "eval"
    write_scores(
        eval_dir,
        {
            ("qwen", "CartPole-v1"): QWEN_CARTPOLE,
            ("dm", "CartPole-v1"): DM_CARTPOLE,
            ("qwen", "Pendulum-v1"): QWEN_PENDULUM,
            ("dm", "Pendulum-v1"): DM_PENDULUM,
        },
    )
    return eval_dir


def record_paths(eval_dir, models, envs=ENVS, seeds=SEEDS):
    """The per-seed records the aggregate rule is given, in its layout."""
    return [
        eval_dir / model / env_id / f"seed{seed}.json"
        for model in models
        for env_id in envs
        for seed in seeds
    ]


def tables(tmp_path, eval_dir, models, envs=ENVS, display_names=None):
    records = record_paths(eval_dir, models, envs)
    table = write_tables(
        records,
        models,
        envs,
        TableProtocol("final", tuple(SEEDS)),
        tmp_path / "table.csv",
        tmp_path / "table.md",
        display_names,
    )
    return table, pd.read_csv(tmp_path / "table.csv"), (tmp_path / "table.md").read_text()


def test_two_model_table(tmp_path, eval_dir):
    table, csv, markdown = tables(
        tmp_path, eval_dir, ["dm", "qwen"], display_names={"dm": "DM-tiny", "qwen": "Qwen3-tiny"}
    )
    assert list(csv["env_id"]) == ["CartPole-v1", "Pendulum-v1", "Average"]
    cartpole = csv.set_index("env_id").loc["CartPole-v1"]
    assert cartpole["qwen_mean"] == pytest.approx(np.mean(QWEN_CARTPOLE))
    assert cartpole["dm_std"] == pytest.approx(np.std(DM_CARTPOLE, ddof=1))
    assert cartpole["dm_n"] == 5 and cartpole["dm_n_failed"] == 0
    assert cartpole["p_value"] == pytest.approx(
        stats.ttest_ind(QWEN_CARTPOLE, DM_CARTPOLE, equal_var=False).pvalue, rel=1e-12
    )
    assert cartpole["bold"] == "qwen"
    pendulum = csv.set_index("env_id").loc["Pendulum-v1"]
    assert pendulum["p_value"] > 0.05 and pd.isna(pendulum["bold"])  # empty in the CSV
    paper = read_paper_results()
    assert cartpole["paper_dm"] == paper.loc["CartPole-v1", "dm_0_012b_pct"]
    average = csv.set_index("env_id").loc["Average"]
    assert average["dm_mean"] == pytest.approx((np.mean(DM_CARTPOLE) + np.mean(DM_PENDULUM)) / 2)
    assert average["dm_n"] == 2 and pd.isna(average["p_value"]) and pd.isna(average["bold"])
    # The paper's average is over the same two envs, not its 20.
    assert average["paper_qwen"] == pytest.approx((100.00 + 37.07) / 2)
    # Columns: Qwen first as in the paper, named from the config's display names.
    header = markdown.splitlines()[0]
    assert header == (
        "| env_name | Qwen3-tiny (%) | DM-tiny (%) | p (Welch) | paper Qwen-1.7B (%) "
        "| paper DM-0.012B (%) |"
    )
    assert "| CartPole-v1 | **98.80** | 62.40 |" in markdown
    assert "| Pendulum-v1 | 42.40 | 42.60 |" in markdown
    assert "| Average | 70.60 | 52.50 |  | 68.53 | 85.92 |" in markdown


def test_confidence_intervals_per_env(tmp_path, eval_dir):
    _, csv, _ = tables(tmp_path, eval_dir, ["dm", "qwen"])
    rows = csv.set_index("env_id")
    for env_id, model, values in [
        ("CartPole-v1", "qwen", QWEN_CARTPOLE),
        ("CartPole-v1", "dm", DM_CARTPOLE),
        ("Pendulum-v1", "dm", DM_PENDULUM),
    ]:
        low, high = rows.loc[env_id, f"{model}_ci_low"], rows.loc[env_id, f"{model}_ci_high"]
        # The bootstrap interval of that env's seeds: around the mean, within the range.
        assert (low, high) == pytest.approx(bootstrap_ci(values))
        assert min(values) <= low < np.mean(values) < high <= max(values)
        # IQM columns are the Average row's only.
        assert rows.loc[env_id, [f"{model}_iqm", f"{model}_iqm_ci_low"]].isna().all()


def test_average_row_iqm_and_stratified_intervals(tmp_path, eval_dir):
    _, csv, markdown = tables(
        tmp_path, eval_dir, ["dm", "qwen"], display_names={"dm": "DM-tiny", "qwen": "Qwen3-tiny"}
    )
    average = csv.set_index("env_id").loc["Average"]
    # Qwen's 10 per-seed scores sorted: 35 40 | 42 45 50 97 98 99 | 100 100; the IQM is the
    # mean of the middle six, 431 / 6 = 71.83. DM: 36 41 | 43 44 49 55 60 62 | 65 70,
    # 313 / 6 = 52.17.
    assert average["qwen_iqm"] == pytest.approx(431 / 6)
    assert average["dm_iqm"] == pytest.approx(313 / 6)
    for model in ("qwen", "dm"):
        assert average[f"{model}_iqm_ci_low"] < average[f"{model}_iqm"]
        assert average[f"{model}_iqm"] < average[f"{model}_iqm_ci_high"]
        assert average[f"{model}_ci_low"] < average[f"{model}_mean"] < average[f"{model}_ci_high"]
    # The Average (mean_C + mean_P) / 2 has variance (var_C + var_P) / 4, less than var_C
    # here (DM's stds are 5.6 and 4.7): stratified, every sample keeps both envs' seeds,
    # so its interval is narrower than CartPole's.
    cartpole = csv.set_index("env_id").loc["CartPole-v1"]
    assert (
        average["dm_ci_high"] - average["dm_ci_low"]
        < cartpole["dm_ci_high"] - cartpole["dm_ci_low"]
    )
    assert average[["paired_mean_difference", "paired_p_value"]].isna().all()
    # table.md keeps the paper's columns; one note line gives the IQMs.
    assert markdown.splitlines()[0].count("|") == 7
    assert (
        "IQM (interquartile mean of all envs' per-seed scores, 95% stratified bootstrap "
        f"interval): Qwen3-tiny 71.83 [{average['qwen_iqm_ci_low']:.2f}, "
        f"{average['qwen_iqm_ci_high']:.2f}]; DM-tiny 52.17 ["
    ) in markdown


def test_paired_comparison_on_the_same_seeds(tmp_path, eval_dir):
    _, csv, _ = tables(tmp_path, eval_dir, ["dm", "qwen"])
    cartpole = csv.set_index("env_id").loc["CartPole-v1"]
    # Qwen − DM (the table's column order) seed by seed: 40, 33, 44, 30, 35 → mean 36.4.
    assert cartpole["paired_mean_difference"] == pytest.approx(36.4)
    assert 30.0 <= cartpole["paired_ci_low"] < 36.4 < cartpole["paired_ci_high"] <= 44.0
    assert cartpole["paired_p_value"] == pytest.approx(
        stats.ttest_rel(QWEN_CARTPOLE, DM_CARTPOLE).pvalue, rel=1e-12
    )


def test_paired_test_beside_the_bold_not_deciding_it(tmp_path):
    # DM is Qwen minus 1 on every seed: the paired test is certain (p = 0), Welch's test
    # of two wide samples is not (p ≈ 0.8), and the paper's rule bolds nothing.
    eval_dir = tmp_path / "eval"
    write_scores(
        eval_dir,
        {
            ("qwen", "Pendulum-v1"): QWEN_PENDULUM,
            ("dm", "Pendulum-v1"): [score - 1.0 for score in QWEN_PENDULUM],
        },
    )
    _, csv, markdown = tables(tmp_path, eval_dir, ["dm", "qwen"], envs=["Pendulum-v1"])
    pendulum = csv.set_index("env_id").loc["Pendulum-v1"]
    assert pendulum["paired_p_value"] == 0.0 and pendulum["p_value"] > 0.5
    assert pendulum["paired_mean_difference"] == 1.0
    assert (pendulum["paired_ci_low"], pendulum["paired_ci_high"]) == (1.0, 1.0)
    assert pd.isna(pendulum["bold"]) and "**" not in markdown


def test_no_paired_comparison_where_the_seeds_differ():
    scores = {
        ("qwen", "CartPole-v1"): SeedScores(seeds=[0, 1, 2], scores=[100.0, 98.0, 99.0]),
        ("dm", "CartPole-v1"): SeedScores(seeds=[3, 4, 5], scores=[60.0, 65.0, 55.0]),
    }
    table = build_table(scores, ["dm", "qwen"], ["CartPole-v1"]).set_index("env_id")
    assert table.loc["CartPole-v1", list(PAIRED)].isna().all()
    assert table.loc["CartPole-v1", "bold"] == "qwen"  # Welch needs no pairing


def test_display_names_default_to_model_keys(tmp_path, eval_dir):
    _, _, markdown = tables(tmp_path, eval_dir, ["dm", "qwen"])
    assert markdown.splitlines()[0].startswith("| env_name | qwen (%) | dm (%) | p (Welch) |")


def test_table_with_one_model_only(tmp_path, eval_dir):
    _, csv, markdown = tables(tmp_path, eval_dir, ["dm"], display_names={"dm": "DM-tiny"})
    assert not any(column.startswith("qwen") for column in csv.columns)
    assert "paper_qwen" not in csv.columns
    assert csv["p_value"].isna().all() and csv["bold"].isna().all()
    assert csv[list(PAIRED)].isna().all().all()
    assert list(csv.columns[:10]) == [
        "env_id", "dm_mean", "dm_std", "dm_n", "dm_n_failed", "dm_ci_low", "dm_ci_high",
        "dm_iqm", "dm_iqm_ci_low", "dm_iqm_ci_high",
    ]  # fmt: skip
    assert markdown.splitlines()[0] == "| env_name | DM-tiny (%) | paper DM-0.012B (%) |"
    assert "**" not in markdown and "Welch" not in markdown


def test_env_absent_from_config_is_absent_from_table(tmp_path, eval_dir):
    _, csv, markdown = tables(tmp_path, eval_dir, ["dm", "qwen"], envs=["Pendulum-v1"])
    assert list(csv["env_id"]) == ["Pendulum-v1", "Average"]
    assert "CartPole-v1" not in markdown


def test_missing_per_seed_file_is_an_error_naming_it(tmp_path, eval_dir):
    missing = eval_dir / "dm" / "Pendulum-v1" / "seed3.json"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        tables(tmp_path, eval_dir, ["dm", "qwen"])
    assert not (tmp_path / "table.csv").exists()


def test_records_are_found_by_what_they_hold_not_by_their_order(eval_dir):
    records = record_paths(eval_dir, ["dm", "qwen"])
    forward = load_scores(records, ["dm", "qwen"], ENVS, SEEDS)
    assert load_scores(records[::-1], ["dm", "qwen"], ENVS, SEEDS) == forward
    assert forward["qwen", "CartPole-v1"].scores == QWEN_CARTPOLE


@pytest.mark.parametrize(
    ("seed_held", "problem"),
    [
        (4, r"seed4\.json and .*seed1\.json: both hold"),
        (7, r"seed1\.json: holds model 'qwen', env 'CartPole-v1', seed 7, which are not among"),
    ],
)
def test_record_holding_another_seed_is_an_error_naming_it(eval_dir, seed_held, problem):
    path = eval_dir / "qwen" / "CartPole-v1" / "seed1.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "seed": seed_held}))
    with pytest.raises(ValueError, match=problem):
        load_scores(
            record_paths(eval_dir, ["qwen"], ["CartPole-v1"]), ["qwen"], ["CartPole-v1"], SEEDS
        )


def test_configured_seed_without_a_record_is_an_error(eval_dir):
    records = record_paths(eval_dir, ["dm"], ["CartPole-v1"], seeds=SEEDS[:-1])
    with pytest.raises(
        ValueError, match="no per-seed evaluation of model dm, env CartPole-v1, seed 4"
    ):
        load_scores(records, ["dm"], ["CartPole-v1"], SEEDS)


def test_failed_rollouts_counted_and_marked(tmp_path, eval_dir):
    for seed in (1, 3):
        write_seed_record(eval_dir, "qwen", "Pendulum-v1", seed, 0.0, failure="not valid JSON")
    _, csv, markdown = tables(tmp_path, eval_dir, ["dm", "qwen"])
    assert csv.set_index("env_id").loc["Pendulum-v1", "qwen_n_failed"] == 2
    assert "23.40†" in markdown  # (40 + 0 + 35 + 0 + 42) / 5
    assert "† qwen on Pendulum-v1: 2 of 5 rollouts ended by an invalid model output" in markdown


def test_env_missing_from_the_paper_has_empty_paper_cells(tmp_path):
    eval_dir = tmp_path / "eval"
    write_scores(eval_dir, {("dm", "Pendulum-v0"): [1.0] * 5})
    _, csv, markdown = tables(tmp_path, eval_dir, ["dm"], envs=["Pendulum-v0"])
    assert math.isnan(csv.set_index("env_id").loc["Pendulum-v0", "paper_dm"])
    assert "| Pendulum-v0 | 1.00 |  |" in markdown


def test_cli(tmp_path, eval_dir):
    records = map(str, record_paths(eval_dir, ["dm", "qwen"]))
    command = [
        sys.executable, "-m", "workflow_scripts.aggregate", "--records", *records,
        "--models", "dm", "qwen", "--envs", *ENVS, "--seeds", *map(str, SEEDS),
        "--display-name", "dm=DM-tiny", "--display-name", "qwen=Qwen3-tiny",
        "--table-csv", str(tmp_path / "out" / "table.csv"),
        "--table-md", str(tmp_path / "out" / "table.md"),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    csv = pd.read_csv(tmp_path / "out" / "table.csv")
    assert csv.set_index("env_id").loc["CartPole-v1", "bold"] == "qwen"
    assert "Qwen3-tiny (%)" in (tmp_path / "out" / "table.md").read_text()


def test_cli_missing_file_exits_with_its_name(tmp_path, eval_dir):
    records = map(str, record_paths(eval_dir, ["dm"], ["CartPole-v1"], seeds=[0, 9]))
    command = [
        sys.executable, "-m", "workflow_scripts.aggregate", "--records", *records,
        "--models", "dm", "--envs", "CartPole-v1", "--seeds", "0", "9",
        "--table-csv", str(tmp_path / "table.csv"), "--table-md", str(tmp_path / "table.md"),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode != 0
    assert str(eval_dir / "dm" / "CartPole-v1" / "seed9.json") in completed.stderr


def _snapshot_record(folder, model, env_id, step, seed, score):
    path = folder / model / f"step{step}" / env_id / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"model": model, "env_id": env_id, "seed": seed, "snapshot": {"step": step}}
    path.write_text(json.dumps(record | {"normalized_score": score, "failure": None}))
    return path


def test_last_evaluations_are_the_newest_with_distinct_seeds(tmp_path):
    # Steps 100..500 with seeds 1000+2i, 1001+2i; step 600 repeats seed 1008 of step 500.
    plan = {step: [1000 + 2 * i, 1001 + 2 * i] for i, step in enumerate(range(100, 600, 100))}
    plan[600] = [1008, 1010]
    records = [
        _snapshot_record(tmp_path, "dm", "CartPole-v1", step, seed, step + seed / 10000)
        for step, seeds in plan.items()
        for seed in seeds
    ]
    chosen = load_last_evaluations(records[::-1], ["dm"], ["CartPole-v1"], 4)["dm", "CartPole-v1"]
    # Newest first: 600/1010, 600/1008, 500/1009, (500/1008: seed taken), 400/1007.
    assert chosen.seeds == [1007, 1009, 1008, 1010]
    assert chosen.scores == [400.1007, 500.1009, 600.1008, 600.101]
    with pytest.raises(ValueError, match="11 evaluations with distinct seeds.*needs 12"):
        load_last_evaluations(records, ["dm"], ["CartPole-v1"], 12)


def test_last_evaluations_table_says_so_and_refuses_final_records(tmp_path, eval_dir):
    records = [
        _snapshot_record(tmp_path / "curves", "dm", env_id, step, seed, 50.0 + seed % 7)
        for env_id in ENVS
        for step, seed in ((100, 1), (200, 2), (300, 3))
    ]
    protocol = TableProtocol("last_evaluations", n_evaluations=3)
    write_tables(records, ["dm"], ENVS, protocol, tmp_path / "t.csv", tmp_path / "t.md")
    assert "the last 3 periodic evaluations per env" in (tmp_path / "t.md").read_text()
    final_records = record_paths(eval_dir, ["dm"], ENVS)
    with pytest.raises(ValueError, match="no snapshot step"):
        write_tables(final_records, ["dm"], ENVS, protocol, tmp_path / "t.csv", tmp_path / "t.md")


def test_a_third_row_leaves_the_papers_pair_and_its_t_test_unchanged(tmp_path, eval_dir):
    _, two, _ = tables(tmp_path, eval_dir, ["dm", "qwen"])
    write_scores(
        eval_dir,
        {("knn", env_id): [90.0, 95.0, 85.0, 92.0, 88.0] for env_id in ENVS},
    )
    table, three, markdown = tables(
        tmp_path, eval_dir, ["dm", "qwen", "knn"], display_names={"knn": "1-NN retrieval"}
    )
    assert list(three["p_value"]) == pytest.approx(list(two["p_value"]), nan_ok=True)
    assert list(three["bold"].fillna("")) == list(two["bold"].fillna(""))
    assert three.set_index("env_id").loc["CartPole-v1", "knn_mean"] == pytest.approx(90.0)
    header = markdown.splitlines()[0]
    assert header.startswith("| env_name | qwen (%) | dm (%) | 1-NN retrieval (%) | p (Welch) |")
    assert "Bold: the better of qwen and dm" in markdown


def test_rows_without_snapshots_are_read_as_under_final_beside_the_last_evaluations(
    tmp_path, eval_dir
):
    curve_records = [
        _snapshot_record(tmp_path / "curves", "dm", env_id, step, seed, 60.0 + seed % 1000)
        for env_id in ENVS
        for step, seed in ((100, 1001), (200, 1002))
    ]
    knn_records = record_paths(eval_dir, ["qwen"], seeds=SEEDS)  # a row read per seed
    protocol = TableProtocol("last_evaluations", tuple(SEEDS), 2, final_models=("qwen",))
    table = write_tables(
        curve_records + knn_records, ["dm", "qwen"], ENVS, protocol,
        tmp_path / "t.csv", tmp_path / "t.md",
    )  # fmt: skip
    rows = table.set_index("env_id")
    assert rows.loc["CartPole-v1", "dm_mean"] == pytest.approx(61.5)  # its 2 evaluations
    assert rows.loc["CartPole-v1", "qwen_mean"] == pytest.approx(np.mean(QWEN_CARTPOLE))
    assert "qwen (no snapshots): mean over 5 episodes" in (tmp_path / "t.md").read_text()
