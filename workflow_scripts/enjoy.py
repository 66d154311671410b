"""Watch a trained expert play: its return in a few episodes (rl-zoo3's ``enjoy``).

CLI::

    python -m workflow_scripts.enjoy --env CartPole-v1 [--experts-dir results/experts] \\
        [--episodes 5] [--seed 0] [--deterministic | --sample]

Episode ``i`` is seeded ``seed + i`` and capped as the expert was trained. By default the
expert acts deterministically (as in the deterministic check of its ``expert.json``);
``--sample`` draws its actions as the dataset collection does
(:class:`workflow_scripts.experts.sampler.ExpertSampler`).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from workflow_scripts.experts.layout import EXPERTS_DIR, ExpertFiles
from workflow_scripts.experts.load import deterministic_actor, load_expert, play_episodes
from workflow_scripts.experts.sampler import ExpertSampler, training_noise_std


def enjoy(
    env_id: str,
    experts_dir: str | os.PathLike = EXPERTS_DIR,
    n_episodes: int = 5,
    seed: int = 0,
    deterministic: bool = True,
) -> list[float]:
    """Play ``n_episodes`` with the trained expert of ``env_id``; print and return the returns."""
    torch.set_num_threads(1)
    files = ExpertFiles.of(env_id, experts_dir)
    model, vecnormalize, summary = load_expert(files.model, files.summary)
    if deterministic:
        act, how = deterministic_actor(model, vecnormalize), "deterministic"
    else:
        sampler = ExpertSampler(model, vecnormalize, seed, training_noise_std(files.config))
        act, how = sampler, sampler.sampling
    print(f"{env_id}: {summary['algo'].upper()} expert from {files.model}, {how} actions")
    returns, lengths = play_episodes(
        act, env_id, n_episodes, seed, summary.get("max_episode_steps")
    )
    for episode, (episode_return, length) in enumerate(zip(returns, lengths, strict=True)):
        print(
            f"episode {episode} (seed {seed + episode}): return {episode_return:.2f}, "
            f"{length} steps"
        )
    print(f"mean return over {n_episodes} episodes: {np.mean(returns):.2f} ± {np.std(returns):.2f}")
    return returns


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="Gymnasium env id of a trained expert")
    parser.add_argument(
        "--experts-dir", default=str(EXPERTS_DIR), help="folder of {env}/ expert folders"
    )
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="episode i is seeded seed + i")
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--deterministic",
        dest="deterministic",
        action="store_true",
        default=True,
        help="the policy's most probable action (default)",
    )
    how.add_argument(
        "--sample",
        dest="deterministic",
        action="store_false",
        help="sampled actions, as the dataset collection draws them",
    )
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    if not ExpertFiles.of(args.env, args.experts_dir).summary.exists():
        parser.error(
            f"no trained expert for {args.env} in {args.experts_dir} "
            f"(run: snakemake {ExpertFiles.of(args.env, args.experts_dir).summary})"
        )
    enjoy(args.env, args.experts_dir, args.episodes, args.seed, args.deterministic)


if __name__ == "__main__":
    main()
