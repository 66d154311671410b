"""The SB3 / sb3-contrib algorithms a config may name, and what their constructors accept.

The config check runs at every Snakemake parse, and importing stable-baselines3 imports
torch (about a second of CPU), so what the constructors accept is read from a snapshot,
``data/algorithm_signatures.json``, made from the pinned versions by
``python -m workflow_scripts.algorithms --write``. When the installed versions differ from
the snapshot's, the classes are imported and inspected instead (slower, same answers);
``tests/test_algorithms.py`` fails when the snapshot no longer matches the installed classes.

Each constructor argument's annotation is reduced to the YAML values it can take
(:data:`KINDS`); an override is checked against them before any job runs.
"""

from __future__ import annotations

import argparse
import collections.abc
import functools
import importlib
import inspect
import json
import math
import re
import typing
from importlib import metadata
from pathlib import Path
from typing import Any

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
SNAPSHOT = Path(__file__).parent / "data" / "algorithm_signatures.json"
DISTRIBUTIONS = ("stable-baselines3", "sb3-contrib")
# Constructor arguments the workflow itself gives (never overrides).
GIVEN_BY_WORKFLOW = ("self", "policy", "env")
POLICY_GIVEN_BY_ALGO = ("self", "observation_space", "action_space", "lr_schedule")

# What a YAML value can be, per annotation: "any" when the annotation names a type YAML
# cannot spell (a class, a device); the check then leaves the value to the algorithm.
KINDS = ("any", "null", "bool", "int", "float", "str", "schedule", "dict", "list")
# rl-zoo3's linear schedule, ``lin_<initial value>`` (workflow_scripts.hyperparams reads it).
SCHEDULE = re.compile(r"lin_(?P<start>.+)")


def algorithm_class(algo: str):
    """The SB3 / sb3-contrib class for a config algorithm name (imports torch)."""
    module_name, class_name = ALGORITHMS[algo]
    return getattr(importlib.import_module(module_name), class_name)


def accepted_hyperparameters(algo: str) -> set[str]:
    """Keyword arguments the algorithm's constructor accepts (besides policy and env)."""
    return set(signatures()[algo]["hyperparameters"])


def accepted_policy_kwargs(algo: str) -> set[str]:
    """Keyword arguments the algorithm's MlpPolicy accepts in ``policy_kwargs``."""
    return set(signatures()[algo]["policy_kwargs"])


def override_problem(algo: str, name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the constructor argument ``name``, or None when it can.

    Values are judged as rl-zoo3 writes them: a schedule is ``lin_<number>``, a
    ``policy_kwargs`` may be its ``dict(...)`` text. Unknown names are refused too.
    """
    accepted = signatures()[algo]["hyperparameters"]
    if name not in accepted:
        return f"not a hyperparameter of {algo.upper()} (accepted: {', '.join(sorted(accepted))})"
    kinds = accepted[name]["accepts"]
    if any(_is_kind(value, kind) for kind in kinds):
        return None
    if name == "policy_kwargs" and isinstance(value, str):
        return None  # rl-zoo3's "dict(net_arch=[64, 64])" spelling, evaluated when built
    wanted = " or ".join(_KIND_NAMES[kind] for kind in kinds)
    return f"{value!r} is not {wanted} ({algo.upper()}'s {name}: {accepted[name]['annotation']})"


def accepted_kinds(algo: str, name: str) -> list[str]:
    """The kinds of YAML value (:data:`KINDS`) the constructor argument ``name`` takes."""
    return signatures()[algo]["hyperparameters"][name]["accepts"]


_KIND_NAMES = {
    "null": "null",
    "bool": "a boolean",
    "int": "an integer",
    "float": "a number",
    "str": "text",
    "schedule": "a linear schedule 'lin_<initial value>'",
    "dict": "a mapping",
    "list": "a list",
}


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "null":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "schedule":
        match = SCHEDULE.fullmatch(value) if isinstance(value, str) else None
        return match is not None and _is_finite_number(match["start"])
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, (list, tuple))
    raise ValueError(f"unknown kind {kind!r}")


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@functools.cache
def signatures() -> dict[str, Any]:
    """Per algorithm: its constructor arguments (annotation, accepted kinds) and its
    MlpPolicy's keyword arguments; from the snapshot when it matches the installed versions."""
    snapshot = json.loads(SNAPSHOT.read_text())
    if snapshot["versions"] == installed_versions():
        return snapshot["algorithms"]
    return live_signatures()


def installed_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def live_signatures() -> dict[str, Any]:
    """What :func:`signatures` returns, read from the imported classes."""
    table = {}
    for algo in ALGORITHMS:
        algo_class = algorithm_class(algo)
        parameters = inspect.signature(algo_class.__init__).parameters
        policy_class = algo_class.policy_aliases["MlpPolicy"]
        policy_parameters = inspect.signature(policy_class.__init__).parameters
        table[algo] = {
            "hyperparameters": {
                name: {
                    "annotation": _annotation_text(parameter.annotation),
                    "accepts": sorted(_kinds(parameter.annotation), key=KINDS.index),
                }
                for name, parameter in parameters.items()
                if name not in GIVEN_BY_WORKFLOW
            },
            "policy_kwargs": sorted(
                name for name in policy_parameters if name not in POLICY_GIVEN_BY_ALGO
            ),
        }
    return table


def _kinds(annotation: Any) -> set[str]:
    """The YAML values an annotation admits (see :data:`KINDS`)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {"any"}
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        kinds = set().union(*(_kinds(member) for member in typing.get_args(annotation)))
        return {"any"} if "any" in kinds else kinds
    simple = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str"}
    if annotation in simple:
        return {simple[annotation]}
    base = origin or annotation
    if base is dict:
        return {"dict"}
    if base in (tuple, list):
        return {"list"}
    if base is collections.abc.Callable:
        return {"schedule"}
    return {"any"}  # a class (noise, buffer, device): not spelled in YAML; left to SB3


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "(not annotated)"
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    # typing.Optional[stable_baselines3.common.noise.ActionNoise] → Optional[ActionNoise]
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Check or rewrite the constructor snapshot.")
    parser.add_argument("--write", action="store_true", help=f"rewrite {SNAPSHOT.name}")
    args = parser.parse_args(argv)
    current = {"versions": installed_versions(), "algorithms": live_signatures()}
    text = json.dumps(current, indent=1, sort_keys=True) + "\n"
    if args.write:
        SNAPSHOT.write_text(text)
        print(f"wrote {SNAPSHOT}")
    elif SNAPSHOT.read_text() != text:
        raise SystemExit(f"{SNAPSHOT} is stale: run python -m workflow_scripts.algorithms --write")
    else:
        print(f"{SNAPSHOT.name} matches the installed classes")


if __name__ == "__main__":
    main()
