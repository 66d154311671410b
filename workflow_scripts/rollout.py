"""Collect exactly N expert transitions into one HDF5 dataset per env.

The expert samples its actions (stochastic policy; epsilon-greedy with the trained
exploration rate for DQN-family experts), as the paper's datasets do. ``n_envs`` copies
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
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from tqdm import tqdm

from workflow_scripts.dataset import DatasetWriter
from workflow_scripts.envs import episode_cap, make_env
from workflow_scripts.provenance import package_versions, sha256_file
from workflow_scripts.train_expert import load_expert

BLOCK_STEPS = 512  # steps buffered per env copy before a write to the file


class ExpertSampler:
    """Batched stochastic actions from a trained SB3 model.

    Calls the policy network directly on the whole batch: SB3's ``predict`` re-checks and
    re-shapes its input on every call, which costs more than stepping cheap envs such as
    CartPole. The actions are those ``predict(deterministic=False)`` would give: sampled,
    unscaled from tanh-squashed policies, clipped to the bounds otherwise.
    """

    def __init__(self, model, vecnormalize=None, seed: int = 0):
        self.model = model
        self.policy = model.policy
        self.policy.set_training_mode(False)
        self.vecnormalize = vecnormalize
        self.action_space = model.action_space
        self.epsilon = float(model.exploration_rate) if isinstance(model, (DQN, QRDQN)) else None
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        policy_input = observations
        if self.vecnormalize is not None:
            policy_input = self.vecnormalize.normalize_obs(policy_input)
        with torch.no_grad():
            tensor = torch.as_tensor(policy_input, device=self.policy.device)
            actions = self.policy._predict(tensor, deterministic=self.epsilon is not None)
        actions = actions.cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            actions = actions.reshape(len(observations), *self.action_space.shape)
            if self.policy.squash_output:
                actions = self.policy.unscale_action(actions)
            else:
                actions = np.clip(actions, self.action_space.low, self.action_space.high)
        elif self.epsilon is not None:
            # DQN-family experts sample epsilon-greedily, as SB3's predict(deterministic=False).
            explore = self.rng.random(len(actions)) < self.epsilon
            actions = np.where(
                explore, self.rng.integers(self.action_space.n, size=len(actions)), actions
            )
        return actions


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
    max_rows = int((stops - starts).max())
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
            block = min(BLOCK_STEPS, max_rows - steps_taken)
            buffers = {
                "observations": np.empty((block, *observations.shape), dtype=observations.dtype),
                "actions": None,
                "rewards": np.empty((block, n_envs), dtype=np.float32),
                "terminated": np.empty((block, n_envs), dtype=bool),
                "truncated": np.empty((block, n_envs), dtype=bool),
            }
            for step in range(block):
                actions = act(observations)
                if buffers["actions"] is None:
                    buffers["actions"] = np.empty(
                        (block, *np.shape(actions)), dtype=np.asarray(actions).dtype
                    )
                buffers["observations"][step] = observations
                buffers["actions"][step] = actions
                observations, rewards, terminated, truncated, _ = envs.step(actions)
                buffers["rewards"][step] = rewards
                buffers["terminated"][step] = terminated
                buffers["truncated"][step] = truncated
                # Only steps inside an env's own rows count toward its episodes.
                inside = steps_taken + step < stops - starts
                running_returns += np.where(inside, rewards, 0.0)
                for rank in np.flatnonzero((terminated | truncated) & inside):
                    episode_returns.append(float(running_returns[rank]))
                    running_returns[rank] = 0.0
            written = 0
            for rank in range(n_envs):
                first = starts[rank] + steps_taken
                count = min(block, int(stops[rank] - first))
                if count <= 0:
                    continue
                truncated_rows = buffers["truncated"][:count, rank].copy()
                if first + count == stops[rank]:
                    truncated_rows[-1] = True  # the env's stream is cut here
                writer.write_at(
                    int(first),
                    buffers["observations"][:count, rank],
                    buffers["actions"][:count, rank],
                    buffers["rewards"][:count, rank],
                    buffers["terminated"][:count, rank],
                    truncated_rows,
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
    expert_dir: str | os.PathLike,
    output: str | os.PathLike,
    n_transitions: int,
    n_envs: int,
    seed: int,
    max_episode_steps: int | None = None,
) -> dict:
    """Load the env's expert and collect its dataset (the ``rollout`` rule)."""
    torch.set_num_threads(1)
    expert_dir = Path(expert_dir)
    model, vecnormalize, expert_summary = load_expert(expert_dir, env_id)
    sampler = ExpertSampler(model, vecnormalize, seed)
    attrs = {
        "expert_algo": expert_summary["algo"],
        "expert_sha256": sha256_file(expert_dir / f"{env_id}.zip"),
        "expert_path": str(expert_dir / f"{env_id}.zip"),
        "expert_sampling": "epsilon-greedy" if sampler.epsilon is not None else "stochastic policy",
        "expert_epsilon": sampler.epsilon if sampler.epsilon is not None else -1.0,
        "observation_storage": "raw env observations (float64 MuJoCo values stored as float32)",
        "action_storage": "the action the env received (sampled, within the space's bounds)",
        "versions": package_versions(),
        "created_by": "workflow_scripts.rollout",
    }
    summary = collect_dataset(
        env_id, sampler, output, n_transitions, n_envs, seed, max_episode_steps, attrs
    )
    print(
        f"{env_id}: {n_transitions} transitions, {summary['n_episodes']} complete episodes, "
        f"expert return {summary['expert_mean_return']:.3f} ± {summary['expert_std_return']:.3f} -> {output}",
        flush=True,
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Collect an env's expert dataset (HDF5).")
    parser.add_argument("--env", required=True)
    parser.add_argument("--expert-dir", required=True, help="results/experts/{env}")
    parser.add_argument("--n-transitions", type=int, required=True)
    parser.add_argument("--n-envs", type=int, default=32)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    rollout(
        args.env,
        args.expert_dir,
        args.output,
        args.n_transitions,
        args.n_envs,
        args.seed,
        args.max_episode_steps,
    )


if __name__ == "__main__":
    main()
