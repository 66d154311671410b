"""Per env, the scores every normalized score is measured against, in one file.

``results/scores.json`` answers the question users ask most of benchmarks like this one:
which scores were used to normalize? For each env:

- ``random``: the random policy's return (mean, std, standard error, episodes, seed, the
  episode cap), from ``results/baselines/{env}.json``: the normalization's 0%;
- ``expert_sampled``: the expert's return while it collected the dataset (mean, std,
  episodes), from the dataset's attributes: the normalization's 100%, as in the paper;
- ``expert_deterministic``: the expert's greedy return (mean, std, episodes, seed), from
  ``results/experts/{env}/expert.json``, and the quality gate's verdict on it.

Each entry names the file it came from; nothing is recomputed.

    python -m workflow_scripts.reference_scores --baselines results/baselines/*.json \\
        --datasets results/datasets/*.h5 --experts results/experts/*/expert.json \\
        --output results/scores.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workflow_scripts.dataset import read_info
from workflow_scripts.env_files import dataset_env, files_by_env, json_env
from workflow_scripts.provenance import package_versions, write_json


def env_scores(baseline: Path, dataset: Path, expert: Path) -> dict[str, Any]:
    """One env's reference scores, each with the file it came from."""
    random = json.loads(baseline.read_text())
    info = read_info(dataset)
    summary = json.loads(expert.read_text())
    check = summary["deterministic_check"]
    return {
        "random": {
            "mean_return": random["mean_return"],
            "std_return": random["std_return"],
            "stderr_return": random["stderr_return"],
            "n_episodes": random["n_episodes"],
            "seed": random["seed"],
            "max_episode_steps": random["max_episode_steps"],
            "policy": random.get("policy"),
            "source": str(baseline),
        },
        "expert_sampled": {
            "mean_return": info.expert_mean_return,
            "std_return": info.attrs.get("expert_std_return"),
            "n_episodes": info.attrs.get("n_episodes"),
            "sampling": info.attrs.get("expert_sampling"),
            "source": str(dataset),
        },
        "expert_deterministic": {
            "mean_return": check["mean_return"],
            "std_return": check["std_return"],
            "n_episodes": check["n_episodes"],
            "seed": check["seed"],
            "quality": (summary.get("quality") or {}).get("status"),
            "source": str(expert),
        },
        "algo": summary.get("algo"),
    }


def reference_scores(
    envs: list[str], baselines: list[Path], datasets: list[Path], experts: list[Path]
) -> dict[str, Any]:
    """``results/scores.json``: each env's reference scores, envs in config order."""
    by_env = {
        "baseline": files_by_env(baselines, envs, json_env, "baseline"),
        "dataset": files_by_env(datasets, envs, dataset_env, "dataset"),
        "expert": files_by_env(experts, envs, json_env, "expert summary"),
    }
    return {
        "normalization": "100 * (return - random.mean_return) / "
        "(expert_sampled.mean_return - random.mean_return), per episode (docs/evaluation.md)",
        "envs": {
            env: env_scores(by_env["baseline"][env], by_env["dataset"][env], by_env["expert"][env])
            for env in envs
        },
        "versions": package_versions(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", required=True, help="env ids, in table order")
    parser.add_argument("--baselines", nargs="+", required=True, type=Path)
    parser.add_argument("--datasets", nargs="+", required=True, type=Path)
    parser.add_argument("--experts", nargs="+", required=True, type=Path, help="expert.json files")
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        scores = reference_scores(args.envs, args.baselines, args.datasets, args.experts)
    except (ValueError, KeyError) as error:
        print(f"[reference_scores] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    write_json(args.output, scores)
    for env, entry in scores["envs"].items():
        print(
            f"{env}: random {entry['random']['mean_return']:.2f}, expert sampled "
            f"{entry['expert_sampled']['mean_return']:.2f}, deterministic "
            f"{entry['expert_deterministic']['mean_return']:.2f}"
        )


if __name__ == "__main__":
    main()
