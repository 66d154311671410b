"""Config validation, wildcard constraints and input functions shared by every rule file."""

import json
import os
import re

from workflow_scripts.config import expert_recipe, validate_config
from workflow_scripts.provenance import code_sha256

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
