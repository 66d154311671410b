"""Each env's file among a stage's inputs, found by the env id the file itself declares.

Stages that take one file per env (baselines, datasets, expert summaries, monitor logs)
are given the files, in any order, and never rebuild a path from an env id: the per-env
path layout stays in the rules alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from workflow_scripts.dataset import read_info


def files_by_env(
    paths: Sequence[str | os.PathLike],
    envs: Sequence[str],
    env_of: Callable[[Path], str | None],
    kind: str,
) -> dict[str, Path]:
    """Each env's file among ``paths``, by the env id the file itself declares (``env_of``).

    ValueError naming the files when two declare the same env or an env has none.
    """
    found: dict[str, Path] = {}
    for path in map(Path, paths):
        env_id = env_of(path)
        if env_id in found:
            raise ValueError(f"{path} and {found[env_id]}: two {kind} files of {env_id}")
        found[env_id] = path
    missing = [env_id for env_id in envs if env_id not in found]
    if missing:
        raise ValueError(
            f"no {kind} file of {', '.join(missing)} among the {len(paths)} given "
            "(by the env id each file declares)"
        )
    return found


def json_env(path: Path) -> str | None:
    """The ``env_id`` of a JSON document (a baseline or an expert's ``expert.json``)."""
    return json.loads(path.read_text()).get("env_id")


def dataset_env(path: Path) -> str:
    """The env id an HDF5 dataset declares (checked by :func:`workflow_scripts.dataset.read_info`)."""
    return read_info(path).env_id
