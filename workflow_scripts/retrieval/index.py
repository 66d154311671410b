"""The per-env retrieval index: the dataset's observations as search keys, with the expert's
actions, built once from ``results/datasets/{env}.h5`` into ``results/retrieval/{env}.h5``.

What a key is (the metric of "nearest"):

- **Box observations**: the observation standardized per dimension with the dataset's mean
  and standard deviation (stored in the index, and applied to every query), so that a
  dimension measured in large units (a MuJoCo velocity) does not drown the others (a joint
  angle). A dimension constant over the dataset has no spread to divide by: its std is
  stored as 1 (a query differing there is measured in raw units).
- **Discrete observations** (CliffWalking, FrozenLake, Taxi): one-hot. A state id is a
  category, not a quantity: FrozenLake's state 3 and 4 sit at opposite ends of the grid,
  Taxi's id packs row, column, passenger and destination, so ``|s - s'|`` would invent a
  neighbourhood the env does not have. One-hot makes the same state the only near one
  (distance 0) and every other state equally far (squared distance 2).

Squared Euclidean distance on the keys, exact search (faiss ``IndexFlatL2``): the nearest
neighbour is the true one, its cost O(N · dim) per query whatever the data
(docs/benchmarks.md, "Retrieval", measures it against trees and approximate graphs).

Identical observations are one point of the index (the dataset's first row with that
observation stands for them), with:

- its action: for Discrete actions the most common action among its rows (the expert's
  most probable action there, as the paper's evaluation takes the most probable action;
  ties go to the smallest action), for Box actions the first row's action;
- its count: how many dataset rows hold it.

So "the nearest expert transition" is well defined when the same observation was seen many
times (every state of a Discrete-observation env is). Between distinct points at exactly
the same distance the earliest point wins: queries are answered one at a time, and faiss's
single-query scan keeps the first of equal distances (tests/retrieval/test_index.py).

File layout (HDF5, plain ``h5py``; contiguous arrays, so reading a few rows reads those
rows only). It holds what the build computed (standardization, distinct observations, their
actions), not the keys themselves: those are the stored observations put through
:func:`observation_keys` when the index is loaded (a pass of arithmetic, where storing them
would double the file: 15 GB more for Humanoid-v4's 10M rows of 376 values).

============ ===================================== =========================================
dataset      shape / dtype                         meaning
============ ===================================== =========================================
observations (M, obs_dim) float32, or (M,) int64   each distinct observation, raw, as the
                                                   dataset holds it (in first-row order)
actions      (M, act_dim) float32, or (M,) int64   the action it stands for (see above)
rows         (M,) int64                            its first row in the dataset
counts       (M,) int64                            how many dataset rows hold it
mean, std    (obs_dim,) float64                    standardization (Box observations only)
============ ===================================== =========================================

Attributes: ``kind``, ``format_version``, ``env_id``, the spaces (JSON), ``encoding``,
``metric``, ``search`` and ``library`` / ``library_version``, the dataset's path, size and
attribute hash (``dataset_attrs_sha256``, the hash evaluation records carry), build time,
creation time, package versions, code commit, and ``complete`` (True, written last).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from gymnasium import spaces

from workflow_scripts.dataset import DatasetError, check_training_dataset, expected_env_id
from workflow_scripts.provenance import (
    atomic_path,
    code_commit,
    package_versions,
    sha256_json,
)
from workflow_scripts.spaces import flat_dim, space_from_json, space_to_json

INDEX_KIND = "gym-llm-bench retrieval index"
# Bump when the file layout or the meaning of a key changes.
INDEX_FORMAT_VERSION = 1
INDEX_SUFFIX = ".h5"
SEARCH_LIBRARY = "faiss-cpu"
SEARCH_METHOD = (
    "faiss.IndexFlatL2: exact, squared Euclidean distance, filled at load with the keys of "
    "the stored observations"
)
# Rows per block when reading a dataset or filling the search structure: a few hundred MB
# at Humanoid's 376 values, so a 10M-row file never needs two copies in memory.
BLOCK_ROWS = 1 << 17
# Fixed multipliers of the row hash that finds candidate duplicates (odd, so each value's
# bits all matter); duplicates are then confirmed by comparing values, never by the hash.
_HASH_MULTIPLIERS_SEED = 20260201


class IndexFileError(ValueError):
    """A retrieval index file is missing, incomplete, or not the one expected."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def index_path(model_dir: str | os.PathLike, env_id: str) -> Path:
    """Where the index of ``env_id`` lives in a folder of indexes: ``{model_dir}/{env}.h5``."""
    return Path(model_dir) / f"{env_id}{INDEX_SUFFIX}"


# ---------------------------------------------------------------------------------------
# Keys: one function for the dataset's rows and for the queries, so both round alike.


def observation_keys(
    observations: np.ndarray,
    observation_space: spaces.Space,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """Search keys of a batch of observations: (n, key_dim) float32, C-contiguous.

    Box: ``(observation - mean) / std`` computed in float64, then rounded to float32 (a
    dataset row queried as it is stored gets exactly its stored key, distance 0).
    Discrete: one-hot over the space's ``n`` states; a value outside the space is refused.
    """
    if isinstance(observation_space, spaces.Discrete):
        states = np.asarray(observations, dtype=np.int64).reshape(-1) - int(observation_space.start)
        if np.any((states < 0) | (states >= observation_space.n)):
            raise ValueError(f"observation outside {observation_space}: {observations!r}")
        keys = np.zeros((len(states), int(observation_space.n)), dtype=np.float32)
        keys[np.arange(len(states)), states] = 1.0
        return keys
    if isinstance(observation_space, spaces.Box):
        if mean is None or std is None:
            raise ValueError("Box observations need the index's mean and std")
        values = np.asarray(observations, dtype=np.float64).reshape(-1, flat_dim(observation_space))
        return np.ascontiguousarray((values - mean) / std, dtype=np.float32)
    raise ValueError(f"unsupported observation space {observation_space!r}")


def _key_dim(observation_space: spaces.Space) -> int:
    if isinstance(observation_space, spaces.Discrete):
        return int(observation_space.n)
    return flat_dim(observation_space)


# ---------------------------------------------------------------------------------------
# Building


def _column_statistics(observations: h5py.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and (population) std over all rows, in float64, block by block
    (Chan et al.'s pairwise merge, so 10M rows lose no precision to one running sum). A
    zero std (a dimension constant over the dataset) is returned as 1."""
    n_total = 0
    mean = m2 = None
    for start in range(0, observations.shape[0], BLOCK_ROWS):
        block = observations[start : start + BLOCK_ROWS].astype(np.float64)
        block = block.reshape(len(block), -1)
        n_block = len(block)
        block_mean = block.mean(axis=0)
        block_m2 = ((block - block_mean) ** 2).sum(axis=0)
        if mean is None:
            mean, m2 = block_mean, block_m2
        else:
            delta = block_mean - mean
            total = n_total + n_block
            mean = mean + delta * (n_block / total)
            m2 = m2 + block_m2 + delta**2 * (n_total * n_block / total)
        n_total += n_block
    std = np.sqrt(m2 / n_total)
    return mean, np.where(std > 0, std, 1.0)


def _row_hashes(observations: h5py.Dataset) -> np.ndarray:
    """A 64-bit hash of each Box row's values (-0.0 counted as 0.0), block by block."""
    n_rows = observations.shape[0]
    dim = int(np.prod(observations.shape[1:]))
    multipliers = np.random.default_rng(_HASH_MULTIPLIERS_SEED).integers(
        1, 2**63, size=dim, dtype=np.uint64
    ) * np.uint64(2) + np.uint64(1)
    hashes = np.empty(n_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, n_rows, BLOCK_ROWS):
            block = observations[start : start + BLOCK_ROWS].reshape(-1, dim)
            bits = (block.astype(np.float32) + np.float32(0.0)).view(np.uint32).astype(np.uint64)
            mixed = bits * multipliers  # wraps modulo 2**64, as intended
            hashes[start : start + len(block)] = np.bitwise_xor.reduce(
                mixed ^ (mixed >> np.uint64(29)), axis=1
            )
    return hashes


def _first_row_of_each_row(observations: h5py.Dataset, space: spaces.Space) -> np.ndarray:
    """For each row, the first row holding an identical observation (itself if none).

    Discrete: grouped by value. Box: rows whose hash is unique are unique; the others (the
    only possible duplicates, few in continuous data) are read and grouped by value.
    """
    n_rows = observations.shape[0]
    if isinstance(space, spaces.Discrete):
        values = observations[:]
        _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        return first[inverse.reshape(-1)]
    hashes = _row_hashes(observations)
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(counts[inverse.reshape(-1)] > 1)
    first_row = np.arange(n_rows, dtype=np.int64)
    if len(candidates):
        values = _read_rows(observations, candidates).reshape(len(candidates), -1)
        values = values + np.float32(0.0)  # -0.0 and 0.0 are the same observation
        _, first, group = np.unique(values, axis=0, return_index=True, return_inverse=True)
        # np.unique's first index is the first among the candidates, which are in row order.
        first_row[candidates] = candidates[first[group.reshape(-1)]]
    return first_row


def _representative_actions(
    actions: h5py.Dataset,
    action_space: spaces.Space,
    group: np.ndarray,
    distinct_rows: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """The action each distinct observation stands for (see the module docstring)."""
    n_points = len(distinct_rows)
    if isinstance(action_space, spaces.Box):
        return _read_rows(actions, distinct_rows)
    start_action = int(action_space.start)
    chosen = _read_rows(actions, distinct_rows).astype(np.int64)
    repeated = counts > 1
    if repeated.any():
        # Votes only for the points seen more than once: (points seen twice+) x n actions.
        slot = np.full(n_points, -1, dtype=np.int64)
        slot[repeated] = np.arange(int(repeated.sum()))
        votes = np.zeros(int(repeated.sum()) * int(action_space.n), dtype=np.int64)
        for start in range(0, len(group), BLOCK_ROWS):
            block_groups = group[start : start + BLOCK_ROWS]
            block_slots = slot[block_groups]
            keep = block_slots >= 0
            block_actions = actions[start : start + len(block_groups)][keep] - start_action
            votes += np.bincount(
                block_slots[keep] * int(action_space.n) + block_actions, minlength=len(votes)
            )
        # argmax takes the first maximum: the smallest action among equally common ones.
        chosen[repeated] = votes.reshape(-1, int(action_space.n)).argmax(axis=1) + start_action
    return chosen


def _read_rows(array: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for sorted ``rows``, read block by block (h5py's fancy indexing is
    slow for millions of indices)."""
    parts = []
    for start in range(0, array.shape[0], BLOCK_ROWS):
        inside = rows[(rows >= start) & (rows < start + BLOCK_ROWS)]
        if len(inside):
            parts.append(array[start : start + BLOCK_ROWS][inside - start])
    return np.concatenate(parts) if parts else array[:0]


def build_index(
    dataset_path: str | os.PathLike,
    output_path: str | os.PathLike,
    env_id: str | None = None,
) -> dict[str, Any]:
    """Build the retrieval index of one dataset file and write it atomically to
    ``output_path``; return its attributes.

    The dataset must be a complete dataset file of ``env_id`` (by default the env its file
    name promises, ``results/datasets/{env}.h5``) with the installed Gymnasium's spaces for
    that env, hold at least one transition, and have finite observations; an output named
    ``{env}.h5`` must name the dataset's env (``load_policy`` finds indexes by that name).
    Anything else raises :class:`workflow_scripts.dataset.DatasetError` naming the file.
    """
    start_time = time.perf_counter()
    dataset_path, output_path = Path(dataset_path), Path(output_path)
    # The full check (every value finite, Discrete values inside their space): one extra
    # pass over the file, paid once per index.
    info = check_training_dataset(dataset_path, env_id=env_id, scan=True)
    if info.n_transitions == 0:
        raise DatasetError(dataset_path, "holds no transitions: nothing to index")
    promised = expected_env_id(output_path)
    if promised is not None and promised != info.env_id:
        raise DatasetError(
            dataset_path,
            f"holds {info.env_id!r} but the index would be written as {output_path.name} "
            f"(the index of {promised!r}); name it {info.env_id}{INDEX_SUFFIX}",
        )
    observation_space, action_space = info.observation_space, info.action_space
    with h5py.File(dataset_path, "r") as dataset:
        observations, actions = dataset["observations"], dataset["actions"]
        if isinstance(observation_space, spaces.Box):
            mean, std = _column_statistics(observations)
        else:
            mean = std = None
        first_row = _first_row_of_each_row(observations, observation_space)
        distinct_rows = np.flatnonzero(first_row == np.arange(len(first_row)))
        group = np.searchsorted(distinct_rows, first_row)
        counts = np.bincount(group, minlength=len(distinct_rows)).astype(np.int64)
        chosen_actions = _representative_actions(
            actions, action_space, group, distinct_rows, counts
        )
        attrs = _index_attrs(info, dataset_path, observation_space, len(distinct_rows))
        with atomic_path(output_path, suffix=INDEX_SUFFIX) as tmp:
            with h5py.File(tmp, "w") as index:
                _write_arrays(index, observations, distinct_rows, counts, chosen_actions, mean, std)
                attrs["build_time_s"] = time.perf_counter() - start_time
                for key, value in attrs.items():
                    index.attrs[key] = value
                index.attrs["complete"] = True
    return {**attrs, "complete": True}


def _write_arrays(
    index: h5py.File,
    observations: h5py.Dataset,
    distinct_rows: np.ndarray,
    counts: np.ndarray,
    chosen_actions: np.ndarray,
    mean: np.ndarray | None,
    std: np.ndarray | None,
) -> None:
    stored = index.create_dataset(
        "observations",
        shape=(len(distinct_rows), *observations.shape[1:]),
        dtype=observations.dtype,
    )
    written = 0
    for start in range(0, observations.shape[0], BLOCK_ROWS):
        block = observations[start : start + BLOCK_ROWS]
        inside = distinct_rows[(distinct_rows >= start) & (distinct_rows < start + len(block))]
        if len(inside):
            stored[written : written + len(inside)] = block[inside - start]
            written += len(inside)
    index.create_dataset("actions", data=chosen_actions)
    index.create_dataset("rows", data=distinct_rows.astype(np.int64))
    index.create_dataset("counts", data=counts)
    if mean is not None:
        index.create_dataset("mean", data=mean)
        index.create_dataset("std", data=std)


def _index_attrs(
    info: Any, dataset_path: Path, observation_space: spaces.Space, n_points: int
) -> dict[str, Any]:
    import faiss

    encoding = "one_hot" if isinstance(observation_space, spaces.Discrete) else "standardized"
    commit = code_commit()
    return {
        "kind": INDEX_KIND,
        "format_version": INDEX_FORMAT_VERSION,
        "env_id": info.env_id,
        "observation_space": space_to_json(info.observation_space),
        "action_space": space_to_json(info.action_space),
        "encoding": encoding,
        "metric": "squared Euclidean distance between keys",
        "search": SEARCH_METHOD,
        "library": SEARCH_LIBRARY,
        "library_version": faiss.__version__,
        "n_points": n_points,
        "dataset": str(dataset_path),
        "dataset_n_transitions": info.n_transitions,
        "dataset_attrs_sha256": sha256_json(info.attrs),
        "dataset_expert_mean_return": info.expert_mean_return,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "created_by": "workflow_scripts.build_index",
        "versions": json.dumps(package_versions(SEARCH_LIBRARY)),
        "code_commit": json.dumps(commit),
    }


# ---------------------------------------------------------------------------------------
# Loading and searching


@dataclass
class RetrievalIndex:
    """A loaded index: the faiss search structure, the actions in memory, and the raw
    observations read from the file on demand (the context needs a few rows a step; a
    10M-row Humanoid index would double its memory if they were loaded)."""

    path: Path
    env_id: str
    observation_space: spaces.Space
    action_space: spaces.Space
    actions: np.ndarray
    mean: np.ndarray | None
    std: np.ndarray | None
    attrs: dict[str, Any] = field(repr=False)
    _search: Any = field(repr=False, default=None)
    _file: h5py.File | None = field(repr=False, default=None)

    @property
    def n_points(self) -> int:
        return len(self.actions)

    def keys(self, observation: Any) -> np.ndarray:
        """The search key of one observation, shape (1, key_dim)."""
        return observation_keys(
            np.asarray(observation)[None], self.observation_space, self.mean, self.std
        )

    def search(self, observation: Any, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(squared distances, point ids)`` of the ``k`` points nearest ``observation``
        (at most the index's size), nearest first; equal distances in point order."""
        k = max(1, min(int(k), self.n_points))
        # One query at a time: faiss scans it sequentially and keeps the first of equal
        # distances (batches of 20+ go through a BLAS formula that can round differently).
        distances, ids = self._search.search(self.keys(observation), k)
        distances, ids = distances[0], ids[0].astype(np.int64)
        order = np.lexsort((ids, distances))
        return distances[order], ids[order]

    def nearest(self, observation: Any) -> int:
        """The id of the nearest point (the earliest one among equally near)."""
        return int(self.search(observation, 1)[1][0])

    def action(self, point: int) -> int | np.ndarray:
        """The expert action a point stands for: an int (Discrete) or a float32 array."""
        if isinstance(self.action_space, spaces.Discrete):
            return int(self.actions[point])
        return self.actions[point].reshape(self.action_space.shape).copy()

    def observations(self, points: np.ndarray) -> np.ndarray:
        """The raw observations of ``points`` (distinct ids, in the order given), read from
        the file."""
        points = np.asarray(points, dtype=np.int64)
        stored = self._file["observations"]
        if not len(points):
            return np.empty((0, *stored.shape[1:]), dtype=stored.dtype)
        order = np.argsort(points)
        values = np.empty((len(points), *stored.shape[1:]), dtype=stored.dtype)
        values[order] = stored[points[order]]  # h5py reads increasing indices only
        return values

    def rows(self, points: np.ndarray) -> np.ndarray:
        """The first dataset row of each point (distinct ids, in the order given)."""
        points = np.asarray(points, dtype=np.int64)
        order = np.argsort(points)
        rows = np.empty(len(points), dtype=np.int64)
        if len(points):
            rows[order] = self._file["rows"][points[order]]
        return rows

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RetrievalIndex:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def load_index(path: str | os.PathLike, env_id: str | None = None) -> RetrievalIndex:
    """Open an index file written by :func:`build_index` and fill its search structure.

    Raises :class:`IndexFileError` naming the file for a missing, unreadable, incomplete
    or newer-format file, or one of another env than ``env_id``.
    """
    import faiss

    path = Path(path)
    if not path.is_file():
        raise IndexFileError(
            path,
            "index file does not exist; build it with `python -m workflow_scripts.build_index "
            f"--dataset results/datasets/<env>.h5 --output {path}`",
        )
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise IndexFileError(path, f"cannot be opened as HDF5: {error}") from None
    try:
        attrs = {key: _decode(value) for key, value in handle.attrs.items()}
        if attrs.get("kind") != INDEX_KIND:
            raise IndexFileError(path, "not a retrieval index (no kind attribute of one)")
        if not attrs.get("complete"):
            raise IndexFileError(path, "marked incomplete (its writer did not finish)")
        if int(attrs["format_version"]) > INDEX_FORMAT_VERSION:
            raise IndexFileError(
                path,
                f"index format {attrs['format_version']} is newer than this code reads "
                f"({INDEX_FORMAT_VERSION}); update gym-llm-bench",
            )
        if env_id is not None and attrs["env_id"] != env_id:
            raise IndexFileError(path, f"index of {attrs['env_id']!r}, expected {env_id!r}")
        observation_space = space_from_json(attrs["observation_space"])
        mean = handle["mean"][:] if "mean" in handle else None
        std = handle["std"][:] if "std" in handle else None
        observations = handle["observations"]
        search = faiss.IndexFlatL2(_key_dim(observation_space))
        for start in range(0, observations.shape[0], BLOCK_ROWS):
            block = observations[start : start + BLOCK_ROWS]
            search.add(observation_keys(block, observation_space, mean, std))
        return RetrievalIndex(
            path=path,
            env_id=attrs["env_id"],
            observation_space=observation_space,
            action_space=space_from_json(attrs["action_space"]),
            actions=handle["actions"][:],
            mean=mean,
            std=std,
            attrs=attrs,
            _search=search,
            _file=handle,
        )
    except BaseException:
        handle.close()
        raise


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value
