"""Hand-written controllers, so tiny datasets have something to imitate and evaluation
tests have a policy that scores."""

from __future__ import annotations

import numpy as np


def cartpole_action(observation) -> int:
    """Push the cart toward where the pole is falling (angle plus half its velocity)."""
    return int(observation[2] + 0.5 * observation[3] > 0)


def pendulum_action(observation) -> np.ndarray:
    """A PD controller on the pole's angle, clipped to Pendulum's torque range."""
    _cos_theta, sin_theta, velocity = observation
    return np.clip([-2.0 * sin_theta - 0.5 * velocity], -2.0, 2.0).astype(np.float32)


HEURISTICS = {"CartPole-v1": cartpole_action, "Pendulum-v1": pendulum_action}


def heuristic_action(env_id: str, observation):
    """The deterministic controller of ``env_id`` (CartPole-v1 or Pendulum-v1)."""
    if env_id not in HEURISTICS:
        raise ValueError(f"no hand-written controller for {env_id}; use policy='random'")
    return HEURISTICS[env_id](observation)


class CartPoleController:
    """:func:`cartpole_action` behind the evaluation ``Policy`` interface; it records the
    ``(prev_reward, prev_term)`` of every call and counts resets."""

    def __init__(self):
        self.calls: list[tuple[float | None, bool | None]] = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def act(self, observation, prev_reward, prev_term):
        self.calls.append((prev_reward, prev_term))
        return cartpole_action(observation)
