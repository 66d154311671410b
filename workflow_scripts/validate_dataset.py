"""Check expert dataset files by hand: ``python -m workflow_scripts.validate_dataset FILE...``.

Runs the same full check training runs before its first step (structure, attributes,
the env its name promises, that env's spaces, every value finite, discrete values inside
their space) and prints what each file declares. Exits 1 if any file is invalid, naming
the file and the problem.
"""

from __future__ import annotations

import argparse
import sys

from workflow_scripts.dataset import DatasetError, check_training_dataset


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
            f"observations {info.observation_space}, actions {info.action_space}, seed {info.seed}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
