"""The config schema and the checks beyond it: every bad value is named by its key."""

from __future__ import annotations

import copy

import pytest
import yaml

from workflow_scripts.config import ConfigError, load_config, merge_config, validate_config


@pytest.fixture(scope="module")
def paper_config(repo_root):
    return load_config(repo_root / "config.yaml")


def test_paper_config_is_valid_and_names_the_papers_envs(paper_config):
    assert len(paper_config["envs"]) == 20
    assert paper_config["experts"]["MountainCar-v0"]["overrides"] == {"exploration_fraction": 0.02}
    assert paper_config["experts"]["LunarLander-v2"]["n_timesteps"] == 3_000_000
    assert paper_config["dataset"]["n_transitions"] == 10_000_000


def test_demo_overlay_keeps_the_papers_recipe(repo_root):
    demo = load_config(repo_root / "config.yaml", repo_root / "config.demo.yaml")
    assert demo["envs"] == ["CartPole-v1", "Pendulum-v1", "FrozenLake-v1"]
    assert demo["experts"]["CartPole-v1"] == {"algo": "ppo", "n_timesteps": 100000}


def test_merge_replaces_lists_and_merges_mappings():
    merged = merge_config({"a": {"x": 1, "y": 2}, "l": [1, 2]}, {"a": {"y": 3}, "l": [9]})
    assert merged == {"a": {"x": 1, "y": 3}, "l": [9]}


def broken(config, mutate):
    config = copy.deepcopy(config)
    mutate(config)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    return str(error.value)


def test_unknown_env_id_is_named_with_a_suggestion(paper_config):
    def mutate(config):
        config["envs"][3] = "CartPol-v1"
        config["experts"]["CartPol-v1"] = {"algo": "ppo", "n_timesteps": 10}

    message = broken(paper_config, mutate)
    assert "envs[3]" in message and "CartPol-v1" in message and "CartPole-v1" in message


def test_env_without_expert_recipe(paper_config):
    message = broken(paper_config, lambda c: c["experts"].pop("Taxi-v3"))
    assert "Taxi-v3" in message and "no entry under experts" in message


def test_unknown_algo(paper_config):
    message = broken(paper_config, lambda c: c["experts"]["Ant-v4"].update(algo="sacc"))
    assert "experts.Ant-v4.algo" in message and "sacc" in message


def test_typod_key_is_rejected(paper_config):
    def mutate(config):
        config["experts"]["Ant-v4"]["n_timestep"] = 5

    message = broken(paper_config, mutate)
    assert "experts.Ant-v4" in message and "n_timestep" in message


def test_typod_top_level_key_is_rejected(paper_config):
    message = broken(paper_config, lambda c: c.update(datset={"n_transitions": 5}))
    assert "datset" in message


@pytest.mark.parametrize(
    "path, value",
    [
        (("experts", "CartPole-v1", "n_timesteps"), -5),
        (("dataset", "n_transitions"), 0),
        (("baseline", "n_episodes"), 0),
        (("expert_training", "checkpoint_every"), 0),
    ],
)
def test_non_positive_budgets_are_rejected(paper_config, path, value):
    def mutate(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    message = broken(paper_config, mutate)
    assert ".".join(path) in message


def test_duplicate_seeds_are_rejected(paper_config):
    message = broken(paper_config, lambda c: c["evaluation"].update(seeds=[1, 2, 2]))
    assert "evaluation.seeds" in message and "unique" in message


def test_override_the_algorithm_does_not_take(paper_config):
    def mutate(config):
        config["experts"]["MountainCar-v0"]["overrides"] = {"exploration_fractoin": 0.02}

    message = broken(paper_config, mutate)
    assert "experts.MountainCar-v0.overrides.exploration_fractoin" in message


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("envs: [CartPole-v1\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(path)


def test_schema_file_is_valid_yaml(repo_root):
    schema = yaml.safe_load((repo_root / "workflow_scripts/schemas/config.schema.yaml").read_text())
    assert schema["additionalProperties"] is False


def test_reproduction_overlay_is_valid_and_comments_every_departure(repo_root):
    repro = load_config(repo_root / "config.yaml", repo_root / "config.repro.yaml")
    validate_config(repro)
    assert len(repro["envs"]) == 8 and repro["models"] == ["dm"]
    # The overlay restores rl-zoo3's exploration_fraction over config.yaml's paper value.
    assert repro["experts"]["MountainCar-v0"]["overrides"] == {"exploration_fraction": 0.2}
    lines = (repo_root / "config.repro.yaml").read_text().splitlines()
    paper = load_config(repo_root / "config.yaml")
    for env in repro["envs"]:
        if repro["experts"][env] == paper["experts"][env]:
            continue
        # The comment block right above the env's entry says what departs, and why.
        row = next(i for i, line in enumerate(lines) if line.startswith(f"  {env}:"))
        comments = []
        while lines[row - 1 - len(comments)].lstrip().startswith("#"):
            comments.append(lines[row - 1 - len(comments)])
        assert any("DEPARTURE" in line for line in comments), env
