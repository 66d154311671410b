"""Per env, what a normalized score rests on and how sure it is: the comparison table.

Beside ``results/table.csv`` (the paper's table), this stage writes
``results/comparison.csv`` and ``results/comparison.md``: for every env,

- the expert: algorithm, trained timesteps, deterministic return (``expert.json``), the
  sampled return its dataset holds (the normalization's 100%, as in the paper);
- its published references: Gymnasium's ``reward_threshold`` and rl-zoo3's benchmark
  figure for the same env and algorithm, with the expert's return as a percentage of that
  figure on the random → figure scale, and the quality gate's verdict;
- the random policy's return (the normalization's 0%);
- per model, the normalized score: mean, sample std, seeds, and the 95% confidence
  interval of the mean, as ``table.csv`` holds it;
- the paper's numbers for the same env.

An ``Average`` row takes the mean over envs of each model's means, with its interval.

The intervals are not computed here: they are ``table.csv``'s ``{model}_ci_low`` and
``{model}_ci_high`` (percentile bootstrap over the seeds; for the Average, a stratified
bootstrap, :mod:`workflow_scripts.uncertainty`), so the two reports never show two
different intervals for the same mean. Imports no torch.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from workflow_scripts.aggregate import (
    AVERAGE_ROW,
    PAPER_MODELS,
    order_models,
    parse_display_names,
    read_paper_results,
)
from workflow_scripts.dataset import read_info
from workflow_scripts.env_files import dataset_env, files_by_env, json_env
from workflow_scripts.expert_quality import (
    percent_of_zoo_figure,
    reward_threshold,
    rl_zoo3_benchmark,
)
from workflow_scripts.provenance import atomic_path

# What build_comparison reads of each model in table.csv.
SCORE_STATS = ("mean", "std", "n", "ci_low", "ci_high")


def check_table_columns(table: pd.DataFrame, models: Sequence[str]) -> None:
    """Raise ValueError naming the columns of ``models`` that ``table`` lacks (a table.csv
    written before the intervals were added: remake it with the aggregate rule)."""
    missing = [
        f"{model}_{stat}"
        for model in models
        for stat in SCORE_STATS
        if f"{model}_{stat}" not in table.columns
    ]
    if missing:
        raise ValueError(
            f"table.csv lacks column(s) {', '.join(missing)}; remake it: "
            "snakemake -R aggregate -- results/table.csv"
        )


def expert_row(summary: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The expert and reference columns of one env."""
    env_id, algo = summary["env_id"], summary["algo"]
    random_return = float(baseline["mean_return"])
    deterministic = float(summary["deterministic_check"]["mean_return"])
    zoo = rl_zoo3_benchmark().get((env_id, algo))
    zoo_percent = None if zoo is None else percent_of_zoo_figure(deterministic, random_return, zoo)
    threshold = reward_threshold(env_id)
    quality = summary.get("quality") or {}
    return {
        "env_id": env_id,
        "algo": algo,
        "expert_timesteps": int(summary["n_timesteps"]),
        "expert_deterministic": deterministic,
        "random_return": random_return,
        "reward_threshold": math.nan if threshold is None else threshold,
        "rl_zoo3_return": math.nan if zoo is None else zoo.mean_reward,
        "rl_zoo3_timesteps": "" if zoo is None else zoo.n_timesteps,
        "expert_pct_of_rl_zoo3": math.nan if zoo_percent is None else zoo_percent,
        "expert_quality": quality.get("status", ""),
    }


def build_comparison(
    table: pd.DataFrame,
    models: Sequence[str],
    summaries: dict[str, dict[str, Any]],
    baselines: dict[str, dict[str, Any]],
    expert_sampled: dict[str, float],
) -> pd.DataFrame:
    """One row per env of ``table`` plus the Average row (columns: module docstring).

    Each model's mean, std, seed count and interval are ``table``'s (its Average row's
    for the Average); raises ValueError if ``table`` lacks them.
    """
    models = order_models(models)
    check_table_columns(table, models)
    paper = read_paper_results()
    rows = []
    for _, scores in table[table["env_id"] != AVERAGE_ROW].iterrows():
        env_id = scores["env_id"]
        row = expert_row(summaries[env_id], baselines[env_id])
        row["expert_sampled"] = expert_sampled[env_id]
        row |= _model_scores(scores, models)
        for model, (column, _) in PAPER_MODELS.items():
            row[f"paper_{model}"] = (
                float(paper.loc[env_id, column]) if env_id in paper.index else math.nan
            )
        rows.append(row)
    comparison = pd.DataFrame(rows)
    average: dict[str, Any] = {"env_id": AVERAGE_ROW}
    average |= _model_scores(table.set_index("env_id").loc[AVERAGE_ROW], models)
    for model in PAPER_MODELS:
        average[f"paper_{model}"] = float(comparison[f"paper_{model}"].mean())
    return pd.concat([comparison, pd.DataFrame([average])], ignore_index=True)


def _model_scores(scores: pd.Series, models: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for model in models:
        row |= {f"{model}_{stat}": scores[f"{model}_{stat}"] for stat in SCORE_STATS}
        row[f"{model}_n"] = int(row[f"{model}_n"])
    return row


def comparison_markdown(
    comparison: pd.DataFrame, models: Sequence[str], names: dict[str, str]
) -> str:
    """Two tables: the experts against their references, and the scores against the paper."""
    models = order_models(models)

    def number(value: Any, digits: int = 2) -> str:
        return (
            ""
            if value is None or (isinstance(value, float) and math.isnan(value))
            else f"{value:.{digits}f}"
        )

    envs = comparison[comparison["env_id"] != AVERAGE_ROW]
    lines = [
        "| env | algo | timesteps | expert (deterministic) | expert (sampled, = 100%) | "
        "random (= 0%) | rl-zoo3 | expert % of rl-zoo3 | reward_threshold | gate |",
        "|:---|:---|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for _, row in envs.iterrows():
        zoo = number(row["rl_zoo3_return"])
        if zoo:
            zoo += f" ({row['rl_zoo3_timesteps']})"
        lines.append(
            f"| {row['env_id']} | {row['algo'].upper()} | {int(row['expert_timesteps']):,} | "
            f"{number(row['expert_deterministic'])} | {number(row['expert_sampled'])} | "
            f"{number(row['random_return'])} | {zoo} | {number(row['expert_pct_of_rl_zoo3'], 1)} | "
            f"{number(row['reward_threshold'])} | {row['expert_quality']} |"
        )
    header = ["env"]
    for model in models:
        header += [f"{names.get(model, model)} mean ± std (%)", "95% CI"]
    header += [f"paper {name} (%)" for _, name in PAPER_MODELS.values()]
    lines += [
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for _, row in comparison.iterrows():
        cells = [row["env_id"]]
        for model in models:
            spread = "" if row["env_id"] == AVERAGE_ROW else f" ± {number(row[f'{model}_std'])}"
            cells += [
                f"{number(row[f'{model}_mean'])}{spread}",
                f"[{number(row[f'{model}_ci_low'])}, {number(row[f'{model}_ci_high'])}]",
            ]
        cells += [number(row[f"paper_{model}"]) for model in PAPER_MODELS]
        lines.append("| " + " | ".join(cells) + " |")
    n = int(envs[f"{models[0]}_n"].iloc[0]) if models else 0
    lines += [
        "",
        f"Scores: mean and sample std over {n} evaluation seeds; 95% CI of the mean by "
        "percentile bootstrap over the seeds (table.csv). Average: mean over the envs shown, "
        "its CI by a stratified bootstrap (seeds resampled within each env). Paper: "
        "Kulak (2026); its Average over the same envs.",
    ]
    return "\n".join(lines) + "\n"


def _read_json_by_env(
    paths: Sequence[str], envs: Sequence[str], kind: str
) -> dict[str, dict[str, Any]]:
    """Each env's JSON document among ``paths``, by the env id it declares."""
    return {
        env_id: json.loads(path.read_text())
        for env_id, path in files_by_env(paths, envs, json_env, kind).items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="results/table.csv")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument(
        "--experts", nargs="+", required=True, help="results/experts/{env}/expert.json"
    )
    parser.add_argument(
        "--baselines", nargs="+", required=True, help="results/baselines/{env}.json"
    )
    parser.add_argument("--datasets", nargs="+", required=True, help="results/datasets/{env}.h5")
    parser.add_argument("--display-name", action="append", default=[], metavar="MODEL=NAME")
    parser.add_argument("--output-csv", required=True)
    parser.add_argument("--output-md", required=True)
    args = parser.parse_args(argv)
    table = pd.read_csv(args.table)
    envs = [env_id for env_id in table["env_id"] if env_id != AVERAGE_ROW]
    summaries = _read_json_by_env(args.experts, envs, "expert summary")
    baselines = _read_json_by_env(args.baselines, envs, "baseline")
    sampled = {
        env_id: read_info(path, env_id).expert_mean_return
        for env_id, path in files_by_env(args.datasets, envs, dataset_env, "dataset").items()
    }
    names = parse_display_names(args.display_name)
    comparison = build_comparison(table, args.models, summaries, baselines, sampled)
    with atomic_path(args.output_csv, suffix=".csv") as tmp:
        comparison.to_csv(tmp, index=False)
    markdown = comparison_markdown(comparison, args.models, names)
    with atomic_path(args.output_md, suffix=".md") as tmp:
        tmp.write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
