"""Time of every stage of a finished run, from what the workflow already records.

Reads, under a results folder: Snakemake's benchmark files (``benchmarks/{rule}/...tsv``:
wall seconds and CPU seconds of each job), the random baselines' ``wall_seconds`` and the
experts' ``expert.json`` (timesteps), and prints one row per job and one per stage (jobs,
wall seconds summed, CPU seconds summed), plus rates a projection can start from: expert
timesteps per wall second, rollout transitions per second, evaluation steps per second.

Usage (after ``snakemake all --configfile config.repro.yaml``)::

    python benchmarks/stage_times.py --results results --csv docs/reproduction/stage_times.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import pandas as pd


def job_rows(results: Path) -> list[dict]:
    """One row per timed job: stage, what it was for, wall and CPU seconds, work done."""
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        stage = path.relative_to(results / "benchmarks").parts[0]
        item = str(path.relative_to(results / "benchmarks" / stage).with_suffix(""))
        table = pd.read_csv(path, sep="\t")
        row = {"stage": stage, "item": item, "wall_s": float(table["s"].iloc[-1])}
        row["cpu_s"] = float(table["cpu_time"].iloc[-1]) if "cpu_time" in table else float("nan")
        row["work"], row["unit"] = _work(results, stage, item)
        rows.append(row)
    for path in sorted((results / "baselines").glob("*.json")):
        baseline = json.loads(path.read_text())
        steps = baseline["mean_length"] * baseline["n_episodes"]
        rows.append(
            {"stage": "baseline", "item": baseline["env_id"], "wall_s": baseline["wall_seconds"],
             "cpu_s": float("nan"), "work": steps, "unit": "env steps"}
        )  # fmt: skip
    return rows


def _work(results: Path, stage: str, item: str) -> tuple[float, str]:
    """What a job did, in the unit its rate is quoted in."""
    if stage == "train_expert":
        summary = json.loads((results / "experts" / item / "expert.json").read_text())
        return float(summary["n_timesteps"]), "timesteps"
    if stage == "rollout":
        with h5py.File(results / "datasets" / f"{item}.h5", "r") as handle:
            return float(handle.attrs["n_transitions"]), "transitions"
    if stage == "evaluate":
        record = json.loads((results / "eval" / f"{item}.json").read_text())
        return float(record["length"]), "env steps"
    if stage == "dm":
        training = results / "models" / "dm" / "final" / "training.json"
        if training.exists():
            return float(json.loads(training.read_text()).get("steps", float("nan"))), "steps"
    return float("nan"), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--csv", help="write the per-job rows here")
    args = parser.parse_args()
    jobs = pd.DataFrame(job_rows(Path(args.results)))
    jobs["rate_per_wall_s"] = jobs["work"] / jobs["wall_s"]
    pd.set_option("display.width", 160)
    print(jobs.to_string(index=False, float_format=lambda value: f"{value:.1f}"))
    stages = jobs.groupby("stage").agg(
        jobs=("item", "count"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum")
    )
    print()
    print(stages.to_string(float_format=lambda value: f"{value:.0f}"))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        jobs.to_csv(args.csv, index=False, float_format="%.3f")


if __name__ == "__main__":
    main()
