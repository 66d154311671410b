"""The config's ``dm`` section as the workflow sees it: flag names and cross-key checks.

Light on purpose (no torch, no transformers): ``rules/dm.smk`` builds the trainer's flags
from it and :func:`workflow_scripts.config.validate_config` runs its checks when Snakemake
parses the workflow, before any job. The trainer and the model import the key lists from
here, so a key is named once.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from workflow_scripts.optimisation import optimisation_problems

# Keys of the ``dm`` section that define the architecture (DecisionModelConfig fields).
ARCHITECTURE_KEYS = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "intermediate_size",
    "sequence_length",
    "value_embedding_dim",
)

# Keys of the ``dm`` section passed to train_dm as --flags of the same name
# (batch_size_per_gpu becomes --batch-size; resources and display_name size or name the job).
CONFIG_FLAG_KEYS = (
    *ARCHITECTURE_KEYS,
    "max_steps",
    "warmup_steps",
    "learning_rate",
    "min_learning_rate",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "grad_clip",
    "seed",
    "checkpoint_every",
    "keep_checkpoints",
    "snapshot_every",
    "stop_before_time_limit",
    "log_every",
    "num_workers",
    "eval_slide_transitions",
)


def flags_from_config(section: dict[str, Any]) -> str:
    """The config's ``dm`` section as train_dm's flags, shell-quoted (used by rules/dm.smk)."""
    flags = ["--batch-size", str(section["batch_size_per_gpu"])]
    for key in CONFIG_FLAG_KEYS:
        flags += ["--" + key.replace("_", "-"), str(section[key])]
    if section.get("env_weights"):
        flags += ["--env-weights", json.dumps(section["env_weights"], sort_keys=True)]
    return " ".join(shlex.quote(flag) for flag in flags)


def architecture_problems(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Heads divide the width, into an even head size (rotary embedding); one line each.

    Also :meth:`DecisionModelConfig.check` (a model built or loaded by hand) applies it.
    """
    if values["hidden_size"] % values["num_heads"]:
        return [
            f"{prefix}hidden_size: {values['hidden_size']} is not divisible by "
            f"{prefix}num_heads {values['num_heads']}"
        ]
    if (values["hidden_size"] // values["num_heads"]) % 2:
        return [f"{prefix}num_heads: hidden_size / num_heads must be even (rotary embedding)"]
    return []


def cross_key_problems(
    section: dict[str, Any],
    n_transitions: int | None = None,
    envs: list[str] | None = None,
) -> list[str]:
    """What is wrong across keys of a schema-valid ``dm`` section, one line per problem.

    ``n_transitions`` (config ``dataset.n_transitions``) is the rows of each env's dataset:
    a training window of ``sequence_length / 2`` transitions must fit in it; ``envs``
    (config ``envs``) are the env ids ``env_weights`` may name. Each line
    starts with the key it is about, e.g. ``dm.hidden_size: 100 is not divisible by ...``.
    """
    problems = []
    context_transitions = section["sequence_length"] // 2  # an observation and an action each
    # sequence_length >= 2 (one transition) is the schema's minimum.
    if n_transitions is not None and context_transitions > n_transitions:
        problems.append(
            f"dm.sequence_length: a window of {context_transitions} transitions "
            f"does not fit a dataset of dataset.n_transitions {n_transitions} rows"
        )
    problems += architecture_problems(section, "dm.")
    if section["eval_slide_transitions"] > context_transitions:
        problems.append(
            f"dm.eval_slide_transitions: {section['eval_slide_transitions']} is more than the "
            f"{context_transitions} transitions of the context (sequence_length / 2)"
        )
    problems += optimisation_problems(section, "dm.")
    unknown = sorted(set(section.get("env_weights") or {}) - set(envs or []))
    if envs is not None and unknown:
        problems.append(f"dm.env_weights: {', '.join(unknown)} not in envs")
    return problems
