"""Fixtures of the retrieval tests: a small CartPole dataset of the hand-written controller
and its index (module-scoped: built once, read by many tests), and hand-made datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.datasets import write_env_dataset
from workflow_scripts.dataset import DatasetWriter
from workflow_scripts.envs import make_env
from workflow_scripts.retrieval.index import build_index, load_index

# Four 500-step episodes of the controller: enough for 1-NN to balance the pole from other
# start states (measured: 1000 rows and more score 96-100% normalized on unseen seeds, one
# 500-row episode about 19%).
CARTPOLE_ROWS = 2000


@pytest.fixture(scope="module")
def cartpole_dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("datasets")
    return write_env_dataset(
        folder / "CartPole-v1.h5", "CartPole-v1", CARTPOLE_ROWS, seed=0, policy="heuristic"
    )


@pytest.fixture(scope="module")
def cartpole_index_path(cartpole_dataset, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("retrieval") / "CartPole-v1.h5"
    build_index(cartpole_dataset, output)
    return output


@pytest.fixture
def cartpole_index(cartpole_index_path):
    with load_index(cartpole_index_path, "CartPole-v1") as index:
        yield index


def write_rows(
    path: Path,
    env_id: str,
    observations,
    actions,
    expert_mean_return: float = 1.0,
) -> Path:
    """A dataset of ``env_id`` with exactly these rows (no episode ends)."""
    env = make_env(env_id)
    n_rows = len(actions)
    attrs = {"env_id": env_id, "n_episodes": 1, "expert_mean_return": expert_mean_return}
    attrs |= {"expert_std_return": 0.0, "seed": 0}
    with DatasetWriter(path, n_rows, env.observation_space, env.action_space, attrs) as writer:
        writer.append(
            np.asarray(observations),
            np.asarray(actions),
            np.zeros(n_rows, np.float32),
            np.zeros(n_rows, bool),
            np.zeros(n_rows, bool),
        )
    env.close()
    return path
