"""Loading and checking the workflow configuration before any job runs.

Two layers: a JSON schema (types, required keys, unknown keys, budgets > 0, unique
seeds) and checks the schema cannot express (env ids registered in Gymnasium, every
run env has an expert recipe, overrides the algorithm accepts). Every message names
the offending key, e.g. ``experts.CartPole-v1.n_timesteps: -5 is less than the minimum of 1``.
"""

from __future__ import annotations

import copy
import inspect
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from workflow_scripts.envs import UnknownEnvError, check_env_id

SCHEMA_DIR = Path(__file__).parent / "schemas"
# Algorithm name in the config → (module, class). sb3-contrib for ars/qrdqn/tqc/trpo.
ALGORITHMS = {
    "a2c": ("stable_baselines3", "A2C"),
    "ddpg": ("stable_baselines3", "DDPG"),
    "dqn": ("stable_baselines3", "DQN"),
    "ppo": ("stable_baselines3", "PPO"),
    "sac": ("stable_baselines3", "SAC"),
    "td3": ("stable_baselines3", "TD3"),
    "ars": ("sb3_contrib", "ARS"),
    "qrdqn": ("sb3_contrib", "QRDQN"),
    "tqc": ("sb3_contrib", "TQC"),
    "trpo": ("sb3_contrib", "TRPO"),
}


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@cache
def load_schema() -> dict[str, Any]:
    """The top-level schema with every ``<section>.schema.yaml`` plugged in."""
    schema = yaml.safe_load((SCHEMA_DIR / "config.schema.yaml").read_text())
    for section_file in sorted(SCHEMA_DIR.glob("*.schema.yaml")):
        section = section_file.name.removesuffix(".schema.yaml")
        if section == "config":
            continue
        schema["properties"][section] = yaml.safe_load(section_file.read_text())
    return schema


def algorithm_class(algo: str):
    """The SB3 / sb3-contrib class for a config algorithm name."""
    import importlib

    module_name, class_name = ALGORITHMS[algo]
    return getattr(importlib.import_module(module_name), class_name)


def accepted_hyperparameters(algo: str) -> set[str]:
    """Keyword arguments the algorithm's constructor accepts (besides policy and env)."""
    parameters = inspect.signature(algorithm_class(algo).__init__).parameters
    return {name for name in parameters if name not in ("self", "policy", "env")}


def accepted_policy_kwargs(algo: str, policy: str = "MlpPolicy") -> set[str]:
    """Keyword arguments the algorithm's policy class accepts in ``policy_kwargs``."""
    policy_class = algorithm_class(algo).policy_aliases[policy]
    parameters = inspect.signature(policy_class.__init__).parameters
    given_by_algo = ("self", "observation_space", "action_space", "lr_schedule")
    return {name for name in parameters if name not in given_by_algo}


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [
        str(part) if not isinstance(part, int) else f"[{part}]" for part in error.absolute_path
    ]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check ``config`` and return it unchanged; raise :class:`ConfigError` naming the key."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"{_key_path(error)}: {error.message}" for error in errors]
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))

    problems = []
    for index, env_id in enumerate(config["envs"]):
        try:
            check_env_id(env_id)
        except UnknownEnvError as error:
            problems.append(f"envs[{index}]: {error}")
        if env_id not in config["experts"]:
            problems.append(f"envs[{index}]: {env_id!r} has no entry under experts")
    for env_id, recipe in config["experts"].items():
        if env_id not in config["envs"]:
            continue  # recipes for envs this run skips are not checked against gymnasium
        accepted = accepted_hyperparameters(recipe["algo"])
        overrides = recipe.get("overrides", {})
        for name in overrides:
            if name not in accepted:
                problems.append(
                    f"experts.{env_id}.overrides.{name}: not a hyperparameter of "
                    f"{recipe['algo'].upper()} (accepted: {', '.join(sorted(accepted))})"
                )
        if isinstance(overrides.get("policy_kwargs"), dict):
            # A typo here would otherwise surface only when the expert job builds its policy.
            accepted_policy = accepted_policy_kwargs(recipe["algo"])
            for name in overrides["policy_kwargs"]:
                if name not in accepted_policy:
                    problems.append(
                        f"experts.{env_id}.overrides.policy_kwargs.{name}: not an argument of "
                        f"{recipe['algo'].upper()}'s MlpPolicy (accepted: "
                        f"{', '.join(sorted(accepted_policy))})"
                    )
    for model in config["models"]:
        if model not in config:
            problems.append(f"models: {model!r} is listed but the config has no {model!r} section")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def merge_config(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Merge as Snakemake does with --configfile: mappings key by key, anything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Read one or more YAML files (later ones overlay earlier ones) and validate the result."""
    config: dict[str, Any] = {}
    for path in paths:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        config = merge_config(config, loaded)
    return validate_config(config)


def expert_recipe(config: dict[str, Any], env_id: str) -> dict[str, Any]:
    """An env's expert recipe with the optional keys filled from the config defaults."""
    recipe = dict(config["experts"][env_id])
    recipe.setdefault("hyperparams_source", config["hyperparams"]["default_source"])
    recipe.setdefault("overrides", {})
    recipe.setdefault("max_episode_steps", None)
    return recipe
