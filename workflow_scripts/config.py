"""Loading and checking the workflow configuration before any job runs.

Three steps, all light (no torch, no transformers: Snakemake runs them at every parse):

1. text read as the numbers and booleans the schema wants (:func:`read_text_values`):
   Snakemake hands nested ``--config`` values over as text;
2. a JSON schema (types, required keys, unknown keys, budgets > 0, unique seeds);
3. checks the schema cannot express: env ids registered in Gymnasium, every run env has
   an expert recipe, overrides the algorithm's constructor accepts (name and type), and
   each model section's cross-key rules (``dm/settings.py``, ``qwen/settings.py``).

Every message names the offending key, e.g.
``experts.CartPole-v1.n_timesteps: -5 is less than the minimum of 1``.
"""

from __future__ import annotations

import copy
import math
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from workflow_scripts import algorithms
from workflow_scripts.algorithms import (  # noqa: F401  (re-exported for the stages)
    ALGORITHMS,
    accepted_hyperparameters,
    accepted_policy_kwargs,
    algorithm_class,
)
from workflow_scripts.dm.settings import cross_key_problems as dm_problems
from workflow_scripts.envs import UnknownEnvError, check_env_id
from workflow_scripts.models import TRAINED, endpoint_problems, registry_problems
from workflow_scripts.qwen.settings import cross_key_problems as qwen_problems
from workflow_scripts.snapshots import protocol_problems

SCHEMA_DIR = Path(__file__).parent / "schemas"


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


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [
        str(part) if not isinstance(part, int) else f"[{part}]" for part in error.absolute_path
    ]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check ``config`` and return it; raise :class:`ConfigError` naming the key.

    Text where a number or boolean belongs is first read as one, in place (see
    :func:`read_text_values`), so the rules that share ``config`` see the numbers.
    """
    read_text_values(config, load_schema())
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
        if env_id in config["envs"]:  # recipes for envs this run skips are not checked
            problems += _override_problems(env_id, recipe)
    problems += registry_problems(config)
    for model in config["models"]:
        if model in TRAINED and model not in config:
            problems.append(f"models: {model!r} is listed but the config has no {model!r} section")
    for name, entry in (config.get("endpoints") or {}).items():
        problems += [f"endpoints.{name}: {problem}" for problem in endpoint_problems(entry)]
    if "dm" in config:
        problems += dm_problems(config["dm"], config["dataset"]["n_transitions"], config["envs"])
    if "qwen" in config:
        problems += qwen_problems(config["qwen"])
    problems += protocol_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def _override_problems(env_id: str, recipe: dict[str, Any]) -> list[str]:
    """An expert recipe's overrides against its algorithm's constructor: name, then type."""
    algo = recipe["algo"]
    overrides = recipe.get("overrides", {})
    problems = []
    for name, value in overrides.items():
        key = f"experts.{env_id}.overrides.{name}"
        if isinstance(value, str):
            # Nested --config values arrive as text: read them as the argument wants.
            value = overrides[name] = _override_from_text(algo, name, value)
        problem = algorithms.override_problem(algo, name, value)
        if problem:
            problems.append(f"{key}: {problem}")
    if isinstance(overrides.get("policy_kwargs"), dict):
        # A typo here would otherwise surface only when the expert job builds its policy.
        accepted_policy = accepted_policy_kwargs(algo)
        for name in overrides["policy_kwargs"]:
            if name not in accepted_policy:
                problems.append(
                    f"experts.{env_id}.overrides.policy_kwargs.{name}: not an argument of "
                    f"{algo.upper()}'s MlpPolicy (accepted: {', '.join(sorted(accepted_policy))})"
                )
    return problems


def _override_from_text(algo: str, name: str, text: str) -> Any:
    """``text`` as the number, boolean or null the constructor argument takes, or unchanged."""
    if name not in accepted_hyperparameters(algo) or not algorithms.override_problem(
        algo, name, text
    ):
        return text
    for kind in algorithms.accepted_kinds(algo, name):
        read = text_as(_SCHEMA_TYPE_OF_KIND.get(kind), text)
        if read is not text and not algorithms.override_problem(algo, name, read):
            return read
    return text


# The schema type a constructor argument's kind of value corresponds to (algorithms.KINDS).
_SCHEMA_TYPE_OF_KIND = {"int": "integer", "float": "number", "bool": "boolean", "null": "null"}


def text_as(schema_type: str | None, text: str) -> Any:
    """``text`` read as a value of JSON-schema type ``schema_type``, or ``text`` unchanged.

    Integers: ``"100"``, ``"1e6"`` (integral); numbers: any finite float text; booleans:
    ``true``/``false`` in any case; null: ``null`` or ``~``.
    """
    stripped = text.strip()
    if schema_type in ("integer", "number"):
        try:
            return int(stripped)
        except ValueError:
            pass
        try:
            number = float(stripped)
        except ValueError:
            return text
        if not math.isfinite(number):
            return text
        if schema_type == "number":
            return number
        return int(number) if number.is_integer() else text
    if schema_type == "boolean" and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if schema_type == "null" and stripped in ("null", "~"):
        return None
    return text


def read_text_values(value: Any, schema: dict[str, Any]) -> Any:
    """Replace text by the number, boolean or null the schema wants there, in place.

    Snakemake hands nested ``--config`` values over as text
    (``--config 'dataset={n_transitions: 100}'`` gives ``"100"``). Text is read only where
    the schema does not accept text, so a string key never changes. Returns the value, read.
    """
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            item_schema = properties.get(key, extra if isinstance(extra, dict) else None)
            if item_schema is not None:
                value[key] = read_text_values(item, item_schema)
        return value
    if isinstance(value, list):
        if isinstance(schema.get("items"), dict):
            value[:] = [read_text_values(item, schema["items"]) for item in value]
        return value
    if isinstance(value, str):
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else types
        if "string" in types:
            return value
        for schema_type in ("integer", "number", "boolean", "null"):
            if schema_type in types:
                read = text_as(schema_type, value)
                if read is not value:
                    return read
    return value


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
