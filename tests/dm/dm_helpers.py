"""Helpers for the DM tests: tiny real-env datasets and a tiny model configuration."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from workflow_scripts.dataset import DatasetWriter
from workflow_scripts.dm.model import DecisionModelConfig, env_entry

TINY_ARCHITECTURE = {
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 4,
    "intermediate_size": 64,
    "sequence_length": 32,
    "value_embedding_dim": 4,
}


def heuristic_action(env_id: str, observation: np.ndarray, rng: np.random.Generator):
    """A simple deterministic controller, so the data has something to imitate."""
    if env_id == "CartPole-v1":
        return int(observation[2] + 0.5 * observation[3] > 0)
    if env_id == "Pendulum-v1":
        cos_theta, sin_theta, velocity = observation
        return np.clip([-2.0 * sin_theta - 0.5 * velocity], -2.0, 2.0).astype(np.float32)
    if env_id == "FrozenLake-v1":
        return int(observation) % 4
    raise ValueError(env_id)


def write_env_dataset(
    path: Path, env_id: str, n_transitions: int, seed: int = 0, policy: str = "heuristic"
) -> Path:
    """Roll out ``env_id`` (autoreset) with a heuristic or random policy into a dataset file."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    observation, _ = env.reset(seed=seed)
    rows = {name: [] for name in ("observations", "actions", "rewards", "terminated", "truncated")}
    episode_return, returns = 0.0, []
    for _ in range(n_transitions):
        if policy == "heuristic":
            action = heuristic_action(env_id, observation, rng)
        else:
            action = env.action_space.sample()
        next_observation, reward, terminated, truncated, _ = env.step(action)
        for name, value in zip(
            rows, (observation, action, reward, terminated, truncated), strict=True
        ):
            rows[name].append(value)
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
    with DatasetWriter(
        path, n_transitions, env.observation_space, env.action_space, attrs
    ) as writer:
        writer.append(*(np.asarray(rows[name]) for name in rows))
    env.close()
    return path


def tiny_config(
    env_ids=("CartPole-v1", "Pendulum-v1", "FrozenLake-v1"), **overrides
) -> DecisionModelConfig:
    envs = []
    for env_id in env_ids:
        env = gym.make(env_id)
        envs.append(env_entry(env_id, env.observation_space, env.action_space))
        env.close()
    return DecisionModelConfig(envs=envs, **(TINY_ARCHITECTURE | overrides))
