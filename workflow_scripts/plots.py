"""Figures of the results: per-env normalized scores against the paper, expert curves.

- ``normalized_scores.png``: one panel per env; per model a bar at the mean normalized
  score over seeds, one dot per seed (the spread), and a black dash at the paper's value;
  dotted lines at 0% (random) and 100% (expert); a star over the significantly better
  model (Welch p < 0.05, as in the table).
- ``expert_curves.png``: one panel per env; the expert's episode returns over training
  timesteps from its episode log (smoothed as the paper's appendix does:
  :func:`workflow_scripts.experts.monitor.smoothed_returns`), with the random baseline and
  the dataset's expert score as dashed lines (the 0% and 100% of the normalized scale).

Each file says which env (and model and seed) it holds; the stage is given the files and
finds each env's among them.

CLI::

    python -m workflow_scripts.plots --records results/eval/*/*/seed*.json \\
        --monitors results/experts/*/monitor.csv --baselines results/baselines/*.json \\
        --datasets results/datasets/*.h5 --models dm qwen \\
        --envs CartPole-v1 Pendulum-v1 --seeds 0 1 2 --display-name dm=DM-0.012B \\
        --scores-png results/plots/normalized_scores.png \\
        --curves-png results/plots/expert_curves.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402

from workflow_scripts.aggregate import (  # noqa: E402
    PAPER_MODELS,
    TableProtocol,
    add_evaluation_arguments,
    compare_models,
    compared_pair,
    order_models,
    parse_display_names,
    protocol_from_arguments,
    read_paper_results,
)
from workflow_scripts.dataset import read_info  # noqa: E402
from workflow_scripts.env_files import dataset_env, files_by_env, json_env  # noqa: E402
from workflow_scripts.experts.curves import CURVE_COLOR, CURVE_LABEL, draw_training_curve  # noqa: E402
from workflow_scripts.experts.monitor import read_monitor, read_monitor_header  # noqa: E402
from workflow_scripts.provenance import atomic_path  # noqa: E402

PANEL_COLUMNS = 5
MODEL_COLORS = {"qwen": "tab:orange", "dm": "tab:blue"}


def _grid(n_panels: int, panel_size: tuple[float, float]) -> tuple[plt.Figure, list[plt.Axes]]:
    n_columns = min(PANEL_COLUMNS, n_panels)
    n_rows = math.ceil(n_panels / n_columns)
    figure, axes = plt.subplots(
        n_rows,
        n_columns,
        figsize=(panel_size[0] * n_columns, panel_size[1] * n_rows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    axes = list(axes.ravel())
    for unused in axes[n_panels:]:
        unused.set_visible(False)
    return figure, axes[:n_panels]


def _first_column(axes: list[plt.Axes]) -> list[plt.Axes]:
    return axes[:: min(PANEL_COLUMNS, len(axes))]


def _save(figure: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        # Tight: nothing (legend, long titles) is cut at the figure's edge.
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def plot_normalized_scores(
    records: Sequence[str | os.PathLike],
    models: Sequence[str],
    envs: Sequence[str],
    protocol: TableProtocol,
    output_path: str | os.PathLike,
    display_names: dict[str, str] | None = None,
) -> None:
    """Per-env panels of each model's per-seed normalized scores, mean and paper value."""
    models = order_models(models)
    names = {model: (display_names or {}).get(model, model) for model in models}
    colors = {model: MODEL_COLORS.get(model, f"C{i + 2}") for i, model in enumerate(models)}
    scores = protocol.load(records, models, envs)
    paper = read_paper_results()
    rng = np.random.default_rng(0)  # dot jitter only
    figure, axes = _grid(len(envs), panel_size=(2.6, 2.3))
    for axis, env_id in zip(axes, envs, strict=True):
        title, better = env_id, None
        comparison = compare_models(scores, models, env_id)
        if comparison is not None:
            better = comparison.better
            if not math.isnan(comparison.p_value):
                title += f"\nWelch p = {comparison.p_value:.2g}"
        for position, model in enumerate(models):
            values = np.asarray(scores[model, env_id].scores)
            axis.bar(
                position,
                values.mean(),
                width=0.6,
                color=colors[model],
                alpha=0.3,
                edgecolor=colors[model],
                linewidth=1.5,
            )
            jitter = rng.uniform(-0.15, 0.15, size=len(values))
            axis.scatter(position + jitter, values, s=12, color=colors[model], zorder=3)
            if model in PAPER_MODELS and env_id in paper.index:
                paper_value = paper.loc[env_id, PAPER_MODELS[model][0]]
                axis.hlines(
                    paper_value, position - 0.4, position + 0.4, color="black", lw=1.5, ls="--"
                )
        for level in (0, 100):
            axis.axhline(level, color="gray", lw=0.8, ls=":")
        axis.set_title(title, fontsize=8.5)
        tick_labels = []
        for model in models:
            # Failed rollouts all sit at 0% and hide behind each other: say how many.
            n_failed = len(scores[model, env_id].failures)
            # Wrapped: long display names of neighbouring bars would run into each other.
            label = textwrap.fill(names[model], 16)
            tick_labels.append(label + (f"\n{n_failed} invalid output" if n_failed else ""))
        axis.set_xticks(range(len(models)), tick_labels, fontsize=7)
        for label, model in zip(axis.get_xticklabels(), models, strict=True):
            if model == better:
                label.set_fontweight("bold")
        axis.set_xlim(-0.6, len(models) - 0.4)
        axis.tick_params(axis="y", labelsize=7)
    for axis in _first_column(axes):
        axis.set_ylabel("normalized score (%)", fontsize=8)
    handles = [
        plt.Rectangle((0, 0), 1, 1, facecolor=colors[m], alpha=0.5, edgecolor=colors[m])
        for m in models
    ]
    labels = [f"{names[model]}: mean (bar), one dot per seed" for model in models]
    handles.append(plt.Line2D([], [], color="black", lw=1.5, ls="--"))
    labels.append("paper (Kulak 2026)")
    # One row when the grid is wide enough for it, else one entry per line.
    n_legend_columns = len(labels) if len(axes) >= PANEL_COLUMNS else 1
    figure.legend(handles, labels, loc="outside lower center", ncol=n_legend_columns, fontsize=8)
    n_seeds = len(next(iter(scores.values())).seeds)
    heading = f"Normalized score per env over {n_seeds} episodes (0% random, 100% expert)"
    if compared_pair(models) is not None:
        heading += "; bold label: better model, Welch p < 0.05"
    figure.suptitle(heading, fontsize=10)
    _save(figure, output_path)


def _monitor_env(path: Path) -> str | None:
    return read_monitor_header(path).get("env_id")


def plot_expert_curves(
    envs: Sequence[str],
    monitors: Sequence[str | os.PathLike],
    baselines: Sequence[str | os.PathLike],
    datasets: Sequence[str | os.PathLike],
    output_path: str | os.PathLike,
) -> None:
    """All envs' expert training curves on one grid, with the random and expert levels.

    ``monitors``, ``baselines`` and ``datasets`` hold one file per env, in any order.
    """
    monitor_of = files_by_env(monitors, envs, _monitor_env, "expert monitor log")
    baseline_of = files_by_env(baselines, envs, json_env, "baseline")
    dataset_of = files_by_env(datasets, envs, dataset_env, "dataset")
    figure, axes = _grid(len(envs), panel_size=(3.0, 2.3))
    for axis, env_id in zip(axes, envs, strict=True):
        episodes = read_monitor(monitor_of[env_id])
        baseline = json.loads(baseline_of[env_id].read_text())
        expert_score = read_info(dataset_of[env_id], env_id).expert_mean_return
        draw_training_curve(axis, episodes)
        axis.axhline(baseline["mean_return"], color="tab:red", ls="--", lw=0.9)
        axis.axhline(expert_score, color="tab:green", ls="--", lw=0.9)
        axis.set_title(f"{env_id}\n{len(episodes)} training episodes", fontsize=8.5)
        axis.tick_params(labelsize=7)
        # 200k, 1M: readable without an offset exponent, and few enough not to collide.
        axis.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
        axis.xaxis.set_major_locator(ticker.MaxNLocator(4))
    for axis in axes[-min(PANEL_COLUMNS, len(envs)) :]:
        axis.set_xlabel("training timesteps", fontsize=8)
    for axis in _first_column(axes):
        axis.set_ylabel("episode return", fontsize=8)
    handles = [
        plt.Line2D([], [], color=CURVE_COLOR, lw=1.2),
        plt.Line2D([], [], color="tab:red", ls="--"),
        plt.Line2D([], [], color="tab:green", ls="--"),
    ]
    labels = [
        CURVE_LABEL,
        "random policy (0%)",
        "expert dataset score (100%)",
    ]
    figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    figure.suptitle("Expert training curves", fontsize=10)
    _save(figure, output_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_evaluation_arguments(parser)
    parser.add_argument(
        "--monitors", nargs="+", required=True, help="results/experts/{env}/monitor.csv, per env"
    )
    parser.add_argument(
        "--baselines", nargs="+", required=True, help="results/baselines/{env}.json, per env"
    )
    parser.add_argument(
        "--datasets", nargs="+", required=True, help="results/datasets/{env}.h5, per env"
    )
    parser.add_argument("--scores-png", required=True)
    parser.add_argument("--curves-png", required=True)
    args = parser.parse_args(argv)
    plot_normalized_scores(
        args.records,
        args.models,
        args.envs,
        protocol_from_arguments(args),
        args.scores_png,
        display_names=parse_display_names(args.display_name),
    )
    plot_expert_curves(args.envs, args.monitors, args.baselines, args.datasets, args.curves_png)
    print(f"wrote {args.scores_png} and {args.curves_png}")


if __name__ == "__main__":
    main()
