"""Gymnasium spaces as plain JSON, so datasets and models can carry them as attributes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from gymnasium import spaces


def space_to_dict(space: spaces.Space) -> dict[str, Any]:
    """Describe a Box or Discrete space as a JSON-ready dict."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": np.asarray(space.low, dtype=np.float64).ravel().tolist(),
            "high": np.asarray(space.high, dtype=np.float64).ravel().tolist(),
            "dtype": str(space.dtype),
        }
    raise ValueError(f"unsupported space {space!r}: only Box and Discrete are handled")


def space_from_dict(description: dict[str, Any]) -> spaces.Space:
    """Inverse of :func:`space_to_dict`."""
    kind = description.get("type")
    if kind == "Discrete":
        return spaces.Discrete(int(description["n"]), start=int(description.get("start", 0)))
    if kind == "Box":
        shape = tuple(description["shape"])
        low = np.asarray(description["low"], dtype=np.float64).reshape(shape)
        high = np.asarray(description["high"], dtype=np.float64).reshape(shape)
        return spaces.Box(low=low, high=high, shape=shape, dtype=np.dtype(description["dtype"]))
    raise ValueError(f"unknown space type {kind!r} in {description!r}")


def space_to_json(space: spaces.Space) -> str:
    return json.dumps(space_to_dict(space))


def space_from_json(text: str) -> spaces.Space:
    return space_from_dict(json.loads(text))


def flat_dim(space: spaces.Space) -> int:
    """Number of values one element of the space has when stored in a dataset row."""
    if isinstance(space, spaces.Discrete):
        return 1
    return int(np.prod(space.shape))
