"""The random-policy score of one env: uniform random actions over many seeded episodes.

Episode ``i`` resets the env and seeds the action space with ``seed + i``, so the score
is reproducible; the standard error is reported beside the mean.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from workflow_scripts.envs import episode_cap, make_env, run_episodes
from workflow_scripts.provenance import package_versions, write_json


def random_policy_returns(
    env_id: str, n_episodes: int, seed: int, max_episode_steps: int | None = None
) -> tuple[list[float], list[int]]:
    """Returns and lengths of ``n_episodes`` episodes of uniform random actions."""
    return run_episodes(
        env_id, n_episodes, seed, max_episode_steps, lambda env, _: env.action_space.sample()
    )


def compute_baseline(
    env_id: str, n_episodes: int, seed: int, max_episode_steps: int | None = None
) -> dict:
    """The baseline document written to ``results/baselines/{env}.json``."""
    started = time.time()
    returns, lengths = random_policy_returns(env_id, n_episodes, seed, max_episode_steps)
    std = float(np.std(returns, ddof=1))
    return {
        "env_id": env_id,
        "policy": "uniform random",
        "mean_return": float(np.mean(returns)),
        "std_return": std,
        "stderr_return": std / math.sqrt(n_episodes),
        "n_episodes": n_episodes,
        "seed": seed,
        "max_episode_steps": max_episode_steps
        if max_episode_steps
        else episode_cap(make_env(env_id)),
        "mean_length": float(np.mean(lengths)),
        "returns": returns,
        "wall_seconds": round(time.time() - started, 2),
        "versions": package_versions(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Random-policy score of one env.")
    parser.add_argument("--env", required=True)
    parser.add_argument("--n-episodes", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    if args.n_episodes < 2:
        raise SystemExit("--n-episodes must be at least 2 (the standard error needs two)")
    document = compute_baseline(args.env, args.n_episodes, args.seed, args.max_episode_steps)
    write_json(args.output, document)
    print(
        f"{args.env}: random policy {document['mean_return']:.3f} ± {document['stderr_return']:.3f} "
        f"(s.e.) over {args.n_episodes} episodes -> {args.output}"
    )


if __name__ == "__main__":
    main()
