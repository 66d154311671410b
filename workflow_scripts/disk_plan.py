"""Disk space the expert datasets need, known before any job runs.

``python -m workflow_scripts.disk_plan --configfile config.yaml`` prints, per env, the
bytes of its HDF5 file (rows × bytes per row, from the env's spaces) and the total, so a
full-paper run does not discover a full disk halfway. The rollout stage makes the same
check against the free space of its output folder before writing a row.

What it leaves out: dataset format 2's per-episode arrays, ``final_observations`` and
``final_observation_rows`` (one observation plus 8 bytes per episode end, see
:mod:`workflow_scripts.dataset`). Their size depends on the number of episodes, which is
not known before collection, and the only bound known in advance (every row ending an
episode) would count the observations twice. The estimate is low by that term: small
where episodes are long (CartPole's 500-step expert episodes: 24 bytes per episode
against 30 per row), larger where they are short (FrozenLake: 16 bytes per episode
against 22 per row). HDF5's own metadata is left out too.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from gymnasium import spaces

from workflow_scripts.spaces import flat_dim

# rewards (float32) + terminated + truncated (bool) per row
FLAG_AND_REWARD_BYTES = 4 + 1 + 1


def row_bytes(observation_space: spaces.Space, action_space: spaces.Space) -> int:
    """Bytes one transition takes in a dataset file's per-row arrays (int64 for Discrete,
    float32 for Box); the per-episode final observations of format 2 are not counted (see
    the module docstring)."""

    def value_bytes(space: spaces.Space) -> int:
        return 8 if isinstance(space, spaces.Discrete) else 4 * flat_dim(space)

    return value_bytes(observation_space) + value_bytes(action_space) + FLAG_AND_REWARD_BYTES


def dataset_bytes(env_id: str, n_transitions: int) -> int:
    """Size of an env's dataset file's per-row arrays: not counting format 2's per-episode
    final observations nor HDF5's small metadata (see the module docstring)."""
    from workflow_scripts.envs import make_env

    env = make_env(env_id)
    size = n_transitions * row_bytes(env.observation_space, env.action_space)
    env.close()
    return size


def check_free_space(folder: str | Path, needed_bytes: int, what: str) -> None:
    """Raise OSError naming ``what`` when ``folder``'s disk has less than ``needed_bytes`` free."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise OSError(
            f"{what} needs {needed_bytes / 1e9:.2f} GB but {folder} has {free / 1e9:.2f} GB free; "
            "free some space or point results/ at a larger disk"
        )


def missing_datasets_message(env_ids: list[str], n_transitions: int, folder: str | Path) -> str:
    """One line for the start of a run: what the datasets not yet collected need, and the
    free space of their folder (with a warning when it is not enough)."""
    folder = Path(folder)
    missing = [env for env in env_ids if not (folder / f"{env}.h5").exists()]
    if not missing:
        return f"disk plan: every dataset in {folder} exists"
    needed = sum(dataset_bytes(env, n_transitions) for env in missing)
    probe = next((parent for parent in (folder, *folder.parents) if parent.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    line = (
        f"disk plan: {len(missing)} dataset(s) still to collect into {folder} need "
        f"{needed / 1e9:.2f} GB; {free / 1e9:.2f} GB free"
    )
    if free < needed:
        line = "WARNING " + line + " - NOT ENOUGH: rollouts will refuse to start"
    return line


def main(argv: list[str] | None = None) -> None:
    from workflow_scripts.config import load_config

    parser = argparse.ArgumentParser(description="Disk space the configured datasets need.")
    parser.add_argument(
        "--configfile",
        nargs="+",
        default=["config.yaml"],
        help="config file(s), later overlay earlier",
    )
    parser.add_argument(
        "--results", default="results", help="where results go (checked for free space)"
    )
    args = parser.parse_args(argv)
    config = load_config(*args.configfile)
    n_transitions = config["dataset"]["n_transitions"]
    total = 0
    print(f"{'env':<28}{'GB':>10}")
    for env_id in config["envs"]:
        size = dataset_bytes(env_id, n_transitions)
        total += size
        print(f"{env_id:<28}{size / 1e9:>10.2f}")
    print(f"{'total datasets':<28}{total / 1e9:>10.2f}")
    Path(args.results).mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.results).free
    verdict = "enough" if free >= total else "NOT ENOUGH"
    print(f"free on {args.results}: {free / 1e9:.2f} GB ({verdict} for the datasets)")


if __name__ == "__main__":
    main()
