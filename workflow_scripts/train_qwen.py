"""Fine-tune Qwen3 on the expert datasets in the paper's chat format (one multi-task model).

Run under ``python -m workflow_scripts.launch workflow_scripts.train_qwen ...`` to get one
process per GPU (torchrun) on a GPU node, or one CPU process elsewhere. Resumes from the
newest checkpoint in ``--checkpoint-dir``. Example (the CPU demo's tiny random Qwen3)::

    python -m workflow_scripts.train_qwen --datasets results/datasets/CartPole-v1.h5 \\
        --budgets results/models/qwen/budgets.json \\
        --random-init '{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}' \\
        --max-seq-length 1024 --global-batch-size 8 --micro-batch-size 4 --max-steps 20 \\
        --checkpoint-dir results/models/qwen/checkpoints --output results/models/qwen/final
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from workflow_scripts.dataset import DatasetError
from workflow_scripts.qwen.train import CheckpointMismatch, TrainConfig, TrainingDiverged, train

DEFAULTS = TrainConfig(datasets=[], budgets="", output="", checkpoint_dir="")
# Keys of the config's `qwen` section that are flags of the same name (the rest choose the
# model source or size the job).
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
    "log_every",
    "num_workers",
)


def flags_from_config(settings: dict[str, Any]) -> str:
    """The config's `qwen` section as this CLI's flags, shell-quoted (used by rules/qwen.smk)."""
    if settings["random_init"] is not None:
        flags = ["--random-init", json.dumps(settings["random_init"], sort_keys=True)]
    else:
        flags = ["--model-name-or-path", settings["model_name_or_path"]]
    if settings["tokenizer"]:
        flags += ["--tokenizer", settings["tokenizer"]]
    for key in CONFIG_FLAG_KEYS:
        flags += ["--" + key.replace("_", "-"), str(settings[key])]
    checkpointing = settings["gradient_checkpointing"]
    flags.append("--gradient-checkpointing" if checkpointing else "--no-gradient-checkpointing")
    return " ".join(shlex.quote(flag) for flag in flags)


def check_config(settings: dict[str, Any], env_ids: list[str]) -> None:
    """Checks of the ``qwen`` section the JSON schema cannot express, before any job runs.

    For every env, the system prompt and one transition (a random-policy step, counted with
    the run's tokenizer) must fit ``max_seq_length``; otherwise ``qwen_budgets`` would fail
    only after every dataset was collected. Raises
    :class:`workflow_scripts.config.ConfigError` naming the key and the env.
    """
    from workflow_scripts.config import ConfigError
    from workflow_scripts.qwen.budgets import BudgetError, budgets_from_random_policy
    from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer

    try:
        encoder = ChatMLEncoder(load_tokenizer(settings["tokenizer"]))
    except OSError:
        return  # a hub tokenizer not reachable from here: train_qwen checks it on its node
    problems = []
    for env_id in env_ids:
        try:
            budgets_from_random_policy(
                encoder, [env_id], settings["max_seq_length"], quantile=0.5, n_rows=3, seed=0
            )
        except BudgetError as error:
            problems.append(f"qwen.max_seq_length: {error}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--datasets", nargs="+", required=True, help="expert dataset files (.h5)")
    io.add_argument("--budgets", required=True, help="budgets.json from qwen_budgets")
    io.add_argument("--output", required=True, help="final model folder to write")
    io.add_argument("--checkpoint-dir", required=True, help="resumable checkpoints go here")
    io.add_argument("--tensorboard-dir", default=None, help="tensorboard event files")

    model = parser.add_argument_group("model")
    source = model.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model-name-or-path", default=None, help="hub id (Qwen/Qwen3-1.7B) or local folder"
    )
    source.add_argument(
        "--random-init",
        type=json.loads,
        default=None,
        help="JSON shape of a random Qwen3 (hidden_size, intermediate_size, num_hidden_layers, "
        "num_attention_heads, num_key_value_heads, head_dim)",
    )
    model.add_argument(
        "--tokenizer", default=None, help="tokenizer folder or hub id (default: packaged Qwen3)"
    )
    model.add_argument("--display-name", default=DEFAULTS.display_name)

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--max-seq-length", type=int, default=DEFAULTS.max_seq_length)
    optim.add_argument("--global-batch-size", type=int, default=DEFAULTS.global_batch_size)
    optim.add_argument("--micro-batch-size", type=int, default=DEFAULTS.micro_batch_size)
    optim.add_argument("--max-steps", type=int, default=DEFAULTS.max_steps)
    optim.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate)
    optim.add_argument("--min-learning-rate", type=float, default=DEFAULTS.min_learning_rate)
    optim.add_argument("--warmup-steps", type=int, default=DEFAULTS.warmup_steps)
    optim.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    optim.add_argument("--adam-beta1", type=float, default=DEFAULTS.adam_beta1)
    optim.add_argument("--adam-beta2", type=float, default=DEFAULTS.adam_beta2)
    optim.add_argument("--grad-clip", type=float, default=DEFAULTS.grad_clip)
    optim.add_argument("--seed", type=int, default=DEFAULTS.seed)

    system = parser.add_argument_group("system")
    system.add_argument("--parallelism", choices=["fsdp", "ddp"], default=DEFAULTS.parallelism)
    system.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.gradient_checkpointing,
    )
    system.add_argument("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every)
    system.add_argument("--keep-checkpoints", type=int, default=DEFAULTS.keep_checkpoints)
    system.add_argument("--log-every", type=int, default=DEFAULTS.log_every)
    system.add_argument("--num-workers", type=int, default=DEFAULTS.num_workers)
    args = parser.parse_args(argv)

    for name in ("max_seq_length", "global_batch_size", "micro_batch_size", "max_steps",
                 "checkpoint_every", "keep_checkpoints", "log_every"):  # fmt: skip
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup_steps < 0 or args.num_workers < 0:
        parser.error("--warmup-steps and --num-workers cannot be negative")
    if not 0 < args.min_learning_rate <= args.learning_rate:
        parser.error("need 0 < --min-learning-rate <= --learning-rate")
    return TrainConfig(**vars(args))


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        train(config)
    except (DatasetError, TrainingDiverged, CheckpointMismatch) as error:
        # Faults the user fixes (a bad input, a diverged run, another run's checkpoints):
        # one message naming the file or step, not a traceback.
        print(f"[train_qwen] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
