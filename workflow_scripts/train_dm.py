"""Train the Decision Model (DM-0.012B) on every env's expert dataset; resumes when rerun.

The ``train_dm`` rule runs ``python -m workflow_scripts.launch workflow_scripts.train_dm
--datasets results/datasets/A.h5 B.h5 ... --output results/models/dm/final
--checkpoint-dir results/models/dm/checkpoints ...`` with every value from ``config["dm"]``
(:func:`workflow_scripts.dm.settings.flags_from_config`); by hand, the same flags work
without Snakemake (and under torchrun). ``--help`` lists them.
"""

from __future__ import annotations

from workflow_scripts.dm.train import NAME, TrainSettings, train
from workflow_scripts.training import training_main


def main(argv: list[str] | None = None) -> None:
    training_main(NAME, TrainSettings, train, __doc__, argv)


if __name__ == "__main__":
    main()
