"""The expert's training curve, drawn one way for its own ``curve.png`` and the plots grid."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from workflow_scripts.experts.monitor import (  # noqa: E402
    SMOOTHING_MIN_EPISODES,
    SMOOTHING_WINDOW,
    read_monitor,
    smoothed_returns,
)
from workflow_scripts.provenance import atomic_path  # noqa: E402

CURVE_COLOR = "tab:blue"
CURVE_LABEL = (
    f"expert training return (mean of last {SMOOTHING_WINDOW} when > "
    f"{SMOOTHING_MIN_EPISODES} episodes)"
)


def draw_training_curve(axis: plt.Axes, episodes: pd.DataFrame) -> bool:
    """Episode return over training timesteps on ``axis``: the paper's smoothed curve over
    the faint raw returns when it smooths (:func:`smoothed_returns`), else the raw returns.

    Returns whether it smoothed.
    """
    smoothed = smoothed_returns(episodes["r"])
    if smoothed is None:
        axis.plot(episodes["timesteps"], episodes["r"], color=CURVE_COLOR, lw=1.2)
        return False
    axis.plot(episodes["timesteps"], episodes["r"], color=CURVE_COLOR, alpha=0.15, lw=0.5)
    axis.plot(
        episodes["timesteps"],
        smoothed,
        color=CURVE_COLOR,
        lw=1.2,
        label=f"mean of last {SMOOTHING_WINDOW}",
    )
    return True


def plot_training_curve(
    monitor_path: str | os.PathLike, output_path: str | os.PathLike, env_id: str, algo: str
) -> None:
    """One expert's curve (``curve.png``) from its episode log, written atomically."""
    episodes = read_monitor(monitor_path)
    figure, axis = plt.subplots(figsize=(6, 4))
    if draw_training_curve(axis, episodes):
        axis.legend(loc="lower right")
    axis.set_title(f"{env_id} ({algo.upper()}), {len(episodes)} episodes")
    axis.set_xlabel("timesteps")
    axis.set_ylabel("episode return")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(output_path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
