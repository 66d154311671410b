"""Datasets for tests: real env transitions written with the workflow's own DatasetWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.controllers import heuristic_action
from workflow_scripts.dataset import DatasetWriter
from workflow_scripts.envs import make_env

COLUMNS = ("observations", "actions", "rewards", "terminated", "truncated")


def write_env_dataset(
    path: Path,
    env_id: str,
    n_transitions: int,
    seed: int = 0,
    policy: str = "random",
    expert_mean_return: float | None = None,
) -> Path:
    """Roll out ``env_id`` for ``n_transitions`` steps (resetting after each episode) into
    a dataset file at ``path``.

    ``policy`` is ``"random"`` (the action space's own sampler, seeded) or ``"heuristic"``
    (the hand-written controller of :mod:`tests.support.controllers`). The attributes
    record the finished episodes' returns, unless ``expert_mean_return`` declares one
    (tests of score normalisation need a chosen value).
    """
    if policy not in ("random", "heuristic"):
        raise ValueError(f"policy must be 'random' or 'heuristic', not {policy!r}")
    env = make_env(env_id)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    rows = {name: [] for name in COLUMNS}
    episode_return, returns = 0.0, []
    for _ in range(n_transitions):
        if policy == "heuristic":
            action = heuristic_action(env_id, observation)
        else:
            action = env.action_space.sample()
        next_observation, reward, terminated, truncated, _ = env.step(action)
        for name, value in zip(
            COLUMNS, (observation, action, reward, terminated, truncated), strict=True
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
    if expert_mean_return is not None:
        attrs |= {"n_episodes": max(len(returns), 1), "expert_mean_return": expert_mean_return}
    with DatasetWriter(
        path, n_transitions, env.observation_space, env.action_space, attrs
    ) as writer:
        writer.append(*(np.asarray(rows[name]) for name in COLUMNS))
    env.close()
    return path


def write_dataset(path: Path, env_id: str, expert_mean_return: float, n_transitions: int = 8):
    """A tiny dataset of ``env_id`` (random actions) declaring ``expert_mean_return``."""
    return write_env_dataset(path, env_id, n_transitions, expert_mean_return=expert_mean_return)
