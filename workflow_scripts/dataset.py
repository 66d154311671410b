"""The expert dataset file: one HDF5 per environment, flat arrays, one row per transition.

Layout (the contract every later stage reads; README.md, "Dataset files", documents it
for users):

=============== =========================================== ===============================
dataset         shape / dtype                               meaning
=============== =========================================== ===============================
observations    (N, obs_dim) float32, or (N,) int64         o_t, raw (never normalized)
actions         (N, act_dim) float32, or (N,) int64         a_t as the env received it
rewards         (N,) float32                                r_t after a_t
terminated      (N,) bool                                   the step after a_t terminated
truncated       (N,) bool                                   ... or hit the episode cap
=============== =========================================== ===============================

Row t+1 after a done row is the first observation of the next episode (autoreset), so the
observation the env returned at each episode's end is kept apart, one row per done row:

====================== ==================================== ================================
dataset                shape / dtype                        meaning
====================== ==================================== ================================
final_observations     (D, obs_dim) float32, or (D,) int64  o_T, what the step after a done
                                                            row returned (before autoreset)
final_observation_rows (D,) int64                           the done row each belongs to,
                                                            ascending
====================== ==================================== ================================

D is the number of done rows (terminated or truncated), so an episode ending at row t has
``T + 1`` observations: its rows' ``observations`` and then ``final_observations[k]``.
These two arrays are format version 2 (attribute ``format_version``); a file without the
attribute is version 1 and has the flat arrays only. Readers of the flat arrays take both
versions; what needs whole episodes (the Minari export) refuses version 1 with
:func:`require_final_observations`.

The file is written under a temporary name and renamed only once every row and attribute is
in place, and it carries ``complete = True`` as its last attribute, so a killed writer
never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from gymnasium import spaces

from workflow_scripts.spaces import flat_dim, space_from_json, space_to_json

ARRAY_NAMES = ("observations", "actions", "rewards", "terminated", "truncated")
FINAL_ARRAY_NAMES = ("final_observations", "final_observation_rows")
# The layout's version, in the ``format_version`` attribute: 1 = the flat arrays only (files
# without the attribute), 2 = plus FINAL_ARRAY_NAMES. Bump it when the layout changes.
FORMAT_VERSION = 2
REQUIRED_ATTRS = (
    "env_id",
    "observation_space",
    "action_space",
    "n_transitions",
    "n_episodes",
    "expert_mean_return",
    "expert_std_return",
    "seed",
    "complete",
)
# Rows per HDF5 chunk: large enough for fast sequential writes, small enough that a
# training window (a few hundred rows) touches one or two chunks.
CHUNK_ROWS = 4096
# Rows per block when scanning a file for NaN/inf without loading it whole.
SCAN_ROWS = 1 << 18
# The workflow names each env's file results/datasets/{env}.h5 (a Gymnasium id, as in the
# config schema); a file so named must hold that env.
ENV_FILE_NAME = re.compile(r"^(?P<env_id>[A-Za-z0-9_]+-v[0-9]+)\.h5$")


class DatasetError(ValueError):
    """A dataset file is missing, corrupt, incomplete or does not match what was expected."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _array_spec(space: spaces.Space) -> tuple[tuple[int, ...], np.dtype]:
    """Per-row shape and dtype that a space is stored with."""
    if isinstance(space, spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, spaces.Box):
        return (flat_dim(space),), np.dtype(np.float32)
    raise ValueError(f"unsupported space {space!r}")


class DatasetWriter:
    """Stream exactly ``n_transitions`` rows into a new dataset file.

    Use as a context manager: rows go into a temporary file beside ``path``; on a clean
    exit with every row written the file is finalised and renamed to ``path``; on an
    error the temporary file is removed and ``path`` is left as it was.

    With ``with_final_observations`` (what the collector writes: format 2), every write
    also gives the final observation of each of its done rows, in row order; they are
    kept in memory (one per episode) and written, sorted by row, when the file is
    finalised. Without it the file is format 1 (flat arrays only: hand-made test data).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_transitions: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        attrs: dict[str, Any],
        with_final_observations: bool = False,
    ):
        if n_transitions <= 0:
            raise ValueError(f"n_transitions must be positive, got {n_transitions}")
        self.path = Path(path)
        self.n_transitions = int(n_transitions)
        self.observation_space = observation_space
        self.action_space = action_space
        self.attrs = dict(attrs)
        self.with_final_observations = with_final_observations
        self.format_version = FORMAT_VERSION if with_final_observations else 1
        self.n_written = 0
        # (done rows, their final observations) of each write, sorted when finalised.
        self._final_parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._next_row = 0
        self._tmp_path = self.path.with_name(f".{self.path.name}.partial")
        self._file: h5py.File | None = None

    def __enter__(self) -> DatasetWriter:
        from workflow_scripts.disk_plan import check_free_space, row_bytes

        needed = self.n_transitions * row_bytes(self.observation_space, self.action_space)
        check_free_space(self.path.parent, needed, f"{self.path.name} ({self.n_transitions} rows)")
        self._file = h5py.File(self._tmp_path, "w")
        n = self.n_transitions
        chunk = min(CHUNK_ROWS, n)
        obs_shape, obs_dtype = _array_spec(self.observation_space)
        act_shape, act_dtype = _array_spec(self.action_space)
        for name, shape, dtype in (
            ("observations", obs_shape, obs_dtype),
            ("actions", act_shape, act_dtype),
            ("rewards", (), np.dtype(np.float32)),
            ("terminated", (), np.dtype(bool)),
            ("truncated", (), np.dtype(bool)),
        ):
            self._file.create_dataset(
                name, shape=(n, *shape), dtype=dtype, chunks=(chunk, *shape), track_times=False
            )
        self._file.attrs["env_id"] = self.attrs["env_id"]
        self._file.attrs["observation_space"] = space_to_json(self.observation_space)
        self._file.attrs["action_space"] = space_to_json(self.action_space)
        self._file.attrs["n_transitions"] = n
        self._file.attrs["format_version"] = self.format_version
        self._file.attrs["complete"] = False
        return self

    def append(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_observations: np.ndarray | None = None,
    ) -> int:
        """Write the next rows after the last appended ones (cut to what is still missing)."""
        take = min(len(rewards), self.n_transitions - self._next_row)
        if take <= 0:
            return 0
        if final_observations is not None and take < len(rewards):
            # Only the final observations of the done rows that are kept.
            done = np.asarray(terminated[:take], bool) | np.asarray(truncated[:take], bool)
            final_observations = final_observations[: int(done.sum())]
        self.write_at(
            self._next_row,
            observations[:take],
            actions[:take],
            rewards[:take],
            terminated[:take],
            truncated[:take],
            final_observations,
        )
        self._next_row += take
        return take

    def write_at(
        self,
        start: int,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_observations: np.ndarray | None = None,
    ) -> None:
        """Write rows ``start .. start+len(rewards)``; each row must be written exactly once.

        ``final_observations``: one per done row of these rows, in row order (required
        with ``with_final_observations``, refused without).
        """
        assert self._file is not None, "use DatasetWriter as a context manager"
        count = len(rewards)
        stop = start + count
        if start < 0 or stop > self.n_transitions:
            raise IndexError(f"rows {start}..{stop} outside 0..{self.n_transitions}")
        obs_shape, obs_dtype = _array_spec(self.observation_space)
        act_shape, act_dtype = _array_spec(self.action_space)
        if (final_observations is not None) != self.with_final_observations:
            raise ValueError(
                "final observations are required with with_final_observations=True, "
                "and refused without"
            )
        if self.with_final_observations:
            done_rows = start + np.flatnonzero(
                np.asarray(terminated, bool) | np.asarray(truncated, bool)
            )
            finals = np.asarray(final_observations, dtype=obs_dtype)
            finals = finals.reshape(len(finals), *obs_shape)
            if len(finals) != len(done_rows):
                raise ValueError(
                    f"rows {start}..{stop} have {len(done_rows)} done rows but "
                    f"{len(finals)} final observations"
                )
            self._final_parts.append((done_rows.astype(np.int64), finals))
        rows = {
            "observations": np.asarray(observations, dtype=obs_dtype).reshape(count, *obs_shape),
            "actions": np.asarray(actions, dtype=act_dtype).reshape(count, *act_shape),
            "rewards": np.asarray(rewards, dtype=np.float32),
            "terminated": np.asarray(terminated, dtype=bool),
            "truncated": np.asarray(truncated, dtype=bool),
        }
        for name, values in rows.items():
            self._file[name][start:stop] = values
        self.n_written += count

    @property
    def full(self) -> bool:
        return self.n_written == self.n_transitions

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._file is not None
        try:
            if exc_type is None:
                if not self.full:
                    raise RuntimeError(
                        f"{self.path}: {self.n_written} of {self.n_transitions} rows written"
                    )
                if self.with_final_observations:
                    self._write_final_observations()
                for key, value in self.attrs.items():
                    self._file.attrs[key] = _attr_value(value)
                self._file.attrs["complete"] = True
            self._file.close()
            if exc_type is None:
                os.replace(self._tmp_path, self.path)
        finally:
            if self._tmp_path.exists():
                self._tmp_path.unlink()

    def _write_final_observations(self) -> None:
        """``final_observations`` and ``final_observation_rows``, sorted by row."""
        obs_shape, obs_dtype = _array_spec(self.observation_space)
        rows = np.concatenate([part[0] for part in self._final_parts] or [np.empty(0, np.int64)])
        finals = np.concatenate(
            [part[1] for part in self._final_parts] or [np.empty((0, *obs_shape), obs_dtype)]
        )
        order = np.argsort(rows, kind="stable")
        chunk = min(CHUNK_ROWS, len(rows))
        for name, values, shape in (
            ("final_observations", finals[order], obs_shape),
            ("final_observation_rows", rows[order], ()),
        ):
            self._file.create_dataset(
                name, data=values, chunks=(chunk, *shape) if chunk else None, track_times=False
            )


def _attr_value(value: Any) -> Any:
    """HDF5 attributes hold scalars and strings; nested values are stored as JSON text."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if value is None:
        return "null"
    return value


@dataclass
class DatasetInfo:
    """What a valid dataset file declares about itself."""

    path: Path
    env_id: str
    observation_space: spaces.Space
    action_space: spaces.Space
    n_transitions: int
    n_episodes: int
    expert_mean_return: float
    expert_std_return: float
    seed: int
    attrs: dict[str, Any] = field(repr=False)
    format_version: int = 1
    # One per done row (format 2); None in a format-1 file, which has none.
    n_final_observations: int | None = None

    @property
    def has_final_observations(self) -> bool:
        """Whether every episode's last observation is stored (format 2 and later)."""
        return self.n_final_observations is not None


def read_info(path: str | os.PathLike, env_id: str | None = None) -> DatasetInfo:
    """Open a dataset, check its structure and attributes, and return what it declares.

    Cheap (no scan of the values). Raises :class:`DatasetError` naming the file and the
    problem for a missing, truncated, incomplete or mismatched file.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "file does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(
            path, f"cannot be opened as HDF5 (truncated or corrupt?): {error}"
        ) from None
    with handle:
        attrs = {key: _decode_attr(value) for key, value in handle.attrs.items()}
        missing = [name for name in ARRAY_NAMES if name not in handle]
        if missing:
            raise DatasetError(path, f"missing dataset(s) {', '.join(missing)}")
        missing_attrs = [name for name in REQUIRED_ATTRS if name not in attrs]
        if missing_attrs:
            raise DatasetError(path, f"missing attribute(s) {', '.join(missing_attrs)}")
        if not attrs["complete"]:
            raise DatasetError(path, "marked incomplete (its writer did not finish)")
        format_version = int(attrs.get("format_version", 1))
        if format_version > FORMAT_VERSION:
            raise DatasetError(
                path,
                f"dataset format {format_version} is newer than this code reads "
                f"({FORMAT_VERSION}); update gym-llm-bench",
            )
        if env_id is not None and attrs["env_id"] != env_id:
            raise DatasetError(path, f"holds env {attrs['env_id']!r}, expected {env_id!r}")
        try:
            observation_space = space_from_json(attrs["observation_space"])
            action_space = space_from_json(attrs["action_space"])
        except (ValueError, KeyError, TypeError) as error:
            raise DatasetError(path, f"unreadable space attribute: {error}") from None
        n = int(attrs["n_transitions"])
        for name, space in (("observations", observation_space), ("actions", action_space)):
            shape, dtype = _array_spec(space)
            if handle[name].shape != (n, *shape):
                raise DatasetError(
                    path,
                    f"{name} has shape {handle[name].shape}, expected {(n, *shape)} from its space",
                )
            if handle[name].dtype != dtype:
                raise DatasetError(path, f"{name} has dtype {handle[name].dtype}, expected {dtype}")
        for name in ("rewards", "terminated", "truncated"):
            if handle[name].shape != (n,):
                raise DatasetError(path, f"{name} has shape {handle[name].shape}, expected {(n,)}")
        n_final = (
            _check_final_arrays(path, handle, observation_space) if format_version > 1 else None
        )
    return DatasetInfo(
        path=path,
        env_id=attrs["env_id"],
        observation_space=observation_space,
        action_space=action_space,
        n_transitions=n,
        n_episodes=int(attrs["n_episodes"]),
        expert_mean_return=float(attrs["expert_mean_return"]),
        expert_std_return=float(attrs["expert_std_return"]),
        seed=int(attrs["seed"]),
        attrs=attrs,
        format_version=format_version,
        n_final_observations=n_final,
    )


def _check_final_arrays(path: Path, handle: h5py.File, observation_space: spaces.Space) -> int:
    """Shapes and dtypes of a format-2 file's final-observation arrays; their row count."""
    missing = [name for name in FINAL_ARRAY_NAMES if name not in handle]
    if missing:
        raise DatasetError(path, f"format 2 but missing dataset(s) {', '.join(missing)}")
    n_final = handle["final_observation_rows"].shape[0]
    shape, dtype = _array_spec(observation_space)
    for name, expected_shape, expected_dtype in (
        ("final_observations", (n_final, *shape), dtype),
        ("final_observation_rows", (n_final,), np.dtype(np.int64)),
    ):
        if handle[name].shape != expected_shape:
            raise DatasetError(
                path, f"{name} has shape {handle[name].shape}, expected {expected_shape}"
            )
        if handle[name].dtype != expected_dtype:
            raise DatasetError(
                path, f"{name} has dtype {handle[name].dtype}, expected {expected_dtype}"
            )
    return n_final


def rebuild_hint(path: str | os.PathLike) -> str:
    """How to rebuild a dataset file with the current collector."""
    env_id = expected_env_id(path) or "<env>"
    return (
        "rebuild it with the current collector: "
        f"`snakemake --force results/datasets/{env_id}.h5` (with the run's --configfile "
        "and --profile), or `python -m workflow_scripts.rollout ...` by hand"
    )


def require_final_observations(info: DatasetInfo) -> DatasetInfo:
    """``info`` if its file stores every episode's final observation, else a
    :class:`DatasetError` naming the file and how to rebuild it."""
    if not info.has_final_observations:
        raise DatasetError(
            info.path,
            f"dataset format {info.format_version} has no final observations (an episode's "
            f"last observation is not stored; format {FORMAT_VERSION} stores it); "
            + rebuild_hint(info.path),
        )
    return info


def validate_dataset(
    path: str | os.PathLike,
    env_id: str | None = None,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
) -> DatasetInfo:
    """Full check of a dataset: structure (:func:`read_info`), expected spaces, and values.

    Scans every row in blocks (never the whole file at once) for NaN/inf and for discrete
    values outside their space; in a format-2 file, also that there is one final
    observation per done row (``final_observation_rows`` are exactly the done rows) and
    that each is finite and, if discrete, inside the observation space. Box bounds are not
    checked, for rows or final observations alike: several envs declare bounds that their
    observations leave (terminal states most of all). Raises :class:`DatasetError` naming
    the file and problem.
    """
    info = read_info(path, env_id=env_id)
    for name, expected, actual in (
        ("observation", observation_space, info.observation_space),
        ("action", action_space, info.action_space),
    ):
        if expected is not None and space_to_json(expected) != space_to_json(actual):
            raise DatasetError(path, f"{name} space {actual} differs from the expected {expected}")
    spaces_of = {"observations": info.observation_space, "actions": info.action_space}
    with h5py.File(info.path, "r") as handle:
        n_done = 0
        for start in range(0, info.n_transitions, SCAN_ROWS):
            stop = min(start + SCAN_ROWS, info.n_transitions)
            for name in ("observations", "actions", "rewards"):
                _check_values(path, name, handle[name][start:stop], start, spaces_of.get(name))
            if info.has_final_observations:
                done = handle["terminated"][start:stop] | handle["truncated"][start:stop]
                done_rows = start + np.flatnonzero(done)
                stored = handle["final_observation_rows"][n_done : n_done + len(done_rows)]
                if len(stored) != len(done_rows) or (stored != done_rows).any():
                    raise DatasetError(
                        path,
                        f"final_observation_rows are not the done rows of rows {start}..{stop}",
                    )
                n_done += len(done_rows)
        if info.has_final_observations:
            if n_done != info.n_final_observations:
                raise DatasetError(
                    path,
                    f"{info.n_final_observations} final observations for {n_done} done rows",
                )
            for start in range(0, n_done, SCAN_ROWS):
                block = handle["final_observations"][start : start + SCAN_ROWS]
                _check_values(path, "final_observations", block, start, info.observation_space)
    return info


def _check_values(
    path: str | os.PathLike,
    name: str,
    block: np.ndarray,
    start: int,
    space: spaces.Space | None,
) -> None:
    """NaN/inf in a float block, or a value outside a Discrete ``space``: DatasetError."""
    if block.dtype.kind == "f":
        bad = ~np.isfinite(block)
        if bad.any():
            row = start + int(np.argwhere(bad)[0][0])
            raise DatasetError(path, f"{name} has a non-finite value (NaN/inf) at row {row}")
    if isinstance(space, spaces.Discrete):
        outside = (block < space.start) | (block >= space.start + space.n)
        if outside.any():
            row = start + int(np.argwhere(outside)[0][0])
            raise DatasetError(
                path, f"{name} row {row} holds {block[row - start]}, outside {space}"
            )


def expected_env_id(path: str | os.PathLike) -> str | None:
    """The env id a file's name promises (``results/datasets/{env}.h5``), or None."""
    match = ENV_FILE_NAME.match(Path(path).name)
    return match.group("env_id") if match else None


def check_training_dataset(
    path: str | os.PathLike,
    env_id: str | None = None,
    scan: bool = True,
    unregistered_ok: bool = False,
) -> DatasetInfo:
    """What a training stage checks of one input before its first step.

    The file is whole and complete (:func:`read_info`); it holds ``env_id`` (by default the
    env its file name promises); its spaces are the ones the installed Gymnasium builds for
    that env (a file from another env version or space is refused); and, with ``scan``,
    every value is finite and inside its space (:func:`validate_dataset`). Raises
    :class:`DatasetError` naming the file and the problem; never changes the file.
    ``unregistered_ok`` skips the space check for an env Gymnasium does not register
    (hand-made files), instead of refusing the file.
    """
    from workflow_scripts.envs import UnknownEnvError, make_env

    info = read_info(path, env_id=env_id or expected_env_id(path))
    try:
        env = make_env(info.env_id)
    except UnknownEnvError as error:
        if not unregistered_ok:
            raise DatasetError(path, str(error)) from None
        return validate_dataset(path) if scan else info
    observation_space, action_space = env.observation_space, env.action_space
    env.close()
    for name, expected, actual in (
        ("observation", observation_space, info.observation_space),
        ("action", action_space, info.action_space),
    ):
        if space_to_json(expected) != space_to_json(actual):
            raise DatasetError(
                path,
                f"{name} space {actual} is not {info.env_id}'s {expected} (made with another "
                "env version or space?)",
            )
    if scan:
        validate_dataset(path)
    return info


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def json_attr(info: DatasetInfo, key: str) -> Any:
    """An attribute stored as JSON text (e.g. ``versions``), decoded."""
    return json.loads(info.attrs[key])
