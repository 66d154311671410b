"""Building the benchmark's environments the same way in every stage.

Random baselines, expert training, rollouts and evaluation must see the same env,
including the same episode cap, or normalized scores would compare different tasks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import TimeLimit


class UnknownEnvError(ValueError):
    """An env id that Gymnasium does not register."""


def check_env_id(env_id: str) -> None:
    """Raise :class:`UnknownEnvError` (with a close match, if any) for an unregistered id."""
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownEnvError(f"unknown Gymnasium env id {env_id!r}{hint}")


def make_env(env_id: str, max_episode_steps: int | None = None, **kwargs) -> gym.Env:
    """``gym.make`` with the benchmark's episode cap.

    ``max_episode_steps`` (from the config) overrides or adds a time limit; envs with no
    registered limit (CliffWalking-v0 in gymnasium 0.29) need one so that random and
    learned policies finish their episodes.
    """
    check_env_id(env_id)
    if max_episode_steps is None:
        return gym.make(env_id, **kwargs)
    env = gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    if not _has_time_limit(env):
        env = TimeLimit(env, max_episode_steps=max_episode_steps)
    return env


def run_episodes(
    env_id: str,
    n_episodes: int,
    seed: int,
    max_episode_steps: int | None,
    choose_action: Callable[[gym.Env, Any], Any],
) -> tuple[list[float], list[int]]:
    """Returns and lengths of ``n_episodes`` episodes of one env built by :func:`make_env`.

    Episode ``i`` resets the env and seeds its action space with ``seed + i``, so a policy
    that samples the action space is reproducible too. ``choose_action(env, observation)``
    gives the action of each step.
    """
    env = make_env(env_id, max_episode_steps)
    returns, lengths = [], []
    for episode in range(n_episodes):
        observation, _ = env.reset(seed=seed + episode)
        env.action_space.seed(seed + episode)
        total, length, done = 0.0, 0, False
        while not done:
            action = choose_action(env, observation)
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    env.close()
    return returns, lengths


def wrapper_chain(env: gym.Env) -> list[gym.Env]:
    """``env``, the wrappers below it, and last the env they wrap (``env.unwrapped``)."""
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def episode_cap(env: gym.Env) -> int | None:
    """The time limit an env built by :func:`make_env` enforces, or None."""
    for layer in wrapper_chain(env):
        if isinstance(layer, TimeLimit):
            return int(layer._max_episode_steps)
    return None


def _has_time_limit(env: gym.Env) -> bool:
    return episode_cap(env) is not None
