"""Which snapshots a run publishes, which seeds evaluate each, and which evaluations the table reads.

Light on purpose (no torch): the rule files plan the snapshot and curve jobs with it at
parse time, and :func:`workflow_scripts.config.validate_config` runs
:func:`protocol_problems`. One fact each:

* a model with ``snapshot_every: N`` publishes ``results/models/{model}/snapshots/step{s}``
  for s = N, 2N, ... up to ``max_steps`` (:func:`snapshot_steps`);
* snapshot number i (1-based) is evaluated on every env with seeds
  ``first_seed + (i-1)·k ... first_seed + i·k - 1`` for k = ``seeds_per_snapshot``
  (:func:`curve_seeds`): each periodic evaluation has its own seed, as in the paper;
* the ``last_evaluations`` protocol reads the evaluations of the last
  ``ceil(last_evaluations / k)`` snapshots (:func:`table_snapshot_steps`); rows without
  snapshots (retrieval, endpoints: ``workflow_scripts/models.py``) are read as under
  ``final``.
"""

from __future__ import annotations

import math
from typing import Any

PROTOCOLS = ("final", "last_evaluations")
SNAPSHOT_FOLDER = "results/models/{model}/snapshots/step{step}"
CURVE_RECORD = "results/curves/{model}/step{step}/{env}/seed{seed}.json"


def snapshot_steps(section: dict[str, Any]) -> list[int]:
    """The steps at which a model section (``dm``, ``qwen``) publishes a snapshot."""
    every = section.get("snapshot_every") or 0
    if every <= 0:
        return []
    return list(range(every, section["max_steps"] + 1, every))


def kept_snapshot_steps(section: dict[str, Any]) -> list[int]:
    """The snapshots kept on disk after their curve evaluations: the newest
    ``keep_snapshots`` (all when it is null); the others are deleted once evaluated."""
    steps = snapshot_steps(section)
    keep = section.get("keep_snapshots")
    return steps if keep is None else steps[len(steps) - min(keep, len(steps)) :]


def curve_seeds(section: dict[str, Any], curves: dict[str, Any], step: int) -> list[int]:
    """The env seeds of snapshot ``step``'s evaluations (distinct from every other snapshot's)."""
    per_snapshot = curves["seeds_per_snapshot"]
    index = step // section["snapshot_every"] - 1
    first = curves["first_seed"] + index * per_snapshot
    return list(range(first, first + per_snapshot))


def table_snapshot_steps(section: dict[str, Any], evaluation: dict[str, Any]) -> list[int]:
    """The last snapshots whose evaluations hold the ``last_evaluations`` the table reads."""
    needed = math.ceil(evaluation["last_evaluations"] / evaluation["curves"]["seeds_per_snapshot"])
    return snapshot_steps(section)[-needed:]


def protocol_problems(config: dict[str, Any]) -> list[str]:
    """What stops the configured protocol and curves from being planned, one line each."""
    evaluation = config["evaluation"]
    per_snapshot = evaluation["curves"]["seeds_per_snapshot"]
    problems = []
    for model in config["models"]:
        section = config.get(model)
        if model not in ("dm", "qwen") or section is None:
            continue  # rows without snapshots are read as under final; a missing section
            # is reported by validate_config
        steps = snapshot_steps(section)
        if evaluation["protocol"] == "last_evaluations":
            available = len(steps) * per_snapshot
            if available < evaluation["last_evaluations"]:
                problems.append(
                    f"evaluation.protocol: last_evaluations needs "
                    f"{evaluation['last_evaluations']} evaluations per env, but {model} has "
                    f"{len(steps)} snapshot(s) ({model}.snapshot_every "
                    f"{section.get('snapshot_every')}, max_steps {section['max_steps']}) x "
                    f"{per_snapshot} seed(s) = {available}; snapshot more often or raise "
                    "evaluation.curves.seeds_per_snapshot"
                )
    return problems
