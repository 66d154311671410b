"""The expert's episode log (``monitor.csv``) and the paper's rule for smoothing it.

The log is an SB3 Monitor log: a ``#{json}`` first line, then one row per finished
episode with columns ``r`` (return), ``l`` (length) and ``t`` (wall seconds). The expert
stage adds ``timesteps``, the global step count when the episode ended, right across
vectorized envs and resumes. A plain Monitor log without it gets it as the running sum of
episode lengths in wall-time order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

MONITOR_COLUMNS = ("r", "l", "t", "timesteps")
REQUIRED_COLUMNS = ("r", "l", "t")

# The paper's appendix smooths expert curves over the last 50 episodes when training ran
# more than 500 episodes.
SMOOTHING_WINDOW = 50
SMOOTHING_MIN_EPISODES = 500


def monitor_header(env_id: str, algo: str, seed: int) -> str:
    """The first two lines of the expert stage's log: its ``#{json}`` line and the columns."""
    described = json.dumps({"env_id": env_id, "algo": algo, "seed": seed})
    return "#" + described + "\n" + ",".join(MONITOR_COLUMNS) + "\n"


def monitor_row(episode: Mapping[str, Any], timesteps: int) -> str:
    """One finished episode (SB3's ``info["episode"]``) as a line of the log."""
    return f"{episode['r']:.6g},{episode['l']},{episode['t']:.6g},{timesteps}\n"


def read_monitor_header(path: str | os.PathLike) -> dict[str, Any]:
    """The ``#{json}`` first line of a Monitor log, parsed; ValueError naming the file if
    it is missing or not JSON."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: expert monitor log does not exist")
    with path.open() as handle:
        first_line = handle.readline()
    if not first_line.startswith("#"):
        raise ValueError(f"{path}: not an SB3 Monitor log (no '#{{...}}' first line)")
    try:
        header = json.loads(first_line[1:])
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: first line is not '#' and a JSON object ({error})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: first line is not '#' and a JSON object")
    return header


def read_monitor(path: str | os.PathLike) -> pd.DataFrame:
    """A Monitor log in training order, with column ``timesteps`` (see the module docstring).

    Raises FileNotFoundError or ValueError naming the file when it is missing, lacks the
    header or a column, or has a row that is cut short or not numbers (a truncated file).
    """
    path = Path(path)
    read_monitor_header(path)
    try:
        episodes = pd.read_csv(path, skiprows=1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path}: malformed Monitor log ({error})") from None
    missing = set(REQUIRED_COLUMNS) - set(episodes.columns)
    if missing:
        raise ValueError(f"{path}: Monitor log lacks column(s) {', '.join(sorted(missing))}")
    columns = [column for column in MONITOR_COLUMNS if column in episodes.columns]
    for column in columns:
        # A log of no episodes has untyped (object) columns; it is valid.
        if len(episodes) and not pd.api.types.is_numeric_dtype(episodes[column]):
            raise ValueError(f"{path}: column {column!r} holds values that are not numbers")
    incomplete = episodes[columns].isna().any(axis=1)
    if incomplete.any():
        line = int(incomplete.to_numpy().argmax()) + 3  # header line, column names, 1-based
        raise ValueError(f"{path}: line {line} is incomplete (a truncated log?)")
    if "timesteps" not in episodes.columns:
        episodes = episodes.sort_values("t", kind="stable").reset_index(drop=True)
        episodes["timesteps"] = episodes["l"].cumsum()
    return episodes


def smoothed_returns(returns: pd.Series) -> pd.Series | None:
    """The paper's smoothed curve of episode returns: the mean of the last
    :data:`SMOOTHING_WINDOW` episodes at each episode, or None for trainings of at most
    :data:`SMOOTHING_MIN_EPISODES` episodes (drawn unsmoothed)."""
    if len(returns) <= SMOOTHING_MIN_EPISODES:
        return None
    return returns.rolling(SMOOTHING_WINDOW, min_periods=1).mean()


def recent_mean_return(returns: pd.Series) -> float | None:
    """Mean return of the last :data:`SMOOTHING_WINDOW` episodes (None without episodes)."""
    return float(returns.tail(SMOOTHING_WINDOW).mean()) if len(returns) else None
