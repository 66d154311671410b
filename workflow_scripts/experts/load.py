"""A trained expert: loading it from its files, and playing episodes with it."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from workflow_scripts.config import algorithm_class
from workflow_scripts.envs import run_episodes

# Actions for a batch of observations: the shape every actor here takes.
Actor = Callable[[np.ndarray], np.ndarray]


def load_expert(
    model_path: str | os.PathLike, summary_path: str | os.PathLike, device: str = "cpu"
) -> tuple[BaseAlgorithm, VecNormalize | None, dict[str, Any]]:
    """The trained model, its VecNormalize statistics (or None) and its ``expert.json``.

    The summary names the algorithm and the statistics file, which sits beside it.
    """
    summary_path = Path(summary_path)
    summary = json.loads(summary_path.read_text())
    model = algorithm_class(summary["algo"]).load(model_path, device=device)
    vecnormalize = None
    if summary.get("vecnormalize"):
        with open(summary_path.parent / summary["vecnormalize"], "rb") as handle:
            vecnormalize = pickle.load(handle)
        vecnormalize.training = False
    return model, vecnormalize, summary


def deterministic_actor(model: BaseAlgorithm, vecnormalize: VecNormalize | None) -> Actor:
    """The model's deterministic actions (``predict(deterministic=True)``) on raw observations."""

    def act(observations: np.ndarray) -> np.ndarray:
        if vecnormalize is not None:
            observations = vecnormalize.normalize_obs(observations)
        actions, _ = model.predict(observations, deterministic=True)
        return actions

    return act


def play_episodes(
    act: Actor, env_id: str, n_episodes: int, seed: int, max_episode_steps: int | None
) -> tuple[list[float], list[int]]:
    """Returns and lengths of ``n_episodes`` in one env, episode ``i`` seeded ``seed + i``;
    ``act`` is called on a batch of one observation at each step."""

    def choose_action(env, observation):
        return act(np.asarray(observation)[None])[0]

    return run_episodes(env_id, n_episodes, seed, max_episode_steps, choose_action)


def deterministic_check(
    model: BaseAlgorithm,
    env_id: str,
    n_episodes: int,
    seed: int,
    max_episode_steps: int | None,
    vecnormalize: VecNormalize | None,
) -> dict[str, Any]:
    """Returns of the trained model acting deterministically (a sanity check of the expert)."""
    returns, lengths = play_episodes(
        deterministic_actor(model, vecnormalize), env_id, n_episodes, seed, max_episode_steps
    )
    return {
        "n_episodes": n_episodes,
        "seed": seed,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
    }
