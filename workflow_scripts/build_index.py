"""Build one env's retrieval index from its expert dataset (:mod:`workflow_scripts.retrieval.index`).

    python -m workflow_scripts.build_index --dataset results/datasets/CartPole-v1.h5 \\
        --output results/retrieval/CartPole-v1.h5

The index is written under a temporary name and moved into place when complete. A file
that is not a complete dataset, holds another env than its name (or ``--env``) promises,
has no transitions, or would be written under another env's name is refused with an error
naming it, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from workflow_scripts.dataset import DatasetError
from workflow_scripts.retrieval.index import build_index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", required=True, help="expert dataset, results/datasets/{env}.h5"
    )
    parser.add_argument(
        "--output", required=True, help="index to write, results/retrieval/{env}.h5"
    )
    parser.add_argument(
        "--env", default=None, help="expected env id (default: the one the dataset's name promises)"
    )
    args = parser.parse_args(argv)
    try:
        attrs = build_index(args.dataset, args.output, env_id=args.env)
    except DatasetError as error:
        print(f"build_index: {error}", file=sys.stderr)
        return 1
    print(
        f"{attrs['env_id']}: {attrs['n_points']} distinct observations of "
        f"{attrs['dataset_n_transitions']} transitions ({attrs['encoding']} keys, "
        f"{attrs['library']} {attrs['library_version']}) in {attrs['build_time_s']:.1f} s "
        f"-> {args.output}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
