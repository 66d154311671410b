"""The `qwen` config section: the paper and demo values pass its schema, mistakes do not."""

from __future__ import annotations

import copy
import shlex

import jsonschema
import pytest
import yaml

from workflow_scripts.config import load_schema, merge_config
from workflow_scripts.qwen.settings import CONFIG_FLAG_KEYS, flags_from_config
from workflow_scripts.qwen.train import TrainSettings
from workflow_scripts.training import parse_settings


@pytest.fixture(scope="module")
def sections(repo_root):
    base, demo = (
        yaml.safe_load((repo_root / name).read_text())
        for name in ("config.yaml", "config.demo.yaml")
    )
    return base["qwen"], merge_config(base, demo)["qwen"]


def errors(section) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema()["properties"]["qwen"])
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(section)
    ]


def test_paper_and_demo_sections_are_valid(sections):
    paper, demo = sections
    assert errors(paper) == []
    assert errors(demo) == []
    assert paper["model_name_or_path"] == "Qwen/Qwen3-1.7B"
    assert paper["max_seq_length"] == 16384 and paper["global_batch_size"] == 64
    assert demo["random_init"] is not None and demo["model_name_or_path"] is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"max_stepz": 3}, "'max_stepz' was unexpected"),
        ({"max_steps": 0}, "max_steps: 0 is less than the minimum"),
        ({"parallelism": "zero3"}, "parallelism: 'zero3' is not one of"),
        ({"model_name_or_path": None}, "random_init: None is not of type 'object'"),
        ({"random_init": {"hidden_size": 8}}, "random_init: 'head_dim' is a required property"),
        ({"resources": {"threads": 1}}, "resources: 'gpu' is a required property"),
    ],
)
def test_mistakes_are_named(sections, change, message):
    section = copy.deepcopy(sections[0])
    section.update(change)
    assert any(message in line for line in errors(section)), errors(section)


@pytest.mark.parametrize("which", [0, 1], ids=["paper", "demo"])
def test_rule_flags_reach_the_trainer_unchanged(sections, which):
    section = sections[which]
    flags = shlex.split(flags_from_config(section))
    config = parse_settings(
        TrainSettings,
        "train_qwen",
        flags
        + ["--datasets", "a.h5", "--budgets", "b.json", "--output", "o", "--checkpoint-dir", "c"]
        + ["--snapshot-dir", "s"],
    )
    for key in CONFIG_FLAG_KEYS + ("random_init", "tokenizer"):
        assert getattr(config, key) == section[key], key
    assert config.gradient_checkpointing is section["gradient_checkpointing"]
    # A hub id reaches the trainer as the folder fetch_qwen downloads it to.
    expected_source = "results/models/qwen/base" if section["model_name_or_path"] else None
    assert config.model_name_or_path == (None if section["random_init"] else expected_source)


@pytest.mark.parametrize(
    "source, hub_id",
    [("Qwen/Qwen3-1.7B", "Qwen/Qwen3-1.7B"), ("/models/qwen3", None), ("./qwen3", None)],
)
def test_a_hub_id_is_fetched_and_a_path_is_not(sections, source, hub_id):
    from workflow_scripts.qwen.settings import hub_model_id

    assert hub_model_id({**sections[0], "model_name_or_path": source}) == hub_id
    assert hub_model_id(sections[1]) is None  # the demo's random_init


def test_a_local_model_path_without_a_model_is_named_at_parse(sections, tmp_path):
    from workflow_scripts.qwen.settings import cross_key_problems, flags_from_config

    missing = {**sections[0], "model_name_or_path": str(tmp_path / "qwen3")}
    assert any("qwen.model_name_or_path: " in line for line in cross_key_problems(missing))
    (tmp_path / "qwen3").mkdir()
    (tmp_path / "qwen3" / "config.json").write_text("{}")
    assert cross_key_problems(missing) == []
    assert f"--model-name-or-path {tmp_path / 'qwen3'}" in flags_from_config(missing)
    # A hub id is trained from the folder fetch_qwen downloads it to.
    assert "--model-name-or-path results/models/qwen/base" in flags_from_config(sections[0])
