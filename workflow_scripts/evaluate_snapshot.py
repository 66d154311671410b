"""Evaluate one model snapshot on every env: a learning-curve point in one job.

The protocol of :mod:`workflow_scripts.evaluate` (one independent episode per seed, argmax
/ greedy, the baseline's episode cap, the same failure rule), but one process for a
snapshot's every env and seed: the interpreter, torch and the model are loaded once per
job (the model once per env), so the fixed cost of a job is paid once per curve point,
not once per episode. Each episode is written as the same per-seed record as
``results/eval/``, with the snapshot's progress (``snapshot``: step, transitions and
tokens seen, training hours, device-hours) from its ``training.json``. The folder
``{output_dir}/{env}/seed{seed}.json`` is written under a temporary name and moved into
place whole.

CLI::

    python -m workflow_scripts.evaluate_snapshot --model dm \\
        --model-dir results/models/dm/snapshots/step600 \\
        --envs CartPole-v1 Pendulum-v1 --seeds 1002 1003 \\
        --baselines results/baselines/CartPole-v1.json results/baselines/Pendulum-v1.json \\
        --datasets results/datasets/CartPole-v1.h5 results/datasets/Pendulum-v1.h5 \\
        --output-dir results/curves/dm/step600
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from workflow_scripts.evaluate import add_out_of_bounds_flag, describe, evaluate_model_seeds
from workflow_scripts.training import TRAINING_FILE, partial_folder


def snapshot_progress(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``progress`` a model folder's training.json records (step, hours, ...)."""
    path = Path(model_dir) / TRAINING_FILE
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing; is {model_dir} a model folder?") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if "progress" not in summary:
        raise ValueError(
            f"{path}: no progress record (step, hours); written by a trainer without snapshots?"
        )
    return summary["progress"]


def parse_caps(pairs: list[str], envs: list[str]) -> dict[str, int]:
    """``["CliffWalking-v0=200"]`` → ``{"CliffWalking-v0": 200}``; envs not named get none."""
    caps = {}
    for pair in pairs:
        env_id, sep, value = pair.rpartition("=")
        if not sep or env_id not in envs or not value.isdigit():
            raise ValueError(f"--max-episode-steps {pair!r}: expected ENV=N for one of {envs}")
        caps[env_id] = int(value)
    return caps


def evaluate_snapshot(
    model: str,
    model_dir: str | os.PathLike,
    envs: list[str],
    seeds: list[int],
    baselines: list[str | os.PathLike],
    datasets: list[str | os.PathLike],
    output_dir: str | os.PathLike,
    caps: dict[str, int] | None = None,
    device: str = "auto",
    out_of_bounds: str = "clip",
    policy_module: str | None = None,
) -> list[dict[str, Any]]:
    """Every env and seed of one snapshot; the records, also written under ``output_dir``.

    ``baselines`` and ``datasets`` are in the order of ``envs`` (each file is checked to
    hold its env). Nothing is left at ``output_dir`` unless every episode was written.
    """
    if not len(envs) == len(baselines) == len(datasets):
        raise ValueError(
            f"{len(envs)} envs, {len(baselines)} baselines and {len(datasets)} datasets: "
            "give one baseline and one dataset per env, in the same order"
        )
    progress = snapshot_progress(model_dir)
    output_dir = Path(output_dir)
    partial = partial_folder(output_dir)
    shutil.rmtree(partial, ignore_errors=True)
    records = []
    for env_id, baseline, dataset in zip(envs, baselines, datasets, strict=True):
        paths = [partial / env_id / f"seed{seed}.json" for seed in seeds]
        records += evaluate_model_seeds(
            model, model_dir, env_id, seeds, baseline, dataset, paths,
            max_episode_steps=(caps or {}).get(env_id), device=device,
            policy_module=policy_module, out_of_bounds=out_of_bounds,
            extra={"snapshot": progress},
        )  # fmt: skip
    shutil.rmtree(output_dir, ignore_errors=True)
    os.replace(partial, output_dir)
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model key, e.g. dm or qwen")
    parser.add_argument("--model-dir", required=True, help="the snapshot's model folder")
    parser.add_argument("--envs", nargs="+", required=True, help="Gymnasium env ids")
    parser.add_argument("--seeds", nargs="+", type=int, required=True, help="env seeds")
    parser.add_argument("--baselines", nargs="+", required=True, help="one per env, in order")
    parser.add_argument("--datasets", nargs="+", required=True, help="one per env, in order")
    parser.add_argument("--output-dir", required=True, help="{env}/seed{seed}.json go here")
    parser.add_argument(
        "--max-episode-steps",
        nargs="*",
        default=[],
        metavar="ENV=N",
        help="episode caps from the config; other envs keep their own",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    add_out_of_bounds_flag(parser)
    parser.add_argument("--policy-module", default=None, help="see workflow_scripts.evaluate")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    records = evaluate_snapshot(
        args.model,
        args.model_dir,
        args.envs,
        args.seeds,
        args.baselines,
        args.datasets,
        args.output_dir,
        caps=parse_caps(args.max_episode_steps, args.envs),
        device=args.device,
        out_of_bounds=args.out_of_bounds,
        policy_module=args.policy_module,
    )
    for record in records:
        print(describe(record))
    episodes = sum(record["episode_time_s"] for record in records)
    total = time.perf_counter() - start
    print(
        f"{len(records)} episodes in {total:.1f} s: {episodes:.1f} s of episodes, "
        f"{total - episodes:.1f} s loading and writing (process start and imports not counted)"
    )


if __name__ == "__main__":
    main()
