"""The evaluate / aggregate / plots rules in the real workflow: the plan, single-seed
reruns, and the Snakemake report over a results folder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.eval.eval_inputs import write_baseline, write_expert_summary, write_seed_record
from tests.support.datasets import write_dataset
from tests.support.workflow import copy_workflow, job_counts, planned_outputs, snakemake
from workflow_scripts.config import load_config
from workflow_scripts.snapshots import curve_seeds


def test_paper_config_plans_every_snapshot_evaluation(repo_root, tmp_path):
    result = snakemake(
        repo_root, "all", "-n", "-d", tmp_path, "-s", repo_root / "Snakefile",
        "--configfile", repo_root / "config.yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout)
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    assert len(config["envs"]) == 20 and config["models"] == ["dm", "qwen"]
    # The paper's protocol: the table reads the last snapshots' curve evaluations, one job
    # per snapshot (every env and seed); no final-model evaluation jobs.
    assert config["evaluation"]["protocol"] == "last_evaluations"
    snapshots = {
        model: config[model]["max_steps"] // config[model]["snapshot_every"]
        for model in ("dm", "qwen")
    }
    assert snapshots == {"dm": 40, "qwen": 20}
    assert counts["evaluate_snapshot"] == 60 and "evaluate" not in counts
    assert counts["aggregate"] == counts["plots"] == counts["curves"] == 1
    for model, step in (("dm", 200000), ("qwen", 36000), ("dm", 5000)):
        assert f"results/curves/{model}/step{step}" in result.stdout


def test_final_protocol_plans_one_job_per_seed(repo_root, tmp_path):
    (tmp_path / "final.yaml").write_text("evaluation: {protocol: final}\n")
    result = snakemake(
        repo_root, "results/table.csv", "-n", "-d", tmp_path, "-s", repo_root / "Snakefile",
        "--configfile", repo_root / "config.yaml", tmp_path / "final.yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout)
    assert counts["evaluate"] == 20 * 2 * 10 == 400 and "evaluate_snapshot" not in counts


@pytest.fixture(scope="module")
def finished_demo(repo_root, tmp_path_factory):
    """A copy of the workflow whose demo results all exist and are up to date.

    Every output the demo plans is created in DAG order (so Snakemake sees it as done);
    the files the evaluation stages read get real content: baselines, datasets, expert
    monitor logs and per-seed records. Table and plots are then left for the test.
    """
    workdir = tmp_path_factory.mktemp("demo")
    copy_workflow(workdir)
    demo = ["--configfile", "config.demo.yaml"]
    (workdir / "final.yaml").write_text("evaluation: {protocol: final}\n")
    outputs = []  # the demo's (the paper's protocol), then the final protocol's records
    for overlay in ([], ["final.yaml"]):
        plan = snakemake(workdir, "-n", "--forceall", "all", *demo, *overlay)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        outputs += [path for path in planned_outputs(plan.stdout) if path not in outputs]
    config = load_config(workdir / "config.yaml", workdir / "config.demo.yaml")
    envs, models = config["envs"], config["models"]
    seeds = config["evaluation"]["seeds"]
    rng = np.random.default_rng(0)
    start = 1_700_000_000
    for index, path in enumerate(outputs):
        target = workdir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.startswith(
            (
                "results/table",
                "results/plots",
                "results/comparison",
                "results/scores",
                "results/curves.",
            )
        ):
            continue
        kind, rest = re.fullmatch(r"results/(\w+)/(.+)", path).groups()
        if kind == "models" and re.search(r"(final|snapshots/step\d+)$", rest):
            target.mkdir(exist_ok=True)
            (target / "config.json").write_text("{}")
        elif kind == "curves":
            model, step = re.fullmatch(r"(\w+)/step(\d+)", rest).groups()
            for env_id in envs:
                for seed in curve_seeds(config[model], config["evaluation"]["curves"], int(step)):
                    record = target / env_id / f"seed{seed}.json"
                    record.parent.mkdir(parents=True, exist_ok=True)
                    progress = {"step": int(step), "train_hours": int(step) / 1e4}
                    score = float(rng.normal(int(step) / 40, 5))
                    record.write_text(json.dumps({
                        "model": model, "env_id": env_id, "seed": seed, "snapshot": progress,
                        "normalized_score": score, "failure": None,
                    }))  # fmt: skip
        elif kind == "baselines":
            env_id = Path(rest).stem
            write_baseline(target, env_id, 10.0, None)
        elif kind == "datasets":
            env_id = Path(rest).stem
            write_dataset(target, env_id, 200.0)
        elif kind == "experts" and rest.endswith("expert.json"):
            env_id = Path(rest).parent.name
            write_expert_summary(target, env_id, 190.0, "below" if env_id == envs[0] else "pass")
        elif path.endswith("monitor.csv"):
            lengths = rng.integers(10, 100, 50)
            rows = [f"{5 * i},{n},{i},{lengths[: i + 1].sum()}" for i, n in enumerate(lengths)]
            header = json.dumps({"env_id": Path(rest).parent.name})
            target.write_text(f"#{header}\nr,l,t,timesteps\n" + "\n".join(rows) + "\n")
        elif kind == "eval":
            model, env_id, seed = re.fullmatch(r"(\w+)/(.+)/seed(\d+)\.json", rest).groups()
            mean = 80.0 if model == "dm" else 30.0
            write_seed_record(
                workdir / "results/eval", model, env_id, int(seed), float(rng.normal(mean, 5))
            )
        else:
            target.write_text("x")
        os.utime(target, (start + index, start + index))
    return workdir, demo, envs, models, seeds


def test_table_plots_and_report_over_demo_results(finished_demo):
    workdir, demo, envs, models, seeds = finished_demo
    plan = snakemake(workdir, "-n", "all", *demo)
    assert job_counts(plan.stdout) == {
        "aggregate": 1, "compare": 1, "reference_scores": 1, "plots": 1, "curves": 1, "all": 1,
    }  # fmt: skip

    run = snakemake(workdir, "--cores", "1", "all", *demo)
    assert run.returncode == 0, run.stdout + run.stderr
    table = (workdir / "results/table.md").read_text()
    config = yaml.safe_load((workdir / "config.demo.yaml").read_text())
    for model in models:
        assert f"| {config[model]['display_name']} (%) |" in table
    for env_id in envs:
        assert f"| {env_id} |" in table
    lines = (workdir / "results/table.csv").read_text().splitlines()
    assert len(lines) == 1 + len(envs) + 1  # header, envs, Average
    # The first env's expert is below its references: a warning under the table.
    assert "Expert quality warning** (1 of 3 experts)" in table
    assert lines[0].endswith(",expert_quality") and lines[1].endswith(",below")
    comparison = (workdir / "results/comparison.md").read_text()
    assert all(f"| {env_id} |" in comparison for env_id in envs)
    # The paper's protocol: the last 10 evaluations, here 2 seeds at each of 5 snapshots.
    assert "the last 10 periodic evaluations per env" in table
    curves = (workdir / "results/curves.csv").read_text().splitlines()
    assert len(curves) == 1 + 2 * 5  # header, 5 snapshots of each model

    report = snakemake(workdir, "--report", "results/report.html", *demo)
    assert report.returncode == 0, report.stdout + report.stderr
    html = (workdir / "results/report.html").read_text()
    for name in ("table.csv", "table.md", "normalized_scores.png", "expert_curves.png"):
        assert name in html
    assert "curve.png" in html  # every env's own expert curve, from train_expert


def test_single_seed_target_reruns_exactly_that(finished_demo):
    workdir, demo, envs, models, seeds = finished_demo
    target = f"results/eval/{models[0]}/{envs[0]}/seed{seeds[-1]}.json"
    plan = snakemake(workdir, "-n", "-f", target, *demo)
    assert job_counts(plan.stdout) == {"evaluate": 1}, plan.stdout
    assert f"--seed {seeds[-1]}" in snakemake(workdir, "-n", "-p", "-f", target, *demo).stdout


def test_deleted_per_seed_file_is_rebuilt_before_the_table_is_remade(finished_demo):
    """Snakemake 9 keeps a table made from complete records even if one is deleted later
    (it plans nothing for results/table.csv); remaking the table rebuilds the missing
    record first instead of aggregating without it (docs/evaluation.md, "Reruns")."""
    workdir, demo, envs, models, seeds = finished_demo
    record = workdir / f"results/eval/{models[-1]}/{envs[-1]}/seed{seeds[0]}.json"
    saved = record.read_text()
    record.unlink()
    final = [*demo, "final.yaml"]  # the final protocol's table reads results/eval/
    try:
        plan = snakemake(workdir, "-n", "results/table.csv", "-R", "aggregate", *final)
        assert job_counts(plan.stdout) == {"evaluate": 1, "aggregate": 1}, plan.stdout
        assert f"seed{seeds[0]}.json" in plan.stdout
    finally:
        record.write_text(saved)
