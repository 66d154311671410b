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
  interval of the mean (Student's t over the seeds);
- the paper's numbers for the same env.

An ``Average`` row takes the mean over envs of each model's means, with a 95% interval from
the per-env standard errors (envs independent). Imports no torch.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from scipy import stats

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

CONFIDENCE = 0.95


def confidence_interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """Student's t interval of a mean from the sample std of ``n`` values (NaN if n < 2)."""
    if n < 2 or not math.isfinite(std):
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


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
    """One row per env of ``table`` plus the Average row (columns: module docstring)."""
    models = order_models(models)
    paper = read_paper_results()
    rows = []
    for _, scores in table[table["env_id"] != AVERAGE_ROW].iterrows():
        env_id = scores["env_id"]
        row = expert_row(summaries[env_id], baselines[env_id])
        row["expert_sampled"] = expert_sampled[env_id]
        for model in models:
            mean, std, n = scores[f"{model}_mean"], scores[f"{model}_std"], scores[f"{model}_n"]
            low, high = confidence_interval(mean, std, int(n))
            row |= {f"{model}_mean": mean, f"{model}_std": std, f"{model}_n": int(n)}
            row |= {f"{model}_ci_low": low, f"{model}_ci_high": high}
        for model, (column, _) in PAPER_MODELS.items():
            row[f"paper_{model}"] = (
                float(paper.loc[env_id, column]) if env_id in paper.index else math.nan
            )
        rows.append(row)
    comparison = pd.DataFrame(rows)
    average: dict[str, Any] = {"env_id": AVERAGE_ROW}
    for model in models:
        means = comparison[f"{model}_mean"]
        errors = comparison[f"{model}_std"] / comparison[f"{model}_n"].pow(0.5)
        half = 1.96 * math.sqrt(float((errors**2).sum())) / len(means)
        average |= {f"{model}_mean": float(means.mean()), f"{model}_n": len(means)}
        average |= {
            f"{model}_ci_low": float(means.mean()) - half,
            f"{model}_ci_high": float(means.mean()) + half,
        }
    for model in PAPER_MODELS:
        average[f"paper_{model}"] = float(comparison[f"paper_{model}"].mean())
    return pd.concat([comparison, pd.DataFrame([average])], ignore_index=True)


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
        f"Scores: mean and sample std over {n} evaluation seeds; 95% CI of the mean by Student's t. "
        "Average: mean over the envs shown, its CI from the per-env standard errors. Paper: "
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
