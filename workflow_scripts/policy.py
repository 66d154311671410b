"""The interface every evaluated model implements, so the evaluation harness is model-agnostic."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class PolicyFailure(RuntimeError):
    """The model produced something that is not an action (invalid JSON, out of space, NaN).

    The evaluation harness ends the rollout, records ``reason`` and ``raw_output`` and
    scores the episode 0% normalized, as the paper did for Qwen on Humanoid.
    """

    def __init__(self, reason: str, raw_output: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.raw_output = raw_output


class Policy(Protocol):
    """An acting model for one environment.

    ``reset`` starts a new episode (empties the context). ``act`` receives the raw env
    observation and the reward/termination of the previous step (``None`` on the first
    step of an episode) and returns the most probable action (argmax / greedy), an int
    for Discrete spaces or a float array for Box spaces.
    """

    def reset(self) -> None: ...

    def act(
        self, observation: np.ndarray | int, prev_reward: float | None, prev_term: bool | None
    ) -> Any: ...
