"""The 1-NN behaviour-cloning policy: act as the nearest expert transition did.

At each step the observation is looked up in the env's retrieval index
(:mod:`workflow_scripts.retrieval.index`: standardized Box observations or one-hot
Discrete ones, exact squared-Euclidean search) and the action that point stands for is
returned: for an observation the dataset holds several times, the most common expert
action there (Discrete actions) or the first row's (Box actions); among equally near
points, the earliest. No memory across steps, no randomness: ``reset`` has nothing to
empty, and the same observation always gets the same action.

A cheap, honest reference row for the table: it needs no training and no GPU, and it
shows how much of the expert's score plain lookup in the same dataset recovers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from workflow_scripts.retrieval.index import RetrievalIndex, index_path, load_index


class NearestNeighbourPolicy:
    """1-NN behaviour cloning over one env's index (see the module docstring)."""

    def __init__(self, index: RetrievalIndex):
        self.index = index

    def reset(self) -> None:
        """Nothing to reset: the policy looks at the current observation only."""

    def act(
        self, observation: np.ndarray | int, prev_reward: float | None, prev_term: bool | None
    ) -> Any:
        return self.index.action(self.index.nearest(observation))


def load_policy(
    model_dir: str | os.PathLike, env_id: str, device: str | None = None
) -> NearestNeighbourPolicy:
    """The 1-NN policy of ``env_id``.

    ``model_dir`` is a folder of indexes, one per env, ``{model_dir}/{env_id}.h5`` (what
    ``python -m workflow_scripts.build_index`` writes, e.g. ``results/retrieval/``), or
    that env's index file itself (so an evaluation job can depend on, and hash, its own
    env's file only). ``device`` is accepted for the harness's interface and ignored: the
    search runs on the CPU (faiss-cpu).
    """
    model_dir = Path(model_dir)
    path = model_dir if model_dir.is_file() else index_path(model_dir, env_id)
    return NearestNeighbourPolicy(load_index(path, env_id=env_id))
