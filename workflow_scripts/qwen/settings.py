"""The config's ``qwen`` section as the workflow sees it: flag names and cross-key checks.

Light on purpose (no torch, no transformers at import): ``rules/qwen.smk`` builds the
trainer's flags from it and :func:`workflow_scripts.config.validate_config` runs
:func:`cross_key_problems` when Snakemake parses the workflow. The one check that needs
the tokenizer and the envs, :func:`check_config_with_tokenizer`, runs in the ``qwen_budgets`` job.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from workflow_scripts.optimisation import optimisation_problems

# Keys of the ``qwen`` section passed to train_qwen as --flags of the same name (the rest
# choose the model source or size the job).
CONFIG_FLAG_KEYS = (
    "display_name",
    "max_seq_length",
    "global_batch_size",
    "micro_batch_size",
    "max_steps",
    "learning_rate",
    "min_learning_rate",
    "warmup_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "grad_clip",
    "seed",
    "parallelism",
    "checkpoint_every",
    "keep_checkpoints",
    "snapshot_every",
    "stop_before_time_limit",
    "log_every",
    "num_workers",
)


# Where the fetch_qwen rule puts a hub model's weights for the offline training job.
BASE_MODEL_FOLDER = "results/models/qwen/base"
LOCAL_PATH_PREFIXES = ("/", ".", "~")


def hub_model_id(section: dict[str, Any]) -> str | None:
    """The hub id the workflow fetches before training, or None (random_init, a local folder).

    ``model_name_or_path`` is a local folder when it exists or starts like a path (``/``,
    ``.``, ``~``); otherwise it is a hub id such as ``Qwen/Qwen3-1.7B``.
    """
    source = section["model_name_or_path"]
    if section["random_init"] is not None or source is None:
        return None
    if source.startswith(LOCAL_PATH_PREFIXES) or Path(source).expanduser().exists():
        return None
    return source


def flags_from_config(section: dict[str, Any]) -> str:
    """The config's ``qwen`` section as train_qwen's flags, shell-quoted (used by rules/qwen.smk).

    A hub model is trained from the folder the fetch_qwen rule downloads it to.
    """
    if section["random_init"] is not None:
        flags = ["--random-init", json.dumps(section["random_init"], sort_keys=True)]
    elif hub_model_id(section):
        flags = ["--model-name-or-path", BASE_MODEL_FOLDER]
    else:
        flags = ["--model-name-or-path", str(Path(section["model_name_or_path"]).expanduser())]
    if section["tokenizer"]:
        flags += ["--tokenizer", section["tokenizer"]]
    for key in CONFIG_FLAG_KEYS:
        flags += ["--" + key.replace("_", "-"), str(section[key])]
    checkpointing = section["gradient_checkpointing"]
    flags.append("--gradient-checkpointing" if checkpointing else "--no-gradient-checkpointing")
    return " ".join(shlex.quote(flag) for flag in flags)


def cross_key_problems(section: dict[str, Any]) -> list[str]:
    """What is wrong across keys of a schema-valid ``qwen`` section, one line per problem.

    Each line starts with the key it is about. The trainer checks the batch again against
    its process count, which only the job knows.
    """
    problems = []
    if section["global_batch_size"] % section["micro_batch_size"]:
        problems.append(
            f"qwen.global_batch_size: {section['global_batch_size']} is not a multiple of "
            f"qwen.micro_batch_size {section['micro_batch_size']}"
        )
    problems += optimisation_problems(section, "qwen.")
    source = section["model_name_or_path"]
    local = section["random_init"] is None and source and hub_model_id(section) is None
    if local and not (Path(source).expanduser() / "config.json").is_file():
        problems.append(
            f"qwen.model_name_or_path: {source} is a local path but no model folder (no "
            "config.json there); give a folder with the weights, or a hub id such as "
            "Qwen/Qwen3-1.7B, which the fetch_qwen rule downloads"
        )
    return problems


def check_config_with_tokenizer(
    tokenizer: str | None, max_seq_length: int, env_ids: list[str]
) -> None:
    """The check that needs the run's tokenizer and the envs; the ``qwen_budgets`` job runs it.

    For every env, the system prompt and one transition (a random-policy step, counted with
    ``tokenizer``, config ``qwen.tokenizer``; None is the packaged Qwen3 tokenizer) must fit
    ``max_seq_length``. Raises :class:`workflow_scripts.config.ConfigError` naming the key
    and the env.
    """
    # Imported here: the tokenizer and the envs are what the workflow's parse must not load.
    from workflow_scripts.config import ConfigError
    from workflow_scripts.qwen.budgets import BudgetError, budgets_from_random_policy
    from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer

    encoder = ChatMLEncoder(load_tokenizer(tokenizer))
    problems = []
    for env_id in env_ids:
        try:
            budgets_from_random_policy(
                encoder, [env_id], max_seq_length, quantile=0.5, n_rows=3, seed=0
            )
        except BudgetError as error:
            problems.append(f"qwen.max_seq_length: {error}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
