"""Collect exactly N expert transitions into one HDF5 dataset per env.

The expert samples its actions (stochastic policy; epsilon-greedy with the trained
exploration rate for DQN-family experts; for deterministic-policy experts, TD3 and DDPG,
the policy plus the Gaussian action noise it was trained with, where its recipe has one),
as the paper's datasets do. ``n_envs`` copies
of the env step together and the policy is called once per step on the whole batch.

Each env copy owns one contiguous block of rows, so every row is followed by that same
env's next observation (autoreset: after a done row comes the next episode's first
observation). The last row of each block is marked ``truncated`` because the stream is
cut there; episodes cut this way are not counted as complete. The expert score used for
normalization is the mean return over complete episodes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from workflow_scripts.dataset import DatasetWriter
from workflow_scripts.envs import episode_cap, make_env
from workflow_scripts.experts.load import load_expert
from workflow_scripts.experts.sampler import ExpertSampler, training_noise_std
from workflow_scripts.provenance import package_versions, sha256_file

# Steps buffered per env copy before a write to the file: as many as fit the byte budget
# (observations of all copies), at most MAX_BLOCK_STEPS.
BUFFER_BYTES = 64 * 2**20
MAX_BLOCK_STEPS = 4096


def make_vector_env(
    env_id: str, n_envs: int, max_episode_steps: int | None
) -> gym.vector.VectorEnv:
    """``n_envs`` copies stepped in this process, with gymnasium's autoreset."""
    return gym.vector.SyncVectorEnv(
        [lambda: make_env(env_id, max_episode_steps) for _ in range(n_envs)]
    )


def collect_dataset(
    env_id: str,
    act,
    output: str | os.PathLike,
    n_transitions: int,
    n_envs: int,
    seed: int,
    max_episode_steps: int | None = None,
    attrs: dict | None = None,
    progress: bool = True,
) -> dict:
    """Step ``n_envs`` env copies with ``act(observations) -> actions`` and write N rows.

    Returns the summary also stored as file attributes (episodes, expert mean/std return).
    """
    n_envs = max(1, min(n_envs, n_transitions))
    rows_per_env = math.ceil(n_transitions / n_envs)
    # Block b of env i holds rows [starts[i], stops[i]); the last block may be shorter.
    starts = np.arange(n_envs) * rows_per_env
    stops = np.minimum(starts + rows_per_env, n_transitions)
    n_envs = int((stops > starts).sum())
    starts, stops = starts[:n_envs], stops[:n_envs]

    envs = make_vector_env(env_id, n_envs, max_episode_steps)
    single_env = envs.envs[0]
    observation_space, action_space = single_env.observation_space, single_env.action_space
    observations, _ = envs.reset(seed=[seed + rank for rank in range(n_envs)])

    episode_returns: list[float] = []
    running_returns = np.zeros(n_envs)
    steps_taken = 0
    rows = stops - starts  # each env copy's share; only the last copy may get fewer
    max_rows, min_rows = int(rows.max()), int(rows.min())
    # Longer blocks mean fewer (per-call costly) HDF5 writes; the budget bounds the memory.
    block_steps = max(1, min(MAX_BLOCK_STEPS, BUFFER_BYTES // (n_envs * observations[0].nbytes)))
    started = time.time()
    writer_attrs = {"env_id": env_id, **(attrs or {})}
    with DatasetWriter(
        output, n_transitions, observation_space, action_space, writer_attrs
    ) as writer:
        bar = tqdm(
            total=n_transitions,
            desc=f"rollout {env_id}",
            unit="transition",
            mininterval=10,
            file=sys.stdout,
            disable=not progress,
        )
        while steps_taken < max_rows:
            block = min(block_steps, max_rows - steps_taken)
            observation_rows = np.empty((block, *observations.shape), dtype=observations.dtype)
            action_rows = None  # shaped after the first call, when the action dtype is known
            reward_rows = np.empty((block, n_envs), dtype=np.float32)
            terminated_rows = np.empty((block, n_envs), dtype=bool)
            truncated_rows = np.empty((block, n_envs), dtype=bool)
            for step in range(block):
                actions = act(observations)
                if action_rows is None:
                    action_rows = np.empty((block, *np.shape(actions)), np.asarray(actions).dtype)
                observation_rows[step] = observations
                action_rows[step] = actions
                observations, rewards, terminated, truncated, _ = envs.step(actions)
                reward_rows[step] = rewards
                terminated_rows[step] = terminated
                truncated_rows[step] = truncated
                done = terminated | truncated
                if steps_taken + step >= min_rows:
                    # Only steps inside an env's own rows count toward its episodes.
                    inside = steps_taken + step < rows
                    rewards = np.where(inside, rewards, 0.0)
                    done &= inside
                running_returns += rewards
                if done.any():
                    for rank in np.flatnonzero(done):
                        episode_returns.append(float(running_returns[rank]))
                        running_returns[rank] = 0.0
            written = 0
            for rank in range(n_envs):
                first = starts[rank] + steps_taken
                count = min(block, int(stops[rank] - first))
                if count <= 0:
                    continue
                truncated_column = truncated_rows[:count, rank].copy()
                if first + count == stops[rank]:
                    truncated_column[-1] = True  # the env's stream is cut here
                writer.write_at(
                    int(first),
                    observation_rows[:count, rank],
                    action_rows[:count, rank],
                    reward_rows[:count, rank],
                    terminated_rows[:count, rank],
                    truncated_column,
                )
                written += count
            steps_taken += block
            bar.update(written)
        bar.close()
        if not episode_returns:
            raise RuntimeError(
                f"{env_id}: no episode finished within {rows_per_env} steps per env copy; "
                "raise dataset.n_transitions or lower dataset.n_envs"
            )
        summary = {
            "n_episodes": len(episode_returns),
            "expert_mean_return": float(np.mean(episode_returns)),
            "expert_std_return": float(np.std(episode_returns)),
            "n_envs": n_envs,
            "rows_per_env": rows_per_env,
            "seed": seed,
            "max_episode_steps": max_episode_steps or episode_cap(single_env) or -1,
        }
        # Wall time goes to the log and the return value, not the file: same seed, same bytes.
        writer.attrs.update(summary)
    summary["collection_seconds"] = round(time.time() - started, 2)
    envs.close()
    return summary


def rollout(
    env_id: str,
    expert_model: str | os.PathLike,
    expert_summary: str | os.PathLike,
    expert_config: str | os.PathLike,
    output: str | os.PathLike,
    n_transitions: int,
    n_envs: int,
    seed: int,
    max_episode_steps: int | None = None,
) -> dict:
    """Load the env's expert from its files and collect its dataset (the ``rollout`` rule).

    ``expert_model``, ``expert_summary`` and ``expert_config`` are the expert's model zip,
    ``expert.json`` and ``config.yml`` (:class:`workflow_scripts.experts.layout.ExpertFiles`).
    """
    torch.set_num_threads(1)
    model, vecnormalize, summary = load_expert(expert_model, expert_summary)
    sampler = ExpertSampler(model, vecnormalize, seed, training_noise_std(expert_config))
    attrs = {
        "expert_algo": summary["algo"],
        "expert_sha256": sha256_file(expert_model),
        "expert_path": str(Path(expert_model)),
        "expert_sampling": sampler.sampling,
        "expert_epsilon": sampler.epsilon if sampler.epsilon is not None else -1.0,
        "expert_action_noise_std": sampler.action_noise_std or 0.0,
        "observation_storage": "raw env observations (float64 MuJoCo values stored as float32)",
        "action_storage": "the action the env received (sampled, within the space's bounds)",
        "versions": package_versions(),
        "created_by": "workflow_scripts.rollout",
    }
    collected = collect_dataset(
        env_id, sampler, output, n_transitions, n_envs, seed, max_episode_steps, attrs
    )
    print(
        f"{env_id}: {n_transitions} transitions, {collected['n_episodes']} complete episodes, "
        f"expert return {collected['expert_mean_return']:.3f} ± "
        f"{collected['expert_std_return']:.3f} -> {output}",
        flush=True,
    )
    return collected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Collect an env's expert dataset (HDF5).")
    parser.add_argument("--env", required=True)
    parser.add_argument("--expert-model", required=True, help="results/experts/{env}/{env}.zip")
    parser.add_argument("--expert-summary", required=True, help="results/experts/{env}/expert.json")
    parser.add_argument(
        "--expert-config",
        required=True,
        help="results/experts/{env}/config.yml: the hyperparameters it was trained with",
    )
    parser.add_argument("--n-transitions", type=int, required=True)
    parser.add_argument("--n-envs", type=int, default=128)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    rollout(
        args.env,
        args.expert_model,
        args.expert_summary,
        args.expert_config,
        args.output,
        args.n_transitions,
        args.n_envs,
        args.seed,
        args.max_episode_steps,
    )


if __name__ == "__main__":
    main()
