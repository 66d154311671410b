"""Inputs for the Qwen tests: small real-env datasets and a tiny Qwen3 shape."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from workflow_scripts.dataset import DatasetWriter
from workflow_scripts.envs import make_env

# A Qwen3 small enough to train for a few steps on one CPU thread (~10M parameters,
# nearly all in the 151,936-row embedding).
TINY_QWEN3 = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}


def cartpole_heuristic(observation: np.ndarray, rng: np.random.Generator) -> int:
    """Push toward where the pole falls: a decent CartPole controller, deterministic."""
    return int(observation[2] + 0.5 * observation[3] > 0)


def write_env_dataset(
    path: Path,
    env_id: str,
    n_rows: int,
    seed: int = 0,
    choose_action: Callable | None = None,
) -> Path:
    """A dataset of ``n_rows`` real env transitions (autoreset) written with DatasetWriter.

    ``choose_action(observation, rng)`` picks actions; uniform random by default.
    """
    env = make_env(env_id)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    observation, _ = env.reset(seed=seed)
    columns = {
        name: [] for name in ("observations", "actions", "rewards", "terminated", "truncated")
    }
    returns, episode_return = [], 0.0
    for _ in range(n_rows):
        action = (
            env.action_space.sample() if choose_action is None else choose_action(observation, rng)
        )
        next_observation, reward, terminated, truncated, _ = env.step(action)
        for name, value in zip(
            columns, (observation, action, reward, terminated, truncated), strict=True
        ):
            columns[name].append(value)
        episode_return += float(reward)
        if terminated or truncated:
            returns.append(episode_return)
            episode_return = 0.0
            next_observation, _ = env.reset()
        observation = next_observation
    attrs = {
        "env_id": env_id,
        "n_episodes": len(returns),
        "expert_mean_return": float(np.mean(returns)) if returns else 0.0,
        "expert_std_return": float(np.std(returns)) if returns else 0.0,
        "seed": seed,
    }
    with DatasetWriter(path, n_rows, env.observation_space, env.action_space, attrs) as writer:
        writer.append(*(np.asarray(columns[name]) for name in columns))
    env.close()
    return path
