"""The rules every trainer's optimisation settings obey, stated once.

Light on purpose (no torch): :func:`workflow_scripts.config.validate_config` applies them
to the config's ``dm`` and ``qwen`` sections at parse time (through ``dm/settings.py`` and
``qwen/settings.py``), and :class:`workflow_scripts.training.TrainingSettings` to a
trainer started by hand. Each problem is one line that starts with the key it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def optimisation_problems(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Warm-up within the run, and a learning-rate floor at or below the peak.

    ``prefix`` names the section in messages (``"dm."``: ``dm.warmup_steps: ...``).
    """
    problems = []
    if values["warmup_steps"] > values["max_steps"]:
        problems.append(
            f"{prefix}warmup_steps: {values['warmup_steps']} exceeds {prefix}max_steps "
            f"{values['max_steps']}"
        )
    if values["min_learning_rate"] > values["learning_rate"]:
        problems.append(
            f"{prefix}min_learning_rate: {values['min_learning_rate']} exceeds "
            f"{prefix}learning_rate {values['learning_rate']}"
        )
    return problems
