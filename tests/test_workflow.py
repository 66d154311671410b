"""The Snakemake workflow as a whole: lint, the paper-scale plan, and a tiny real run."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.workflow import copy_workflow, job_counts, snakemake


def test_lint_is_clean(repo_root):
    result = snakemake(repo_root, "--lint", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_paper_config_plans_every_env(repo_root, tmp_path):
    # Targets before --configfile, which takes every value that follows it.
    result = snakemake(repo_root, "results/table.csv", "-n", "-d", tmp_path, "-s", repo_root / "Snakefile",
                       "--configfile", repo_root / "config.yaml")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout)
    for rule in ("hyperparams", "train_expert", "baseline", "rollout"):
        assert counts[rule] == 20, (rule, counts)


def test_reproduction_config_plans_the_eight_envs(repo_root, tmp_path):
    result = snakemake(repo_root, "all", "-n", "-d", tmp_path, "-s", repo_root / "Snakefile",
                       "--configfile", repo_root / "config.yaml", repo_root / "config.repro.yaml")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout)
    for rule in ("hyperparams", "train_expert", "baseline", "rollout"):
        assert counts[rule] == 8, (rule, counts)
    assert counts["train_dm"] == 1 and counts["evaluate"] == 80  # the final protocol
    assert counts["evaluate_snapshot"] == 8 and counts["curves"] == 1  # its learning curve
    assert "train_qwen" not in counts


TINY_DATA_CONFIG = {
    "envs": ["CartPole-v1"],
    "models": [],
    "experts": {"CartPole-v1": {"n_timesteps": 2048}},
    "expert_training": {"checkpoint_every": 1024, "eval_episodes": 1},
    "baseline": {"n_episodes": 5},
    "dataset": {"n_transitions": 2000, "n_envs": 4},
    "evaluation": {"protocol": "final", "seeds": [0, 1]},
}


def test_tiny_run_produces_a_valid_dataset(repo_root, tmp_path):
    copy_workflow(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_DATA_CONFIG))
    targets = ["results/datasets/CartPole-v1.h5", "results/baselines/CartPole-v1.json"]
    result = snakemake(tmp_path, *targets, "--cores", "2", "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    from workflow_scripts.dataset import validate_dataset

    info = validate_dataset(tmp_path / "results/datasets/CartPole-v1.h5", env_id="CartPole-v1")
    assert info.n_transitions == 2000
    assert (tmp_path / "results/experts/CartPole-v1/curve.png").exists()
    # Everything is up to date now: a second call plans nothing.
    again = snakemake(tmp_path, *targets, "-n", "--configfile", "tiny.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_stops_before_any_job(repo_root, tmp_path):
    copy_workflow(tmp_path)
    bad = dict(TINY_DATA_CONFIG, envs=["CartPol-v1"])
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = snakemake(tmp_path, "-n", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert (
        "envs[0]" in result.stderr + result.stdout
        and "CartPole-v1" in result.stderr + result.stdout
    )
    assert not (tmp_path / "results").exists()


def plan(repo_root: Path, tmp_path: Path, target: str) -> str:
    """The dry-run output of one target on the paper config, in an empty results folder."""
    result = snakemake(repo_root, target, "-n", "-d", tmp_path, "-s", repo_root / "Snakefile",
                       "--configfile", repo_root / "config.yaml")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_one_env_dataset_plans_only_that_env(repo_root, tmp_path):
    output = plan(repo_root, tmp_path, "results/datasets/Hopper-v4.h5")
    # The expert's quality gate reads the env's random baseline.
    assert job_counts(output) == {
        "hyperparams": 1,
        "baseline": 1,
        "train_expert": 1,
        "rollout": 1,
    }
    assert "env=Hopper-v4" in output
    for other in ("Walker2d-v4", "Ant-v4"):
        assert f"env={other}" not in output


def test_one_evaluation_seed_plans_one_evaluation(repo_root, tmp_path):
    # The DM is trained on every env's dataset, so from nothing the whole data half is
    # planned; of the evaluations, only the one asked for.
    output = plan(repo_root, tmp_path, "results/eval/dm/Hopper-v4/seed3.json")
    counts = job_counts(output)
    assert counts["evaluate"] == 1 and counts["train_dm"] == 1 and counts["rollout"] == 20
    assert "train_qwen" not in counts and "aggregate" not in counts
    assert "--env Hopper-v4 --seed 3" in output or "env=Hopper-v4" in output
