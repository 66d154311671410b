"""The config schema and the checks beyond it: every bad value is named by its key."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

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


# --- Text where numbers belong: Snakemake hands nested --config values over as text ---


def test_nested_text_is_read_as_the_numbers_the_schema_wants(paper_config):
    config = copy.deepcopy(paper_config)
    config["dataset"] = {"n_transitions": "1000", "n_envs": "4", "seed": "7"}
    config["evaluation"]["seeds"] = ["0", "1"]
    config["dm"].update(learning_rate="0.0003", display_name="123")
    config["qwen"].update(gradient_checkpointing="false", tokenizer="42")

    assert validate_config(config) is config  # read in place: the rules see the numbers
    assert config["dataset"] == {"n_transitions": 1000, "n_envs": 4, "seed": 7}
    assert config["evaluation"]["seeds"] == [0, 1]
    assert config["dm"]["learning_rate"] == 0.0003
    assert config["qwen"]["gradient_checkpointing"] is False
    # Where the schema takes text, text stays text.
    assert config["dm"]["display_name"] == "123" and config["qwen"]["tokenizer"] == "42"


@pytest.mark.parametrize(
    "text, message",
    [
        ("lots", "dataset.n_transitions: 'lots' is not of type 'integer'"),
        ("1.5", "dataset.n_transitions: '1.5' is not of type 'integer'"),
        ("nan", "dataset.n_transitions: 'nan' is not of type 'integer'"),
    ],
)
def test_text_that_is_no_integer_is_still_refused(paper_config, text, message):
    assert message in broken(paper_config, lambda c: c["dataset"].update(n_transitions=text))


def test_nested_command_line_number_reaches_the_rule(repo_root, tmp_path):
    """The issue's command: `--config 'dataset={n_transitions: 100}'` plans a 100-row rollout."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", repo_root / "Snakefile", "-d", tmp_path,
         "--configfile", repo_root / "config.yaml", repo_root / "config.demo.yaml",
         "--config", "dataset={n_transitions: 100, n_envs: 4, seed: 3}", "models=[]",
         "-n", "-p", "results/datasets/CartPole-v1.h5"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "--n-transitions 100 --n-envs 4 --seed 3" in output, output


# --- Expert overrides against the algorithm's constructor, before any job ---


def test_override_of_the_wrong_type_is_named_before_any_job(paper_config):
    def mutate(config):
        config["experts"]["CartPole-v1"]["overrides"] = {"learning_rate": "fast"}

    message = broken(paper_config, mutate)
    assert "experts.CartPole-v1.overrides.learning_rate: 'fast' is not a number or a linear" in (
        message
    )


@pytest.mark.parametrize(
    "env, overrides",
    [
        ("CartPole-v1", {"learning_rate": "lin_0.001", "clip_range": "lin_0.2", "n_steps": 256}),
        ("CartPole-v1", {"learning_rate": 3e-4, "target_kl": None, "use_sde": False}),
        ("CartPole-v1", {"policy_kwargs": "dict(net_arch=[64, 64])"}),  # rl-zoo3's spelling
        ("MountainCar-v0", {"train_freq": [16, "step"], "gradient_steps": 8, "gamma": 1}),
        ("Ant-v4", {"ent_coef": "auto", "learning_starts": 10000}),
    ],
)
def test_rl_zoo3_values_pass_the_override_check(paper_config, env, overrides):
    config = copy.deepcopy(paper_config)
    config["experts"][env]["overrides"] = overrides
    validate_config(config)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_steps": 2.5}, "n_steps: 2.5 is not an integer (PPO's n_steps: int)"),
        ({"use_sde": "yes"}, "use_sde: 'yes' is not a boolean"),
        ({"learning_rate": "lin_fast"}, "learning_rate: 'lin_fast' is not a number or a linear"),
        ({"policy_kwargs": [64, 64]}, "policy_kwargs: [64, 64] is not null or a mapping"),
    ],
)
def test_override_types_follow_the_constructor(paper_config, overrides, message):
    message_text = broken(
        paper_config, lambda c: c["experts"]["CartPole-v1"].update(overrides=overrides)
    )
    assert f"experts.CartPole-v1.overrides.{message}" in message_text


def test_override_given_as_text_is_read_as_the_constructor_wants(paper_config):
    config = copy.deepcopy(paper_config)
    overrides = {"n_steps": "256", "learning_rate": "0.001", "use_sde": "true", "ent_coef": "0.1"}
    config["experts"]["Ant-v4"]["overrides"] = {"ent_coef": "auto_0.1", "gamma": "0.98"}
    config["experts"]["CartPole-v1"]["overrides"] = dict(overrides)
    validate_config(config)
    assert config["experts"]["CartPole-v1"]["overrides"] == {
        "n_steps": 256, "learning_rate": 0.001, "use_sde": True, "ent_coef": 0.1
    }  # fmt: skip
    # SAC's ent_coef takes text ("auto", "auto_0.1"): text stays text.
    assert config["experts"]["Ant-v4"]["overrides"] == {"ent_coef": "auto_0.1", "gamma": 0.98}


# --- Each model section's cross-key rules, run by validate_config ---


@pytest.mark.parametrize(
    "section, change, message",
    [
        ("dm", {"hidden_size": 100, "num_heads": 8}, "dm.hidden_size: 100 is not divisible"),
        ("dm", {"hidden_size": 24, "num_heads": 8}, "dm.num_heads: hidden_size / num_heads must"),
        ("dm", {"warmup_steps": 10, "max_steps": 5}, "dm.warmup_steps: 10 exceeds dm.max_steps"),
        ("dm", {"eval_slide_transitions": 9999}, "dm.eval_slide_transitions: 9999 is more"),
        ("dm", {"min_learning_rate": 1.0}, "dm.min_learning_rate: 1.0 exceeds"),
        ("dm", {"env_weights": {"Nowhere-v0": 2}}, "dm.env_weights: Nowhere-v0 not in envs"),
        ("dm", {"env_weights": {"Hopper-v4": 0}}, "dm.env_weights.Hopper-v4: 0 is less than"),
        ("qwen", {"warmup_steps": 10, "max_steps": 5}, "qwen.warmup_steps: 10 exceeds qwen.max"),
        ("qwen", {"global_batch_size": 6, "micro_batch_size": 4}, "qwen.global_batch_size: 6 is"),
        ("qwen", {"min_learning_rate": 1.0}, "qwen.min_learning_rate: 1.0 exceeds"),
    ],
)
def test_cross_key_rules_are_named(paper_config, section, change, message):
    assert message in broken(paper_config, lambda c: c[section].update(change))


def test_dm_env_weights_reach_the_trainer_as_json(paper_config):
    import json
    import shlex

    from workflow_scripts.dm.settings import flags_from_config
    from workflow_scripts.dm.train import TrainSettings
    from workflow_scripts.training import parse_settings

    assert "--env-weights" not in flags_from_config(paper_config["dm"])
    section = paper_config["dm"] | {"env_weights": {"Pendulum-v1": 3, "CartPole-v1": 2}}
    flags = shlex.split(flags_from_config(section))
    weights = flags[flags.index("--env-weights") + 1]
    assert json.loads(weights) == {"CartPole-v1": 2, "Pendulum-v1": 3}
    required = ["--datasets", "a.h5", "--output", "out", "--checkpoint-dir", "ckpt"]
    required += ["--snapshot-dir", "snapshots"]
    settings = parse_settings(TrainSettings, "", required + flags)
    assert settings.env_weights == {"CartPole-v1": 2, "Pendulum-v1": 3}


# --- The parse stays light ---

PARSE_AND_REPORT_MODULES = """
import json, sys
import snakemake.cli
try:
    snakemake.cli.main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = ("torch", "transformers", "stable_baselines3", "sb3_contrib")
print(json.dumps({"exit": code, "loaded": [name for name in heavy if name in sys.modules]}))
"""


def test_parsing_the_full_config_imports_neither_torch_nor_transformers(repo_root, tmp_path):
    """Snakemake's own parse of config.yaml (105 jobs for the table under the paper's
    protocol: the data half, both trainings, the last 10 snapshots' evaluations of each
    model), in one process, then its sys.modules."""
    result = subprocess.run(
        [sys.executable, "-c", PARSE_AND_REPORT_MODULES, "results/table.csv", "-n", "--quiet", "rules",
         "-s", repo_root / "Snakefile", "-d", tmp_path, "--configfile", repo_root / "config.yaml"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0, result.stderr
    assert re.search(r"^total\s+105$", result.stdout + result.stderr, re.M)  # the whole plan
    assert report["loaded"] == [], report
