"""Config validation, wildcard constraints and input functions shared by every rule file."""

import re

from workflow_scripts.config import expert_recipe, validate_config
from workflow_scripts.qwen.settings import BASE_MODEL_FOLDER, hub_model_id

# Schema, expert overrides against their algorithm, each model section's cross-key rules;
# text given for numbers (nested --config values) is read as numbers, in place.
validate_config(config)

ENVS = list(config["envs"])
MODELS = list(config["models"])
SEEDS = list(config["evaluation"]["seeds"])


wildcard_constraints:
    env="|".join(re.escape(env) for env in ENVS),
    model="|".join(MODELS) if MODELS else "(?!)",
    seed=r"\d+",


def recipe(env):
    """The env's expert recipe with defaults filled (algo, n_timesteps, overrides, cap)."""
    return expert_recipe(config, env)


def cap_flag(env):
    """``--max-episode-steps N`` when the config caps the env's episodes, else nothing."""
    cap = recipe(env)["max_episode_steps"]
    return f"--max-episode-steps {cap}" if cap else ""


def reference_flag(env):
    """``--reference-return R`` when the config gives the env's expert a reference return."""
    reference = config["experts"][env].get("reference_return")
    return "" if reference is None else f"--reference-return {reference}"


def evaluation_resource(name):
    """Per-model job size of ``evaluate`` (config evaluation.resources.<model>.<name>)."""
    return lambda wildcards: config["evaluation"]["resources"][wildcards.model][name]


def evaluation_device(wildcards):
    """config evaluation.device; ``auto`` is the CPU for a model whose job asks for no GPU,
    so a DM evaluation never lands on the GPU of a workstation or another job."""
    device = config["evaluation"]["device"]
    if (
        device == "auto"
        and not config["evaluation"]["resources"][wildcards.model]["gpu"]
    ):
        return "cpu"
    return device


def training_resource(model, name):
    """Job size of a model's training (config <model>.resources.<name>)."""
    return lambda wildcards: config[model]["resources"][name]


def qwen_base_model(wildcards):
    """The fetched hub model train_qwen needs, or nothing (random_init, a local folder)."""
    return [BASE_MODEL_FOLDER] if hub_model_id(config["qwen"]) else []
