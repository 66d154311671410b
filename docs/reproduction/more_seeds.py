"""More evaluation episodes of a trained DM on some envs than the table's 10 seeds.

The table's cell is the mean of 10 one-episode seeds; on envs whose episodes succeed or
fail (FrozenLake-v1) or where a rare episode fails (CartPole-v1), that mean moves by tens
of points from one set of seeds to another. This runs the evaluate stage's own episode
loop (``run_episode``, argmax actions, seeded resets) for seeds FIRST..FIRST+N-1 with the
policy loaded once, and prints the mean normalized score with its 95% interval.

    python docs/reproduction/more_seeds.py --model-dir results/models/dm/final \\
        --envs FrozenLake-v1 CartPole-v1 --first-seed 10 --episodes 100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from workflow_scripts.dataset import read_info
from workflow_scripts.envs import make_env
from workflow_scripts.evaluate import load_model_policy, run_episode
from workflow_scripts.scores import normalized_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--envs", nargs="+", required=True)
    parser.add_argument("--first-seed", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for env_id in args.envs:
        baseline = Path(args.results) / "baselines" / f"{env_id}.json"
        random = json.loads(baseline.read_text())["mean_return"]
        dataset = Path(args.results) / "datasets" / f"{env_id}.h5"
        expert = read_info(dataset, env_id).expert_mean_return
        policy = load_model_policy("dm", args.model_dir, env_id, "cpu")
        env = make_env(env_id)
        seeds = range(args.first_seed, args.first_seed + args.episodes)
        returns = [run_episode(policy, env, seed).episode_return for seed in seeds]
        scores = np.array([normalized_score(value, random, expert) for value in returns])
        half = stats.t.ppf(0.975, len(scores) - 1) * scores.std(ddof=1) / np.sqrt(len(scores))
        print(
            f"{env_id}: {len(scores)} episodes (seeds {seeds.start}-{seeds.stop - 1}), "
            f"mean return {np.mean(returns):.3f}, normalized {scores.mean():.2f} "
            f"± {scores.std(ddof=1):.2f}, 95% CI [{scores.mean() - half:.2f}, {scores.mean() + half:.2f}]",
            flush=True,
        )


if __name__ == "__main__":
    main()
