"""Train the Decision Model (DM-0.012B) on every env's expert dataset; resumes when rerun.

The ``train_dm`` rule runs ``python -m workflow_scripts.launch workflow_scripts.train_dm
--datasets results/datasets/A.h5 B.h5 ... --output results/models/dm/final
--checkpoint-dir results/models/dm/checkpoints ...`` with every value from ``config["dm"]``;
by hand, the same flags work without Snakemake (and under torchrun).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

import torch

from workflow_scripts.dataset import DatasetError
from workflow_scripts.dm.model import ARCHITECTURE_KEYS
from workflow_scripts.dm.train import (
    ForeignCheckpointError,
    TrainingDiverged,
    TrainSettings,
    train,
)

# Keys of config["dm"] passed as --flags of the same name (batch_size_per_gpu → --batch-size).
CONFIG_FLAG_KEYS = (
    *ARCHITECTURE_KEYS,
    "total_steps",
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
    "log_every",
    "num_workers",
    "eval_slide_transitions",
)


def flags_from_config(settings: dict[str, Any]) -> str:
    """The config's ``dm`` section as this CLI's flags, shell-quoted (used by rules/dm.smk)."""
    flags = ["--batch-size", str(settings["batch_size_per_gpu"])]
    for key in CONFIG_FLAG_KEYS:
        flags += ["--" + key.replace("_", "-"), str(settings[key])]
    return " ".join(shlex.quote(flag) for flag in flags)


def check_config(settings: dict[str, Any], n_transitions: int | None = None) -> None:
    """Cross-key checks of the ``dm`` section the JSON schema cannot express.

    ``n_transitions`` (config ``dataset.n_transitions``) is the rows of each env's dataset:
    a training window of ``sequence_length / 2`` transitions must fit in it. Raises
    :class:`workflow_scripts.config.ConfigError` naming the key, before any job runs.
    """
    from workflow_scripts.config import ConfigError

    problems = []
    if settings["sequence_length"] < 2:
        problems.append(
            f"dm.sequence_length: {settings['sequence_length']} positions cannot hold one "
            "transition (2 positions: observation and action)"
        )
    elif n_transitions is not None and settings["sequence_length"] // 2 > n_transitions:
        problems.append(
            f"dm.sequence_length: a window of {settings['sequence_length'] // 2} transitions "
            f"does not fit a dataset of dataset.n_transitions {n_transitions} rows"
        )
    if settings["hidden_size"] % settings["num_heads"]:
        problems.append(
            f"dm.hidden_size: {settings['hidden_size']} is not divisible by dm.num_heads "
            f"{settings['num_heads']}"
        )
    elif (settings["hidden_size"] // settings["num_heads"]) % 2:
        problems.append("dm.num_heads: hidden_size / num_heads must be even (rotary embedding)")
    context_transitions = settings["sequence_length"] // 2
    if settings["eval_slide_transitions"] > context_transitions:
        problems.append(
            f"dm.eval_slide_transitions: {settings['eval_slide_transitions']} is more than the "
            f"{context_transitions} transitions of the context (sequence_length / 2)"
        )
    if settings["warmup_steps"] > settings["total_steps"]:
        problems.append(
            f"dm.warmup_steps: {settings['warmup_steps']} exceeds dm.total_steps {settings['total_steps']}"
        )
    if settings["min_learning_rate"] > settings["learning_rate"]:
        problems.append(
            f"dm.min_learning_rate: {settings['min_learning_rate']} exceeds dm.learning_rate "
            f"{settings['learning_rate']}"
        )
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainSettings(datasets=["-"], output_dir="-", checkpoint_dir="-")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", required=True, help="one HDF5 file per env")
    parser.add_argument("--output", required=True, help="final model folder (save_pretrained)")
    parser.add_argument("--checkpoint-dir", required=True, help="resumable checkpoints")
    parser.add_argument("--tensorboard-dir", default=None, help="tensorboard event files")
    for name in (
        *ARCHITECTURE_KEYS,
        "batch_size",
        "total_steps",
        "warmup_steps",
        "seed",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "num_workers",
    ):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    for name in ("learning_rate", "min_learning_rate", "weight_decay", "grad_clip"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name)
        )
    parser.add_argument("--adam-beta1", type=float, default=defaults.adam_betas[0])
    parser.add_argument("--adam-beta2", type=float, default=defaults.adam_betas[1])
    parser.add_argument(
        "--eval-slide-transitions",
        type=int,
        default=None,
        help="evaluation: oldest transitions dropped at once when the context is full (stored in the model)",
    )
    parser.add_argument(
        "--max-steps-this-run",
        type=int,
        default=None,
        help="stop with a checkpoint after this many steps (time-sliced jobs); rerun to continue",
    )
    parser.add_argument(
        "--no-scan-data", action="store_true", help="skip the full NaN/inf scan of the datasets"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    settings = TrainSettings(
        datasets=args.datasets,
        output_dir=args.output,
        checkpoint_dir=args.checkpoint_dir,
        tensorboard_dir=args.tensorboard_dir,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        sequence_length=args.sequence_length,
        value_embedding_dim=args.value_embedding_dim,
        batch_size=args.batch_size,
        total_steps=args.total_steps,
        warmup_steps=args.warmup_steps,
        learning_rate=args.learning_rate,
        min_learning_rate=args.min_learning_rate,
        weight_decay=args.weight_decay,
        adam_betas=(args.adam_beta1, args.adam_beta2),
        grad_clip=args.grad_clip,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every,
        num_workers=args.num_workers,
        eval_slide_transitions=args.eval_slide_transitions,
        max_steps_this_run=args.max_steps_this_run,
        scan_data=not args.no_scan_data,
        extra={"command": sys.argv},
    )
    try:
        train(settings)
    except (TrainingDiverged, ForeignCheckpointError, DatasetError) as error:
        print(f"[train_dm] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
