"""The registry of the table's rows: kinds, their config sections, what each evaluates."""

from __future__ import annotations

import copy

import pytest

from workflow_scripts.config import ConfigError, load_config, validate_config
from workflow_scripts.models import (
    chat_model,
    display_name,
    evaluated_model_path,
    has_snapshots,
    model_kind,
    retrieval_neighbours,
)


@pytest.fixture(scope="module")
def paper_config(repo_root):
    return load_config(repo_root / "config.yaml")


def test_every_kind_resolves_to_its_section_and_evaluated_files(paper_config):
    config = copy.deepcopy(paper_config)
    config["endpoints"] = {
        "served": {"display_name": "Served", "base_url": "http://localhost:8000",
                   "model": "org/name", "n_transitions_max": 32},
    }  # fmt: skip
    config["models"] = ["dm", "qwen", "knn", "served"]
    validate_config(config)
    assert [model_kind(config, model) for model in config["models"]] == [
        "dm", "qwen", "retrieval", "endpoint",
    ]  # fmt: skip
    assert display_name(config, "knn") == "1-NN retrieval"
    assert display_name(config, "served") == "Served"
    assert evaluated_model_path(config, "dm", "Hopper-v4") == "results/models/dm/final"
    assert evaluated_model_path(config, "knn", "Hopper-v4") == "results/retrieval/Hopper-v4.h5"
    assert evaluated_model_path(config, "served", "Hopper-v4") == "results/endpoints/served"
    assert has_snapshots(config, "dm") and not has_snapshots(config, "knn")


def test_a_retrieval_context_row_is_its_chat_models_kind_reading_its_files(paper_config):
    config = copy.deepcopy(paper_config)
    config["endpoints"] = {
        "served": {"base_url": "http://localhost:8000", "model": "org/name", "n_transitions_max": 32},
    }  # fmt: skip
    config["retrieval"] |= {
        "qwen_knn": {"chat_model": "qwen", "neighbours": 8, "display_name": "Qwen + retrieval"},
        "served_knn": {"chat_model": "served", "neighbours": 4},
    }
    # The endpoint itself need not be a row of the table.
    config["models"] = ["dm", "qwen", "qwen_knn", "served_knn"]
    validate_config(config)
    assert model_kind(config, "qwen_knn") == "qwen"
    assert model_kind(config, "served_knn") == "endpoint"
    assert display_name(config, "qwen_knn") == "Qwen + retrieval"
    assert display_name(config, "served_knn") == "served_knn"
    assert chat_model(config, "qwen_knn") == "qwen" and chat_model(config, "knn") is None
    assert retrieval_neighbours(config, "served_knn") == 4
    assert retrieval_neighbours(config, "knn") is None
    assert evaluated_model_path(config, "qwen_knn", "Hopper-v4") == "results/models/qwen/final"
    assert evaluated_model_path(config, "served_knn", "Hopper-v4") == "results/endpoints/served"
    # Its own row, final model only: no snapshots of its own.
    assert not has_snapshots(config, "qwen_knn")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(models=["dm", "nobody"]), "models[1]: 'nobody' is neither dm, qwen"),
        (
            lambda c: c.update(models=["dm"], retrieval={"dm": {}}),
            "models[0]: 'dm' is reserved for the trained model",
        ),
        (
            lambda c: c.update(
                models=["x"],
                endpoints={"x": {"base_url": "localhost", "model": "m", "n_transitions_max": 8}},
            ),  # fmt: skip
            "endpoints.x: base_url must start with http:// or https://",
        ),
        (
            lambda c: c.update(
                models=["x"],
                endpoints={
                    "x": {
                        "base_url": "http://h",
                        "model": "m",
                        "n_transitions_max": 8,
                        "api_key": "s3cret",
                    }
                },
            ),  # fmt: skip
            "endpoints.x: settings: unknown endpoint setting(s) api_key",
        ),
        (
            lambda c: c.update(
                models=["x"], retrieval={"x": {"chat_model": "dm", "neighbours": 4}}
            ),
            "retrieval.x.chat_model: 'dm' is neither qwen nor a key of endpoints",
        ),
        (
            lambda c: c.update(models=["x"], retrieval={"x": {"chat_model": "qwen"}}),
            "neighbours",
        ),
        (
            lambda c: c.update(models=["x"], retrieval={"x": {"neighbours": 4}}),
            "chat_model",
        ),
    ],
)
def test_undeclared_or_broken_rows_are_refused_at_parse(paper_config, change, message):
    config = copy.deepcopy(paper_config)
    change(config)
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert message in str(caught.value)


def plan_demo_with(repo_root, tmp_path, overlay: str):
    """The dry-run plan of results/table.csv for the demo config plus ``overlay`` (YAML):
    (job counts by rule, the printed commands)."""
    from tests.support.workflow import job_counts, snakemake

    (tmp_path / "overlay.yaml").write_text(overlay)
    result = snakemake(
        repo_root, "results/table.csv", "-n", "-p", "-d", tmp_path, "-s", repo_root / "Snakefile",
        "--configfile", repo_root / "config.yaml", repo_root / "config.demo.yaml",
        tmp_path / "overlay.yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return job_counts(result.stdout), result.stdout


def test_the_demo_adds_the_retrieval_row_with_one_line(repo_root, tmp_path):
    counts, commands = plan_demo_with(repo_root, tmp_path, "models: [dm, qwen, knn]\n")
    # One index per env; the row has no snapshots, so 10 seeds per env as under final,
    # beside the two models' snapshot evaluations.
    assert counts["build_index"] == 3 and counts["evaluate"] == 3 * 10
    assert counts["evaluate_snapshot"] == 10
    assert "--final-models knn" in commands  # the table reads the row per seed


def test_a_retrieval_context_row_plans_the_index_and_its_flags(repo_root, tmp_path):
    counts, commands = plan_demo_with(
        repo_root,
        tmp_path,
        "models: [dm, qwen, served_knn]\n"
        "endpoints: {served: {base_url: 'http://localhost:8000', model: m, n_transitions_max: 8}}\n"
        "retrieval: {served_knn: {chat_model: served, neighbours: 4}}\n",
    )
    assert counts["build_index"] == 3 and counts["endpoint_settings"] == 1
    assert counts["evaluate"] == 3 * 10
    assert (
        "--model-dir results/endpoints/served --env CartPole-v1 --seed 0" in commands
        and "--retrieval-index results/retrieval/CartPole-v1.h5 --neighbours 4" in commands
    )
