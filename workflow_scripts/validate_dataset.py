"""Check expert dataset files by hand: ``python -m workflow_scripts.validate_dataset FILE...``.

Runs the same full check training runs before its first step (structure, attributes,
the env its name promises, that env's spaces, every value finite, discrete values inside
their space; in a format-2 file, one final observation per done row, each valid too) and
prints what each file declares. Exits 1 if any file is invalid, naming the file and the
problem. A format-1 file (no final observations) is valid for training and is reported
with a note: the Minari export refuses it.
"""

from __future__ import annotations

import argparse
import sys

from workflow_scripts.dataset import DatasetError, DatasetInfo, check_training_dataset, rebuild_hint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate expert dataset HDF5 files.")
    parser.add_argument("files", nargs="+", help="dataset files (results/datasets/*.h5)")
    parser.add_argument("--env", default=None, help="expected env id (for a single file)")
    args = parser.parse_args(argv)
    failures = 0
    for path in args.files:
        try:
            info = check_training_dataset(path, env_id=args.env, unregistered_ok=True)
        except DatasetError as error:
            print(f"INVALID {error}", file=sys.stderr)
            failures += 1
            continue
        print(
            f"OK {path}: {info.env_id}, {info.n_transitions} transitions, {info.n_episodes} complete "
            f"episodes, expert return {info.expert_mean_return:.4g} ± {info.expert_std_return:.4g}, "
            f"observations {info.observation_space}, actions {info.action_space}, seed {info.seed}; "
            + final_observations_note(info)
        )
    return 1 if failures else 0


def final_observations_note(info: DatasetInfo) -> str:
    """What the file says of its episodes' last observations."""
    if info.has_final_observations:
        return (
            f"format {info.format_version}: {info.n_final_observations} final observations, one "
            "per done row (every episode has T+1 observations)"
        )
    return (
        f"format {info.format_version}: NOTE no final observations (episodes lack their last "
        f"observation; the Minari export refuses this file): {rebuild_hint(info.path)}"
    )


if __name__ == "__main__":
    sys.exit(main())
