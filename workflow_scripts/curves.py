"""Learning curves: every snapshot's evaluations as a curve, time-to-score and a plateau test.

Reads the per-seed records of the snapshot evaluations
(``results/curves/{model}/step{N}/{env}/seed{seed}.json``, written by
:mod:`workflow_scripts.evaluate_snapshot`; each carries its snapshot's ``progress``) and
writes

- ``curves.csv``: one row per model and snapshot: ``step``, ``transitions_seen``,
  ``tokens_seen``, ``train_hours``, ``device_hours``, ``n_seeds`` (episodes per env),
  ``average`` (the mean over envs of each env's mean normalized score) and ``iqm`` (the
  interquartile mean of all episodes' scores), each with a 95% stratified-bootstrap
  interval (``*_ci_low``, ``*_ci_high``; :mod:`workflow_scripts.uncertainty`), and
  ``score_{env}``, each env's mean;
- ``curves.md``: per model, **time-to-score** (the first snapshot whose average reaches
  each threshold, with its step, hours and device-hours) and the **plateau test**: the
  least-squares slope of the average over the last K snapshots, in points per 1,000
  steps, with its 95% interval: *rising* when the interval is above 0, *falling* when
  below, otherwise *flat* (no trend K points can show);
- ``learning_curves.png``: the average (with its interval) against steps and against
  training hours, every model on the same axes; below, one small panel per env.

These are what the paper's two claims about time need ("DM-0.012B reaches 81% average
normalized performance in less than one day", "Qwen-1.7B plateaus at 55% ... no further
improvement over the next 60 hours"): time-to-score answers the first, the plateau test
the second.

CLI::

    python -m workflow_scripts.curves --records results/curves/*/step*/*/seed*.json \\
        --models dm qwen --envs CartPole-v1 Pendulum-v1 --thresholds 50 80 \\
        --plateau-points 5 --curves-csv results/curves.csv --curves-md results/curves.md \\
        --curves-png results/plots/learning_curves.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.aggregate import order_models, parse_display_names
from workflow_scripts.provenance import atomic_path
from workflow_scripts.uncertainty import LinearTrend, iqm, linear_trend, stratified_bootstrap_ci

PROGRESS_COLUMNS = ("transitions_seen", "tokens_seen", "train_hours", "device_hours")


def load_curve_records(
    records: Sequence[str | os.PathLike], models: Sequence[str], envs: Sequence[str]
) -> dict[str, dict[int, dict[str, Any]]]:
    """``model → step → {"progress": ..., "scores": {env: [score, ...]}}``, steps sorted.

    Every record must name a configured model and env, its seed and snapshot step, and a
    finite normalized score; two records of one model, step, env and seed, or a snapshot
    without a record for some env, or envs of one snapshot with different numbers of
    episodes, raise ValueError naming the file or the point.
    """
    curves: dict[str, dict[int, dict[str, Any]]] = {model: {} for model in models}
    seen: dict[tuple, Path] = {}
    for path in map(Path, records):
        record = _read_record(path)
        model, env_id = record.get("model"), record.get("env_id")
        step = (record.get("snapshot") or {}).get("step")
        if model not in curves or env_id not in envs:
            raise ValueError(
                f"{path}: model {model!r}, env {env_id!r} are not among {list(models)}, "
                f"{list(envs)}"
            )
        if not isinstance(step, int):
            raise ValueError(f"{path}: no snapshot step; not a curve evaluation record")
        key = (model, step, env_id, record.get("seed"))
        if key in seen:
            raise ValueError(f"{path} and {seen[key]}: both hold model, step, env, seed {key}")
        seen[key] = path
        score = record.get("normalized_score")
        if not isinstance(score, int | float) or not math.isfinite(score):
            raise ValueError(f"{path}: normalized_score is {score!r}, not a finite number")
        point = curves[model].setdefault(
            step, {"progress": record["snapshot"], "scores": defaultdict(list)}
        )
        point["scores"][env_id].append(float(score))
    for model, points in curves.items():
        for step, point in points.items():
            counts = {env_id: len(point["scores"].get(env_id, [])) for env_id in envs}
            if min(counts.values()) == 0 or len(set(counts.values())) > 1:
                raise ValueError(
                    f"{model} step {step}: episodes per env {counts}; every env needs the "
                    "same number (rerun that snapshot's evaluation)"
                )
        curves[model] = dict(sorted(points.items()))
    return curves


def _read_record(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(
            f"missing curve evaluation {path}; run: snakemake {path.parents[1]}"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def curve_table(curves: dict[str, dict[int, dict[str, Any]]], envs: Sequence[str]) -> pd.DataFrame:
    """The rows of ``curves.csv`` (see the module docstring), models in the paper's order."""
    rows = []
    for model in order_models(list(curves)):
        for step, point in curves[model].items():
            per_env = [np.asarray(point["scores"][env_id]) for env_id in envs]
            average = stratified_bootstrap_ci(per_env, np.mean)
            interquartile = stratified_bootstrap_ci(per_env, iqm)
            row: dict[str, Any] = {"model": model, "step": step}
            row |= {column: point["progress"].get(column, math.nan) for column in PROGRESS_COLUMNS}
            row |= {
                "n_seeds": len(per_env[0]),
                "average": float(np.mean([scores.mean() for scores in per_env])),
                "average_ci_low": average[1],
                "average_ci_high": average[2],
                "iqm": interquartile[0],
                "iqm_ci_low": interquartile[1],
                "iqm_ci_high": interquartile[2],
            }
            row |= {
                f"score_{env_id}": float(scores.mean())
                for env_id, scores in zip(envs, per_env, strict=True)
            }
            rows.append(row)
    return pd.DataFrame(rows)


def time_to_score(curve: pd.DataFrame, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """Per threshold, the first snapshot (of one model's rows, by step) whose average
    reaches it: its step, training hours and device-hours; None where none does."""
    curve = curve.sort_values("step")
    reached = []
    for threshold in thresholds:
        hits = curve[curve["average"] >= threshold]
        first = None
        if len(hits):
            row = hits.iloc[0]
            first = {
                "step": int(row["step"]),
                "train_hours": float(row["train_hours"]),
                "device_hours": float(row["device_hours"]),
            }
        reached.append({"threshold": float(threshold), "first": first})
    return reached


def plateau_test(curve: pd.DataFrame, points: int) -> tuple[LinearTrend, str]:
    """The trend of one model's average over its last ``points`` snapshots, slope in
    percentage points per 1,000 steps, and its verdict: ``rising`` (interval above 0),
    ``falling`` (below 0), ``flat`` (interval holds 0) or ``too few points`` (under 3)."""
    last = curve.sort_values("step").tail(points)
    trend = linear_trend(last["step"] / 1000.0, last["average"])
    if math.isnan(trend.ci_low):
        return trend, "too few points"
    if trend.ci_low > 0:
        return trend, "rising"
    if trend.ci_high < 0:
        return trend, "falling"
    return trend, "flat"


def curves_markdown(
    table: pd.DataFrame,
    thresholds: Sequence[float],
    plateau_points: int,
    display_names: dict[str, str],
) -> str:
    """``curves.md``: per model, its last point, time-to-score and the plateau test."""
    lines = [
        "# Learning curves",
        "",
        "Average: the mean over envs of each env's mean normalized score at a snapshot "
        "(0% random, 100% expert), with its 95% stratified-bootstrap interval; the full "
        "curve is curves.csv and plots/learning_curves.png.",
        "",
        "| model | snapshots | last step | last average (%) | 95% interval | hours | "
        "device-hours | "
        + " | ".join(f"first ≥ {threshold:g}%" for threshold in thresholds)
        + f" | trend of the last {plateau_points} (points / 1k steps) | verdict |",
        "|" + "|".join([":---"] + ["---:"] * (6 + len(thresholds)) + ["---:", ":---"]) + "|",
    ]
    for model in order_models(list(dict.fromkeys(table["model"]))):
        curve = table[table["model"] == model].sort_values("step")
        last = curve.iloc[-1]
        cells = [
            display_names.get(model, model),
            str(len(curve)),
            str(int(last["step"])),
            f"{last['average']:.2f}",
            f"[{last['average_ci_low']:.2f}, {last['average_ci_high']:.2f}]",
            f"{last['train_hours']:.3g}",
            f"{last['device_hours']:.3g}",
        ]
        for reached in time_to_score(curve, thresholds):
            first = reached["first"]
            cells.append(
                "not reached"
                if first is None
                else f"step {first['step']} ({first['train_hours']:.3g} h, "
                f"{first['device_hours']:.3g} device-h)"
            )
        trend, verdict = plateau_test(curve, plateau_points)
        interval = "" if math.isnan(trend.ci_low) else f" [{trend.ci_low:.3g}, {trend.ci_high:.3g}]"
        cells += [f"{trend.slope:.3g}{interval}", verdict]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Time-to-score: the first snapshot whose average reaches the threshold; hours are "
        "training wall-clock time summed over the run's attempts, device-hours the same "
        "times the processes (GPUs on a GPU node).",
        f"Trend: least-squares slope of the average over the last {plateau_points} "
        "snapshots against steps, with its Student's t 95% interval; rising: the interval "
        "is above 0, falling: below 0, flat: it holds 0 (no trend these points can show).",
    ]
    return "\n".join(lines) + "\n"


def plot_learning_curves(
    table: pd.DataFrame,
    envs: Sequence[str],
    display_names: dict[str, str],
    path: str | os.PathLike,
) -> None:
    """Average vs steps and vs hours (every model on one axis each), per-env panels below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 4
    env_rows = math.ceil(len(envs) / columns)
    figure = plt.figure(figsize=(4 * columns, 3.6 + 2.6 * env_rows), layout="constrained")
    grid = figure.add_gridspec(1 + env_rows, columns, height_ratios=[1.4] + [1] * env_rows)
    by_steps = figure.add_subplot(grid[0, : columns // 2])
    by_hours = figure.add_subplot(grid[0, columns // 2 :])
    from workflow_scripts.plots import MODEL_COLORS

    models = order_models(list(dict.fromkeys(table["model"])))
    # The colours of the score plots: a model looks the same in every figure.
    colours = {
        model: MODEL_COLORS.get(model, f"C{index + 2}") for index, model in enumerate(models)
    }
    for model in models:
        curve = table[table["model"] == model].sort_values("step")
        name = display_names.get(model, model)
        for axis, x in ((by_steps, curve["step"]), (by_hours, curve["train_hours"])):
            axis.plot(x, curve["average"], marker="o", color=colours[model], label=name)
            axis.fill_between(
                x, curve["average_ci_low"], curve["average_ci_high"],
                color=colours[model], alpha=0.2, linewidth=0,
            )  # fmt: skip
    for axis, label in ((by_steps, "training steps"), (by_hours, "training hours (wall clock)")):
        axis.set_xlabel(label)
        axis.set_ylabel("average normalized score (%)")
        axis.axhline(100, color="green", linewidth=0.8, linestyle="--")
        axis.axhline(0, color="red", linewidth=0.8, linestyle="--")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize="small")
    by_steps.set_title("All-env average, 95% stratified-bootstrap interval")
    by_hours.set_title("The same against training time")
    for index, env_id in enumerate(envs):
        axis = figure.add_subplot(grid[1 + index // columns, index % columns])
        for model in models:
            curve = table[table["model"] == model].sort_values("step")
            axis.plot(curve["step"], curve[f"score_{env_id}"], marker=".", color=colours[model])
        axis.axhline(100, color="green", linewidth=0.8, linestyle="--")
        axis.axhline(0, color="red", linewidth=0.8, linestyle="--")
        axis.set_title(env_id, fontsize="small")
        axis.tick_params(labelsize="x-small")
        axis.grid(alpha=0.3)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def write_curves(
    records: Sequence[str | os.PathLike],
    models: Sequence[str],
    envs: Sequence[str],
    thresholds: Sequence[float],
    plateau_points: int,
    curves_csv: str | os.PathLike,
    curves_md: str | os.PathLike,
    curves_png: str | os.PathLike,
    display_names: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Load the curve records and write the three outputs atomically; return the table."""
    if not models or not envs:
        raise ValueError("curves need at least one model with snapshots and one env")
    display_names = display_names or {}
    table = curve_table(load_curve_records(records, models, envs), envs)
    with atomic_path(curves_csv, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(curves_md, suffix=".md") as tmp:
        tmp.write_text(curves_markdown(table, thresholds, plateau_points, display_names))
    plot_learning_curves(table, envs, display_names, curves_png)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", nargs="+", required=True, help="curve per-seed records")
    parser.add_argument("--models", nargs="+", required=True, help="models with snapshots")
    parser.add_argument("--envs", nargs="+", required=True, help="Gymnasium env ids")
    parser.add_argument("--thresholds", nargs="*", type=float, default=[], help="percent")
    parser.add_argument("--plateau-points", type=int, required=True, help="K last snapshots")
    parser.add_argument("--display-name", action="append", default=[], metavar="MODEL=NAME")
    parser.add_argument("--curves-csv", required=True)
    parser.add_argument("--curves-md", required=True)
    parser.add_argument("--curves-png", required=True)
    args = parser.parse_args(argv)
    write_curves(
        args.records,
        args.models,
        args.envs,
        args.thresholds,
        args.plateau_points,
        args.curves_csv,
        args.curves_md,
        args.curves_png,
        display_names=parse_display_names(args.display_name),
    )
    print(Path(args.curves_md).read_text())


if __name__ == "__main__":
    main()
