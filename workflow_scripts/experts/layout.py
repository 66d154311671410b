"""Where one env's expert lives: rl-zoo3's file names inside one folder per env.

The training stage writes these files, the rules declare them and the other stages are
given them; this module is the only place that spells their names. Imports nothing heavy
(rule files use it at parse time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

EXPERTS_DIR = Path("results/experts")


@dataclass(frozen=True)
class ExpertFiles:
    """The files of one env's expert inside ``folder``.

    ``ExpertFiles.of("{env}")`` gives the rules' path patterns, wildcard included.
    """

    folder: Path
    env_id: str

    @classmethod
    def of(cls, env_id: str, experts_dir: str | os.PathLike = EXPERTS_DIR) -> ExpertFiles:
        """The expert of ``env_id`` in its folder under ``experts_dir``."""
        return cls(Path(experts_dir) / env_id, env_id)

    @property
    def model(self) -> Path:
        """The final model; loads with plain ``ALGO.load()``."""
        return self.folder / f"{self.env_id}.zip"

    @property
    def vecnormalize(self) -> Path:
        """Observation/reward normalization statistics, when the hyperparameters ask for them."""
        return self.folder / "vecnormalize.pkl"

    @property
    def config(self) -> Path:
        """The hyperparameters the expert was trained with (a copy of its ``hyperparams`` file)."""
        return self.folder / "config.yml"

    @property
    def summary(self) -> Path:
        """``expert.json``: provenance, the deterministic check and the quality verdict."""
        return self.folder / "expert.json"

    @property
    def monitor(self) -> Path:
        """One row per finished training episode (:mod:`workflow_scripts.experts.monitor`)."""
        return self.folder / "monitor.csv"

    @property
    def live_monitor(self) -> Path:
        """The episode log while training runs, published as :attr:`monitor` at its end."""
        return self.folder / ".monitor.csv.partial"

    @property
    def curve(self) -> Path:
        """Episode return vs timesteps."""
        return self.folder / "curve.png"

    @property
    def checkpoints(self) -> Path:
        """Resumable training state (not a rule output: it outlives a failed job)."""
        return self.folder / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        """SB3's tensorboard logs."""
        return self.folder / "tensorboard"
