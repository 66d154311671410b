"""Bad configs: every rule of the schema and of the checks beyond it rejects a bad value,
before any job runs, with a message naming the key.

Every check that needs neither the tokenizer nor the envs runs in :func:`validate_config`,
which ``rules/common.smk`` calls when Snakemake parses the workflow (schema, overrides,
each model section's cross-key rules); the last test shows the workflow itself stopping
on them. Whether one transition of every env fits Qwen's context needs the tokenizer, so
the ``qwen_budgets`` job checks it (:func:`check_config_with_tokenizer`).
"""

from __future__ import annotations

import copy

import pytest

from tests.reliability.reliability_helpers import tiny_config, write_overlay
from tests.support.workflow import copy_workflow, output_of, snakemake
from workflow_scripts.config import ConfigError, load_config, merge_config, validate_config
from workflow_scripts.qwen.settings import check_config_with_tokenizer


@pytest.fixture(scope="module")
def base_config(repo_root) -> dict:
    """The paper's config on two envs (a Box and a Discrete action space), both models."""
    config = load_config(repo_root / "config.yaml")
    return merge_config(config, {"envs": ["CartPole-v1", "Pendulum-v1"]})


def set_key(config: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value


# (what the issue names, key path → bad value, text the message must hold besides the key)
BAD_VALUES = [
    ("unknown env id", {"envs": ["CartPole-v1", "Pendulm-v1"],
                        "experts.Pendulm-v1": {"algo": "td3", "n_timesteps": 10}},
     "envs[1]", "did you mean 'Pendulum-v1'"),
    ("env without an expert recipe", {"envs": ["CartPole-v1", "Swimmer-v4"]},
     "envs[1]", "no entry under experts"),
    ("algo not in SB3 / sb3-contrib", {"experts.CartPole-v1.algo": "ppo2"},
     "experts.CartPole-v1.algo", "'ppo2' is not one of"),
    ("hyperparameter the algo does not accept", {"experts.CartPole-v1.overrides": {"n_step": 64}},
     "experts.CartPole-v1.overrides.n_step", "not a hyperparameter of PPO"),
    ("policy argument the algo does not accept",
     {"experts.Pendulum-v1.overrides": {"policy_kwargs": {"net_arh": [64, 64]}}},
     "experts.Pendulum-v1.overrides.policy_kwargs.net_arh", "not an argument of TD3's MlpPolicy"),
    ("typo'd key", {"experts.CartPole-v1.n_timestep": 5},
     "experts.CartPole-v1", "'n_timestep' was unexpected"),
    ("evaluation seeds not unique", {"evaluation.seeds": [0, 1, 1]},
     "evaluation.seeds", "non-unique"),
    ("expert budget 0", {"experts.CartPole-v1.n_timesteps": 0},
     "experts.CartPole-v1.n_timesteps", "less than the minimum of 1"),
    ("dataset budget < 0", {"dataset.n_transitions": -10},
     "dataset.n_transitions", "less than the minimum of 1"),
    ("no env copies", {"dataset.n_envs": 0}, "dataset.n_envs", "less than the minimum of 1"),
    ("checkpoint interval 0", {"expert_training.checkpoint_every": 0},
     "expert_training.checkpoint_every", "less than the minimum of 1"),
    ("baseline episodes 0", {"baseline.n_episodes": 0},
     "baseline.n_episodes", "less than the minimum of 2"),
    ("DM steps 0", {"dm.max_steps": 0}, "dm.max_steps", "less than the minimum of 1"),
    ("DM batch 0", {"dm.batch_size_per_gpu": 0},
     "dm.batch_size_per_gpu", "less than the minimum of 1"),
    ("Qwen steps 0", {"qwen.max_steps": 0}, "qwen.max_steps", "less than the minimum of 1"),
    ("DM context below one transition", {"dm.sequence_length": 1},
     "dm.sequence_length", "less than the minimum of 2"),
    ("DM window longer than a dataset", {"dataset.n_transitions": 100},
     "dm.sequence_length", "a window of 512 transitions does not fit a dataset of dataset.n_transitions 100 rows"),
    ("Qwen warm-up longer than the run", {"qwen.warmup_steps": 50000},
     "qwen.warmup_steps", "50000 exceeds qwen.max_steps 36000"),
    ("Qwen model given twice", {"qwen.random_init": {"hidden_size": 8}},
     "qwen.random_init", "is not of type 'null'"),
]  # fmt: skip


@pytest.mark.parametrize(
    "changes, key, problem",
    [case[1:] for case in BAD_VALUES],
    ids=[case[0] for case in BAD_VALUES],
)
def test_bad_value_is_rejected_naming_its_key(base_config, changes, key, problem):
    config = copy.deepcopy(base_config)
    for path, value in changes.items():
        if path == "envs":
            config["envs"] = value
        else:
            set_key(config, path, value)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert f"{key}: " in message or f"{key}." in message, message
    assert problem in message, message


def test_the_paper_config_passes_every_check(base_config):
    validate_config(copy.deepcopy(base_config))
    qwen = base_config["qwen"]
    check_config_with_tokenizer(qwen["tokenizer"], qwen["max_seq_length"], base_config["envs"])


def test_qwen_context_below_one_transition_is_named_by_the_budgets_job(base_config):
    """Needs the tokenizer and a step of every env: run by qwen_budgets, not at every parse."""
    section = {**base_config["qwen"], "max_seq_length": 150}
    validate_config({**base_config, "qwen": section})  # the parse lets it through
    with pytest.raises(ConfigError, match="qwen.max_seq_length: Pendulum-v1: one transition"):
        check_config_with_tokenizer(section["tokenizer"], 150, base_config["envs"])


@pytest.mark.parametrize(
    "overlay, message",
    [
        (
            {"dataset": {"n_transitions": 0}},
            "dataset.n_transitions: 0 is less than the minimum of 1",
        ),
        ({"dm": {"sequence_length": 8192}}, "dm.sequence_length: a window of 4096 transitions"),
        (
            {"models": ["qwen"], "qwen": {"warmup_steps": 100, "max_steps": 5}},
            "qwen.warmup_steps: 100 exceeds qwen.max_steps 5",
        ),
    ],
    ids=["schema", "dm", "qwen"],
)
def test_workflow_stops_before_any_job(tmp_path, overlay, message):
    workdir = copy_workflow(tmp_path / "workflow")
    config = merge_config(tiny_config(), overlay)
    overlay_file = write_overlay(workdir, config)
    result = snakemake(workdir, "-n", "results/datasets/CartPole-v1.h5", "--configfile", overlay_file)  # fmt: skip
    assert result.returncode != 0
    assert message in output_of(result)
    assert "Job stats" not in output_of(result) and not (workdir / "results").exists()
