"""The interface every evaluated model implements, so the evaluation harness is model-agnostic."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

Loaded = TypeVar("Loaded")
# The last model load_once loaded, with what identifies it (one at a time: a job moves on
# to the next model folder only when done with the previous one).
_LAST_LOADED: dict[str, Any] = {}


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


def load_once(folder: str | os.PathLike, load: Callable[[], Loaded], *key: Any) -> Loaded:
    """``load()``, or the object it returned last time for the same model folder, unchanged
    on disk (names, sizes and modification times of its files), and the same ``key``
    (e.g. device and dtype).

    A job that evaluates one snapshot on every env asks for the same weights once per env;
    they are read once. Only the last model is held, so a long-lived process does not keep
    every model it ever loaded.
    """
    folder = Path(folder).resolve()
    files = sorted(path for path in folder.iterdir() if path.is_file())
    stamp = tuple((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    identity = (str(folder), stamp, key)
    if _LAST_LOADED.get("identity") != identity:
        _LAST_LOADED.clear()  # free the previous model before loading the next
        _LAST_LOADED.update(identity=identity, value=load())
    return _LAST_LOADED["value"]
