"""The results table: per env and model, the mean normalized score over evaluation seeds.

Reads the per-seed evaluation records (``results/eval/{model}/{env}/seed{seed}.json``),
one for every configured model, env and seed, and writes

- ``table.csv``: machine-readable, one row per env plus an ``Average`` row; per model
  ``{model}_mean``, ``{model}_std`` (sample std, ddof=1), ``{model}_n``,
  ``{model}_n_failed``, ``{model}_ci_low`` / ``{model}_ci_high`` (95% percentile
  bootstrap interval of the mean over seeds; on the Average row, of the mean over envs
  by a stratified bootstrap), ``{model}_iqm`` / ``{model}_iqm_ci_low`` /
  ``{model}_iqm_ci_high`` (Average row only: the interquartile mean of all envs'
  per-seed scores with its stratified bootstrap interval, Agarwal et al. 2021; NaN on
  env rows); Welch's ``p_value`` between the two models; ``bold`` (the key of the
  significantly better model, empty if none); where both models ran the same seeds on
  an env, ``paired_mean_difference`` (first model − second, in the table's column order:
  Qwen − DM), ``paired_ci_low`` / ``paired_ci_high`` (its 95% bootstrap interval) and
  ``paired_p_value`` (paired t-test), NaN otherwise and on the Average row;
  ``paper_{model}`` (the paper's value); ``expert_quality`` (the expert quality gate's
  verdict, ``pass`` or ``below``, when the experts' ``expert.json`` files are given).
  Intervals come from :mod:`workflow_scripts.uncertainty`, seeded, so a rerun on the
  same records writes the same table.
- ``table.md``: the same laid out as the paper's table, with our models named by their
  display names and the paper's numbers in extra columns; a note under it gives each
  model's IQM and its interval.

The paper's rule decides ``bold``: Welch's t-test over the two models' per-seed values,
p < 0.05. The intervals and the paired test stand beside it, they do not change it.

The ``Average`` row is the mean of the per-env means (``n`` = number of envs); it gets
no t-test, as in the paper. The paper's average is recomputed over the same envs, so a
run on a subset of envs compares like with like.

CLI::

    python -m workflow_scripts.aggregate --records results/eval/*/*/seed*.json \\
        --models dm qwen --envs CartPole-v1 Pendulum-v1 --seeds 0 1 2 \\
        --display-name dm=DM-0.012B \\
        --table-csv results/table.csv --table-md results/table.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.provenance import atomic_path
from workflow_scripts.scores import SIGNIFICANCE_LEVEL, Comparison, compare
from workflow_scripts.uncertainty import (
    CONFIDENCE,
    bootstrap_ci,
    iqm,
    paired_comparison,
    stratified_bootstrap_ci,
)

PAPER_RESULTS = Path(__file__).parent / "data" / "paper_results.csv"
# Our model keys → (column in paper_results.csv, the name the paper printed). The paper's
# table lists Qwen first; our columns follow the same order.
PAPER_MODELS = {"qwen": ("qwen_1_7b_pct", "Qwen-1.7B"), "dm": ("dm_0_012b_pct", "DM-0.012B")}
AVERAGE_ROW = "Average"
# Per-model columns of table.csv, in order, after env_id.
MODEL_STATS = (
    "mean", "std", "n", "n_failed", "ci_low", "ci_high", "iqm", "iqm_ci_low", "iqm_ci_high",
)  # fmt: skip
PAIRED_COLUMNS = ("paired_mean_difference", "paired_ci_low", "paired_ci_high", "paired_p_value")


@dataclass
class SeedScores:
    """Normalized scores of one model on one env, in seed order."""

    seeds: list[int]
    scores: list[float]
    # Failure reasons of rollouts ended by an invalid model output (scored 0%).
    failures: list[str] = field(default_factory=list)


def load_scores(
    records: Sequence[str | os.PathLike],
    models: Sequence[str],
    envs: Sequence[str],
    seeds: Sequence[int],
) -> dict[tuple[str, str], SeedScores]:
    """The per-seed records (``evaluate``'s files), one for every configured model, env and
    seed; ``(model, env) → SeedScores`` in seed order.

    A record says which model, env and seed it holds. A missing file raises
    :class:`FileNotFoundError` naming it; a record that lacks a normalized score, holds a
    model, env or seed outside the configured ones or one another record holds, or leaves
    a configured one without a record, raises ValueError naming it.
    """
    wanted = {(model, env_id, seed) for model in models for env_id in envs for seed in seeds}
    found: dict[tuple[str, str, int], tuple[Path, dict[str, Any]]] = {}
    for path in map(Path, records):
        record = _read_record(path)
        key = (record.get("model"), record.get("env_id"), record.get("seed"))
        if key not in wanted:
            raise ValueError(
                f"{path}: holds model {key[0]!r}, env {key[1]!r}, seed {key[2]!r}, which are "
                "not among the configured models, envs and seeds"
            )
        if key in found:
            raise ValueError(f"{path} and {found[key][0]}: both hold model, env and seed {key}")
        _require_finite_score(path, record)
        found[key] = path, record
    loaded = {}
    for model in models:
        for env_id in envs:
            for seed in seeds:
                if (model, env_id, seed) not in found:
                    raise ValueError(
                        f"no per-seed evaluation of model {model}, env {env_id}, seed {seed} "
                        f"among the {len(records)} records given"
                    )
            loaded[model, env_id] = _seed_scores(
                (seed, found[model, env_id, seed][1]) for seed in seeds
            )
    return loaded


def load_last_evaluations(
    records: Sequence[str | os.PathLike],
    models: Sequence[str],
    envs: Sequence[str],
    n_evaluations: int,
) -> dict[tuple[str, str], SeedScores]:
    """The paper's protocol: per model and env, the last ``n_evaluations`` periodic
    evaluations, each one episode with its own seed; ``(model, env) → SeedScores`` oldest
    first.

    The records are snapshot evaluations (``results/curves/``; each names its snapshot's
    step). Newest first by (step, seed), a seed already taken is skipped, so the chosen
    evaluations are the newest with distinct seeds. A record of another model or env, one
    without a step, a model and env with fewer than ``n_evaluations`` distinct seeds, or a
    non-finite score raises ValueError naming it.
    """
    found: dict[tuple[str, str], list[tuple[int, int, dict[str, Any]]]] = {
        (model, env_id): [] for model in models for env_id in envs
    }
    for path in map(Path, records):
        record = _read_record(path)
        key = (record.get("model"), record.get("env_id"))
        step = (record.get("snapshot") or {}).get("step")
        if key not in found:
            raise ValueError(
                f"{path}: holds model {key[0]!r}, env {key[1]!r}, which are not among the "
                "configured models and envs"
            )
        if not isinstance(step, int):
            raise ValueError(
                f"{path}: no snapshot step; the last_evaluations protocol reads "
                "snapshot evaluations (results/curves/)"
            )
        _require_finite_score(path, record)
        found[key].append((step, int(record["seed"]), record))
    loaded = {}
    for (model, env_id), evaluations in found.items():
        chosen: dict[int, tuple[int, dict[str, Any]]] = {}
        for step, seed, record in sorted(evaluations, key=lambda item: item[:2], reverse=True):
            if seed not in chosen and len(chosen) < n_evaluations:
                chosen[seed] = step, record
        if len(chosen) < n_evaluations:
            raise ValueError(
                f"model {model}, env {env_id}: {len(chosen)} evaluations with distinct seeds "
                f"among the records given, the last_evaluations protocol needs {n_evaluations}"
            )
        oldest_first = sorted(chosen.items(), key=lambda item: (item[1][0], item[0]))
        loaded[model, env_id] = _seed_scores((seed, record) for seed, (_, record) in oldest_first)
    return loaded


def _seed_scores(records: Iterable[tuple[int, dict[str, Any]]]) -> SeedScores:
    """The scores and failure reasons of ``(seed, record)`` pairs, in the order given."""
    entry = SeedScores(seeds=[], scores=[])
    for seed, record in records:
        entry.seeds.append(seed)
        entry.scores.append(float(record["normalized_score"]))
        if record.get("failure"):
            entry.failures.append(record["failure"].get("reason", "unknown"))
    return entry


def _require_finite_score(path: Path, record: dict[str, Any]) -> None:
    score = record.get("normalized_score")
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ValueError(f"{path}: normalized_score is {score!r}, not a finite number")


@dataclass(frozen=True)
class TableProtocol:
    """Which per-seed evaluations the table averages (config ``evaluation.protocol``).

    ``final``: one episode of the final model per seed in ``seeds`` (results/eval/).
    ``last_evaluations``: the paper's "last 10 evaluations", per model and env the newest
    ``n_evaluations`` snapshot evaluations with distinct seeds (results/curves/); the
    ``final_models`` (rows without snapshots: retrieval, endpoints) are read as under
    ``final``, one episode per seed in ``seeds``.
    """

    name: str = "final"
    seeds: tuple[int, ...] = ()
    n_evaluations: int = 10
    final_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in ("final", "last_evaluations"):
            raise ValueError(f"protocol {self.name!r}: expected final or last_evaluations")
        if (self.name == "final" or self.final_models) and not self.seeds:
            raise ValueError("the final protocol needs at least one seed")

    def load(
        self, records: Sequence[str | os.PathLike], models: Sequence[str], envs: Sequence[str]
    ) -> dict[tuple[str, str], SeedScores]:
        """``(model, env) → SeedScores`` of the evaluations this protocol names."""
        if self.name == "final":
            return load_scores(records, models, envs, self.seeds)
        finals = [model for model in models if model in self.final_models]
        if not finals:
            return load_last_evaluations(records, models, envs, self.n_evaluations)
        # Rows of both kinds: each record goes to its model's protocol.
        by_final = {True: [], False: []}
        for path in records:
            by_final[_read_record(Path(path)).get("model") in finals].append(path)
        periodic = [model for model in models if model not in finals]
        return load_last_evaluations(
            by_final[False], periodic, envs, self.n_evaluations
        ) | load_scores(by_final[True], finals, envs, self.seeds)

    def description(self) -> str:
        """What one cell of the table is the mean of, for the note under it."""
        if self.name == "final":
            seed_text = ", ".join(str(seed) for seed in self.seeds)
            return (
                f"mean over {len(self.seeds)} independent episodes of the final model per env "
                f"(seeds {seed_text})"
            )
        text = (
            f"mean over the last {self.n_evaluations} periodic evaluations per env, each one "
            "episode with its own seed, on the last snapshots (the paper's protocol)"
        )
        if self.final_models:
            text += (
                f"; {', '.join(self.final_models)} (no snapshots): mean over "
                f"{len(self.seeds)} episodes per env, seeds {', '.join(map(str, self.seeds))}"
            )
        return text


def _read_record(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"missing per-seed evaluation {path}; run: snakemake {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def read_paper_results(path: str | os.PathLike = PAPER_RESULTS) -> pd.DataFrame:
    """The paper's per-env normalized scores (%), indexed by env id, without its Average."""
    paper = pd.read_csv(path).set_index("env_name")
    return paper.drop(index=AVERAGE_ROW, errors="ignore")


def order_models(models: Sequence[str]) -> list[str]:
    """Models in the paper's column order (Qwen, then DM), any others after, as given."""
    known = [model for model in PAPER_MODELS if model in models]
    return known + [model for model in models if model not in PAPER_MODELS]


def build_table(
    scores: dict[tuple[str, str], SeedScores],
    models: Sequence[str],
    envs: Sequence[str],
    paper: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The machine-readable table (see the module docstring for its columns)."""
    models = order_models(models)
    paper = read_paper_results() if paper is None else paper
    rows = []
    for env_id in envs:
        row: dict[str, Any] = {"env_id": env_id}
        for model in models:
            values = np.asarray(scores[model, env_id].scores)
            row[f"{model}_mean"] = float(values.mean())
            row[f"{model}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            row[f"{model}_n"] = len(values)
            row[f"{model}_n_failed"] = len(scores[model, env_id].failures)
            row[f"{model}_ci_low"], row[f"{model}_ci_high"] = bootstrap_ci(values, CONFIDENCE)
            row |= dict.fromkeys(
                (f"{model}_iqm", f"{model}_iqm_ci_low", f"{model}_iqm_ci_high"), math.nan
            )
        row["p_value"], row["bold"] = math.nan, ""
        comparison = compare_models(scores, models, env_id)
        if comparison is not None:
            row["p_value"], row["bold"] = comparison.p_value, comparison.better or ""
        row |= paired_columns(scores, models, env_id)
        for model in models:
            row[f"paper_{model}"] = _paper_value(paper, env_id, model)
        rows.append(row)
    table = pd.DataFrame(rows)
    average: dict[str, Any] = {"env_id": AVERAGE_ROW, "p_value": math.nan, "bold": ""}
    average |= dict.fromkeys(PAIRED_COLUMNS, math.nan)
    for model in models:
        average[f"{model}_mean"] = float(table[f"{model}_mean"].mean())
        average[f"{model}_std"] = math.nan
        average[f"{model}_n"] = len(envs)
        average[f"{model}_n_failed"] = int(table[f"{model}_n_failed"].sum())
        average |= average_intervals(scores, model, envs)
        # Mean of the paper's values over the envs of this table that the paper has.
        average[f"paper_{model}"] = float(table[f"paper_{model}"].mean())
    table = pd.concat([table, pd.DataFrame([average])], ignore_index=True)
    columns = ["env_id"]
    columns += [f"{model}_{stat}" for model in models for stat in MODEL_STATS]
    columns += ["p_value", "bold", *PAIRED_COLUMNS] + [f"paper_{model}" for model in models]
    return table[columns]


def average_intervals(
    scores: dict[tuple[str, str], SeedScores], model: str, envs: Sequence[str]
) -> dict[str, float]:
    """The Average row's intervals of ``model``: the mean over envs and the IQM of all
    envs' per-seed scores, each with its stratified bootstrap interval (seeds resampled
    within each env).

    The pooled mean equals the Average's mean of per-env means when every env has the
    same number of seeds, which :func:`load_scores` guarantees.
    """
    per_env = [np.asarray(scores[model, env_id].scores) for env_id in envs]
    _, mean_low, mean_high = stratified_bootstrap_ci(per_env, np.mean, CONFIDENCE)
    point, iqm_low, iqm_high = stratified_bootstrap_ci(per_env, iqm, CONFIDENCE)
    return {
        f"{model}_ci_low": mean_low,
        f"{model}_ci_high": mean_high,
        f"{model}_iqm": point,
        f"{model}_iqm_ci_low": iqm_low,
        f"{model}_iqm_ci_high": iqm_high,
    }


def compared_pair(models: Sequence[str]) -> tuple[str, str] | None:
    """The two models the t-test compares: the paper's pair (Qwen, DM) when both are in the
    table, whatever else is; else the only two; else none."""
    if all(model in models for model in PAPER_MODELS):
        return tuple(PAPER_MODELS)
    if len(models) == 2:
        return tuple(models)
    return None


def paired_columns(
    scores: dict[tuple[str, str], SeedScores], models: Sequence[str], env_id: str
) -> dict[str, float]:
    """The paired comparison of the two models on ``env_id`` (first − second), or NaN in
    every column unless there are two models that ran the same seeds in the same order."""
    pair = compared_pair(models)
    if pair is None:
        return dict.fromkeys(PAIRED_COLUMNS, math.nan)
    first, second = (scores[model, env_id] for model in pair)
    if first.seeds != second.seeds:
        return dict.fromkeys(PAIRED_COLUMNS, math.nan)
    paired = paired_comparison(first.scores, second.scores, CONFIDENCE)
    return dict(
        zip(
            PAIRED_COLUMNS,
            (paired.mean_difference, paired.ci_low, paired.ci_high, paired.p_value),
            strict=True,
        )
    )


def compare_models(
    scores: dict[tuple[str, str], SeedScores], models: Sequence[str], env_id: str
) -> Comparison | None:
    """Welch's comparison of :func:`compared_pair` on ``env_id``; None without a pair."""
    pair = compared_pair(models)
    if pair is None:
        return None
    first, second = pair
    return compare(first, scores[first, env_id].scores, second, scores[second, env_id].scores)


def _paper_value(paper: pd.DataFrame, env_id: str, model: str) -> float:
    if model not in PAPER_MODELS or env_id not in paper.index:
        return math.nan
    return float(paper.loc[env_id, PAPER_MODELS[model][0]])


def read_expert_verdicts(paths: Sequence[str | os.PathLike]) -> dict[str, dict[str, Any]]:
    """The quality gate's verdict per env id, from the experts' ``expert.json`` files."""
    verdicts = {}
    for path in paths:
        summary = json.loads(Path(path).read_text())
        if summary.get("quality"):
            verdicts[summary["env_id"]] = summary["quality"]
    return verdicts


def expert_notes(verdicts: dict[str, dict[str, Any]]) -> list[str]:
    """Lines under the table for every expert below its published references."""
    below = {env: verdict for env, verdict in verdicts.items() if verdict["status"] == "below"}
    if not below:
        return []
    lines = [
        "",
        f"**Expert quality warning** ({len(below)} of {len(verdicts)} experts): their "
        "normalized scores measure little, as the 100% they are scaled to is a weak policy.",
    ]
    for env in sorted(below):
        lines += [f"- {message}" for message in below[env]["messages"]]
    return lines


def table_markdown(
    table: pd.DataFrame,
    models: Sequence[str],
    display_names: dict[str, str],
    protocol: TableProtocol,
    verdicts: dict[str, dict[str, Any]] | None = None,
) -> str:
    """``table`` laid out as the paper's table: our means (bold where significant), the
    Welch p-value, and the paper's numbers beside them; expert-quality warnings below."""
    models = order_models(models)
    names = {model: display_names.get(model, model) for model in models}
    header = ["env_name"] + [f"{names[model]} (%)" for model in models]
    pair = compared_pair(models)
    if pair is not None:
        header.append("p (Welch)")
    paper_models = [model for model in models if model in PAPER_MODELS]
    header += [f"paper {PAPER_MODELS[model][1]} (%)" for model in paper_models]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    footnotes = []
    for _, row in table.iterrows():
        cells = [row["env_id"]]
        for model in models:
            cell = f"{row[f'{model}_mean']:.2f}"
            if row["bold"] == model:
                cell = f"**{cell}**"
            if row[f"{model}_n_failed"] and row["env_id"] != AVERAGE_ROW:
                cell += "†"
                footnotes.append(
                    f"† {names[model]} on {row['env_id']}: {row[f'{model}_n_failed']} of "
                    f"{row[f'{model}_n']} rollouts ended by an invalid model output (scored 0%)."
                )
            cells.append(cell)
        if pair is not None:
            cells.append("" if math.isnan(row["p_value"]) else f"{row['p_value']:.3g}")
        cells += [_format_percent(row[f"paper_{model}"]) for model in paper_models]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        f"Normalized score 100·(score − random)/(expert − random), {protocol.description()}; "
        f"Average: mean over the {len(table) - 1} envs shown.",
    ]
    notes.append(iqm_note(table, models, names))
    if pair is not None:
        notes.append(
            f"Bold: the better of {names[pair[0]]} and {names[pair[1]]} where Welch's t-test "
            f"over their per-seed values gives p < {SIGNIFICANCE_LEVEL}."
        )
    if paper_models:
        notes.append(
            "Paper columns: Kulak (2026), the published Qwen-1.7B and DM-0.012B; their "
            "Average is over the same envs. Standard deviations, counts, confidence "
            "intervals and paired comparisons: table.csv."
        )
    notes += expert_notes(verdicts or {})
    return "\n".join(lines + notes + ([""] + footnotes if footnotes else [])) + "\n"


def iqm_note(table: pd.DataFrame, models: Sequence[str], names: dict[str, str]) -> str:
    """The line under the table: each model's IQM over all envs' per-seed scores, with its
    interval (from the Average row of ``table``)."""
    average = table.set_index("env_id").loc[AVERAGE_ROW]
    parts = [
        f"{names[model]} {average[f'{model}_iqm']:.2f} "
        f"[{average[f'{model}_iqm_ci_low']:.2f}, {average[f'{model}_iqm_ci_high']:.2f}]"
        for model in models
    ]
    return (
        "IQM (interquartile mean of all envs' per-seed scores, "
        f"{CONFIDENCE:.0%} stratified bootstrap interval): " + "; ".join(parts) + "."
    )


def _format_percent(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}"


def write_tables(
    records: Sequence[str | os.PathLike],
    models: Sequence[str],
    envs: Sequence[str],
    protocol: TableProtocol,
    table_csv: str | os.PathLike,
    table_md: str | os.PathLike,
    display_names: dict[str, str] | None = None,
    expert_summaries: Sequence[str | os.PathLike] = (),
) -> pd.DataFrame:
    """Load the per-seed records the protocol names, build the table, write both files
    atomically."""
    if not models or not envs:
        raise ValueError("aggregate needs at least one model and one env")
    scores = protocol.load(records, models, envs)
    table = build_table(scores, models, envs)
    verdicts = read_expert_verdicts(expert_summaries)
    if verdicts:
        table["expert_quality"] = [
            verdicts[env]["status"] if env in verdicts else "" for env in table["env_id"]
        ]
    with atomic_path(table_csv, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    markdown = table_markdown(table, models, display_names or {}, protocol, verdicts)
    with atomic_path(table_md, suffix=".md") as tmp:
        tmp.write_text(markdown)
    return table


def parse_display_names(pairs: Sequence[str]) -> dict[str, str]:
    """``["dm=DM-0.012B", ...]`` → ``{"dm": "DM-0.012B"}``."""
    names = {}
    for pair in pairs:
        model, sep, name = pair.partition("=")
        if not sep or not model or not name:
            raise ValueError(f"--display-name {pair!r}: expected MODEL=NAME")
        names[model] = name
    return names


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the stages that read the per-seed evaluations (this one and ``plots``)."""
    parser.add_argument(
        "--records",
        nargs="+",
        required=True,
        help="the per-seed evaluations: results/eval/{model}/{env}/seed{seed}.json, one per "
        "model, env and seed (final), or the last snapshots' results/curves/ records "
        "(last_evaluations)",
    )
    parser.add_argument("--models", nargs="+", required=True, help="model keys, e.g. dm qwen")
    parser.add_argument("--envs", nargs="+", required=True, help="Gymnasium env ids")
    parser.add_argument(
        "--protocol",
        choices=("final", "last_evaluations"),
        default="final",
        help="which evaluations the table averages (config evaluation.protocol)",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[], help="the final protocol's seeds"
    )
    parser.add_argument(
        "--last-evaluations",
        type=int,
        default=10,
        help="the last_evaluations protocol's number of evaluations per env",
    )
    parser.add_argument(
        "--final-models",
        nargs="*",
        default=[],
        help="under last_evaluations, the models without snapshots, read as under final",
    )
    parser.add_argument(
        "--display-name",
        action="append",
        default=[],
        metavar="MODEL=NAME",
        help="the name a model is shown by in tables and figures (default: its key)",
    )


def protocol_from_arguments(args: argparse.Namespace) -> TableProtocol:
    """The protocol the ``--protocol``, ``--seeds``, ``--last-evaluations`` and
    ``--final-models`` flags name."""
    return TableProtocol(
        args.protocol, tuple(args.seeds), args.last_evaluations, tuple(args.final_models)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_evaluation_arguments(parser)
    parser.add_argument(
        "--expert-summaries",
        nargs="*",
        default=[],
        help="results/experts/{env}/expert.json files: their quality verdicts go under the table",
    )
    parser.add_argument("--table-csv", required=True)
    parser.add_argument("--table-md", required=True)
    args = parser.parse_args(argv)
    table = write_tables(
        args.records,
        args.models,
        args.envs,
        protocol_from_arguments(args),
        args.table_csv,
        args.table_md,
        display_names=parse_display_names(args.display_name),
        expert_summaries=args.expert_summaries,
    )
    print(Path(args.table_md).read_text())
    print(f"wrote {args.table_csv} ({len(table)} rows) and {args.table_md}")


if __name__ == "__main__":
    main()
