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

Every done row (terminated, truncated, or cut) also gets its final observation, the one
the step after it returned: gymnasium's vector env hands it over in
``info["final_observation"]`` before its autoreset; at a cut the env did not end, and the
next observation of the stream is that row's final observation. So every episode of the
file has ``T + 1`` observations (dataset format 2, :mod:`workflow_scripts.dataset`).
Reading them changes nothing else: the transitions are those the collector wrote before.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
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
    shares = RowShares.split(n_transitions, n_envs)
    envs = make_vector_env(env_id, shares.n_envs, max_episode_steps)
    single_env = envs.envs[0]
    observations, _ = envs.reset(seed=[seed + rank for rank in range(shares.n_envs)])
    episodes = EpisodeReturns(shares.rows)
    # Longer blocks mean fewer (per-call costly) HDF5 writes; the budget bounds the memory.
    block_steps = max(
        1, min(MAX_BLOCK_STEPS, BUFFER_BYTES // (shares.n_envs * observations[0].nbytes))
    )
    started = time.time()
    writer_attrs = {"env_id": env_id, **(attrs or {})}
    with DatasetWriter(
        output,
        n_transitions,
        single_env.observation_space,
        single_env.action_space,
        writer_attrs,
        with_final_observations=True,
    ) as writer:
        bar = tqdm(
            total=n_transitions,
            desc=f"rollout {env_id}",
            unit="transition",
            mininterval=10,
            file=sys.stdout,
            disable=not progress,
        )
        steps_taken = 0
        while steps_taken < shares.max_rows:
            n_steps = min(block_steps, shares.max_rows - steps_taken)
            block, observations = step_block(
                envs, act, observations, n_steps, steps_taken, episodes
            )
            bar.update(write_block(writer, block, shares, steps_taken))
            steps_taken += n_steps
        bar.close()
        summary = _summary(env_id, episodes, shares, seed, max_episode_steps, single_env)
        # Wall time goes to the log and the return value, not the file: same seed, same bytes.
        writer.attrs.update(summary)
    summary["collection_seconds"] = round(time.time() - started, 2)
    envs.close()
    return summary


@dataclass(frozen=True)
class RowShares:
    """Which rows of the file each env copy writes: copy i owns ``[starts[i], stops[i])``."""

    starts: np.ndarray
    stops: np.ndarray
    rows_per_env: int

    @classmethod
    def split(cls, n_transitions: int, n_envs: int) -> RowShares:
        """Equal contiguous shares; only the last copy may get fewer rows, and a copy that
        would get none is dropped."""
        n_envs = max(1, min(n_envs, n_transitions))
        rows_per_env = math.ceil(n_transitions / n_envs)
        starts = np.arange(n_envs) * rows_per_env
        stops = np.minimum(starts + rows_per_env, n_transitions)
        n_envs = int((stops > starts).sum())
        return cls(starts[:n_envs], stops[:n_envs], rows_per_env)

    @property
    def n_envs(self) -> int:
        return len(self.starts)

    @property
    def rows(self) -> np.ndarray:
        return self.stops - self.starts

    @property
    def max_rows(self) -> int:
        return int(self.rows.max())


class EpisodeReturns:
    """Returns of the episodes that finish inside their env copy's own rows."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self.min_rows = int(rows.min())
        self.running = np.zeros(len(rows))
        self.finished: list[float] = []

    def record(self, step: int, rewards: np.ndarray, done: np.ndarray) -> None:
        """Add step ``step``'s rewards of every copy; close the episodes that are done."""
        if step >= self.min_rows:
            # Only steps inside an env's own rows count toward its episodes.
            inside = step < self.rows
            rewards = np.where(inside, rewards, 0.0)
            done &= inside
        self.running += rewards
        if done.any():
            for rank in np.flatnonzero(done):
                self.finished.append(float(self.running[rank]))
                self.running[rank] = 0.0


@dataclass
class StepBlock:
    """``n_steps`` consecutive steps of every env copy, indexed [step, copy, ...].

    ``final_observations[(step, copy)]`` is what the env returned at each episode end
    (before its autoreset); ``next_observations`` are the observations the block ends on.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_observations: dict[tuple[int, int], np.ndarray]
    next_observations: np.ndarray

    def final_observation(self, step: int, rank: int) -> np.ndarray:
        """The observation after copy ``rank``'s step ``step``, before any autoreset: the
        env's own final one where an episode ended, else the stream's next observation (a
        row cut at the end of the copy's rows)."""
        if (step, rank) in self.final_observations:
            return self.final_observations[step, rank]
        if step + 1 < len(self.observations):
            return self.observations[step + 1, rank]
        return self.next_observations[rank]


def step_block(
    envs: gym.vector.VectorEnv,
    act,
    observations: np.ndarray,
    n_steps: int,
    first_step: int,
    episodes: EpisodeReturns,
) -> tuple[StepBlock, np.ndarray]:
    """Step all copies ``n_steps`` times from ``observations``: the block and the
    observations it ends on. ``first_step`` is the block's first step of the stream."""
    n_envs = len(observations)
    observation_rows = np.empty((n_steps, *observations.shape), dtype=observations.dtype)
    action_rows = None  # shaped after the first call, when the action dtype is known
    reward_rows = np.empty((n_steps, n_envs), dtype=np.float32)
    terminated_rows = np.empty((n_steps, n_envs), dtype=bool)
    truncated_rows = np.empty((n_steps, n_envs), dtype=bool)
    final_observations = {}
    for step in range(n_steps):
        actions = act(observations)
        if action_rows is None:
            action_rows = np.empty((n_steps, *np.shape(actions)), np.asarray(actions).dtype)
        observation_rows[step] = observations
        action_rows[step] = actions
        observations, rewards, terminated, truncated, infos = envs.step(actions)
        reward_rows[step] = rewards
        terminated_rows[step] = terminated
        truncated_rows[step] = truncated
        done = terminated | truncated
        if done.any():
            # gymnasium 0.29's vector autoreset: the ended episode's last observation.
            for rank in np.flatnonzero(done):
                final_observations[step, int(rank)] = infos["final_observation"][rank]
        episodes.record(first_step + step, rewards, done)
    block = StepBlock(
        observation_rows,
        action_rows,
        reward_rows,
        terminated_rows,
        truncated_rows,
        final_observations,
        observations,
    )
    return block, observations


def write_block(writer: DatasetWriter, block: StepBlock, shares: RowShares, first_step: int) -> int:
    """Write each copy's steps of ``block`` at its rows; the number of rows written."""
    written = 0
    for rank in range(shares.n_envs):
        first = shares.starts[rank] + first_step
        count = min(len(block.rewards), int(shares.stops[rank] - first))
        if count <= 0:
            continue
        truncated_column = block.truncated[:count, rank].copy()
        if first + count == shares.stops[rank]:
            truncated_column[-1] = True  # the env's stream is cut here
        done_steps = np.flatnonzero(block.terminated[:count, rank] | truncated_column)
        writer.write_at(
            int(first),
            block.observations[:count, rank],
            block.actions[:count, rank],
            block.rewards[:count, rank],
            block.terminated[:count, rank],
            truncated_column,
            np.array([block.final_observation(int(step), rank) for step in done_steps]),
        )
        written += count
    return written


def _summary(
    env_id: str,
    episodes: EpisodeReturns,
    shares: RowShares,
    seed: int,
    max_episode_steps: int | None,
    single_env: gym.Env,
) -> dict:
    """The collection's summary (file attributes); RuntimeError when no episode finished."""
    if not episodes.finished:
        raise RuntimeError(
            f"{env_id}: no episode finished within {shares.rows_per_env} steps per env copy; "
            "raise dataset.n_transitions or lower dataset.n_envs"
        )
    return {
        "n_episodes": len(episodes.finished),
        "expert_mean_return": float(np.mean(episodes.finished)),
        "expert_std_return": float(np.std(episodes.finished)),
        "n_envs": shares.n_envs,
        "rows_per_env": shares.rows_per_env,
        "seed": seed,
        "max_episode_steps": max_episode_steps or episode_cap(single_env) or -1,
    }


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
