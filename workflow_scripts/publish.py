"""The publish bundle: ``results/publish/``, a folder a Hugging Face upload takes as is.

Layout (docs/publishing.md says how to upload each part)::

    results/publish/
      README.md            how the bundle was made: config, git commit, package versions
      config.yaml          the workflow config the run used (all overlays merged)
      scores.json          the random and expert scores every normalized score is scaled to
      table.csv, table.md  the results table (comparison.csv/.md when given)
      plots/*.png
      models/{model}/      one Hub model repository per model: everything from
                           results/models/{model}/final, a model card README.md whose YAML
                           front matter holds library_name, tags, datasets and a model-index
                           of the table's per-env normalized scores, videos/{env}.mp4
      datasets/            one Hub dataset repository: the Minari export of every env
                           ({env}/), or a README.md naming the command that builds them;
                           videos/{env}.mp4 of the experts when given
      SHA256SUMS           every file's hash (``sha256sum -c SHA256SUMS``)

Nothing is uploaded here. The model-index values are the table's ``{model}_mean`` numbers,
unrounded, so the card and ``table.csv`` cannot disagree; a table without a model's
column is refused with the file and column named. The folder is written under a
temporary name beside the output and moved into place when complete.

CLI::

    python -m workflow_scripts.publish --model-dir dm=results/models/dm/final \\
        --display-name dm=DM-0.012B --table-csv results/table.csv --table-md results/table.md \\
        --scores results/scores.json --plots results/plots/*.png --config-json "$(...)" \\
        [--videos-dir results/videos --video-seed 0] [--minari-dir results/minari] \\
        --envs CartPole-v1 Pendulum-v1 --output results/publish
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workflow_scripts.minari_export import minari_dataset_id
from workflow_scripts.provenance import code_commit, package_versions, sha256_file
from workflow_scripts.qwen.settings import hub_model_id
from workflow_scripts.video import VIDEO_PACKAGES, expert_video, info_path, model_video

AVERAGE_ROW = "Average"  # the table's last row (workflow_scripts.aggregate.AVERAGE_ROW)
PAPER = "Kulak (2026), 'Evidence from 20 Gymnasium environments'"
DEFAULT_NAMESPACE = "gym-llm-bench"
DATASETS_REPO = "expert-datasets"  # the name of the one Hub dataset repository of all envs
# Packages the bundle README lists beside the tracked ones: the videos' and YAML.
BUNDLE_PACKAGES = (*VIDEO_PACKAGES, "pyyaml")
# Per model: the Hub library (both are transformers save_pretrained folders) and its tags.
MODEL_TAGS = {
    "dm": ["decision-transformer", "gato-style", "llama"],
    "qwen": ["qwen3", "llm", "text-generation", "chat"],
}
COMMON_TAGS = ["reinforcement-learning", "imitation-learning", "behavior-cloning", "gymnasium"]
LOAD_HINTS = {
    "dm": "workflow_scripts.dm.policy.load_policy(folder, env_id)",
    "qwen": "workflow_scripts.qwen.policy.load_policy(folder, env_id)",
}


class BundleInputError(ValueError):
    """An input of the bundle is missing or not what the workflow writes; names the file."""


@dataclass(frozen=True)
class EnvScore:
    """One env's row of ``table.csv`` for one model."""

    env_id: str
    mean: float
    std: float | None
    n: int | None
    paper: float | None


def read_model_scores(
    table_csv: str | os.PathLike, model: str
) -> tuple[list[EnvScore], EnvScore | None]:
    """``model``'s per-env normalized scores in ``table.csv`` (env order kept) and its
    Average row (None if the table has none).

    Raises :class:`BundleInputError` naming the file and column when the table lacks
    ``env_id`` or ``{model}_mean``, or a value there is not a finite number.
    """
    path = Path(table_csv)
    if not path.is_file():
        raise BundleInputError(f"{path}: table does not exist (run: snakemake {path})")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
        columns = rows[0].keys() if rows else []
    column = f"{model}_mean"
    for needed in ("env_id", column):
        if needed not in columns:
            raise BundleInputError(
                f"{path}: no column {needed!r} (columns: {', '.join(columns) or 'none'}); "
                f"is {model!r} among the models the table was made for?"
            )
    scores, average = [], None
    for row in rows:
        score = EnvScore(
            env_id=row["env_id"],
            mean=_number(row[column], path, column, row["env_id"]),
            std=_optional_number(row.get(f"{model}_std")),
            n=_optional_int(row.get(f"{model}_n")),
            paper=_optional_number(row.get(f"paper_{model}")),
        )
        if score.env_id == AVERAGE_ROW:
            average = score
        else:
            scores.append(score)
    if not scores:
        raise BundleInputError(f"{path}: no env rows")
    return scores, average


def _number(text: str | None, path: Path, column: str, env_id: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise BundleInputError(f"{path}: column {column!r}, row {env_id}: {text!r} is not a number")
    return value


def _optional_number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _optional_int(text: str | None) -> int | None:
    value = _optional_number(text)
    return None if value is None else int(value)


def model_index(display_name: str, scores: Sequence[EnvScore]) -> list[dict[str, Any]]:
    """The card's ``model-index``: one result per env, its normalized score (%) as metric."""
    results = []
    for score in scores:
        seeds = f", mean of {score.n} seeds" if score.n else ""
        results.append(
            {
                "task": {"type": "reinforcement-learning", "name": "reinforcement-learning"},
                "dataset": {"name": score.env_id, "type": score.env_id},
                "metrics": [
                    {
                        "type": "normalized_score",
                        "value": score.mean,
                        "name": f"normalized score (%{seeds})",
                        "verified": False,
                    }
                ],
            }
        )
    return [{"name": display_name, "results": results}]


def card_metadata(
    model: str,
    display_name: str,
    scores: Sequence[EnvScore],
    namespace: str,
    base_model: str | None = None,
) -> dict[str, Any]:
    """The model card's YAML front matter (Hugging Face model card metadata).

    ``base_model``: the Hub model a fine-tune started from (Qwen3-1.7B, Apache-2.0, whose
    licence its fine-tune keeps); models trained from scratch carry the project's MIT.
    """
    env_ids = [score.env_id for score in scores]
    metadata_ = {
        "library_name": "transformers",
        "license": "apache-2.0" if base_model else "mit",
        "tags": COMMON_TAGS + MODEL_TAGS.get(model, []) + env_ids,
        "datasets": [f"{namespace}/{DATASETS_REPO}"],
    }
    if base_model:
        metadata_["base_model"] = base_model
    return metadata_ | {"model-index": model_index(display_name, scores)}


def model_card(
    model: str,
    display_name: str,
    scores: Sequence[EnvScore],
    average: EnvScore | None,
    trained_card: str,
    namespace: str,
    videos: Sequence[str],
    base_model: str | None = None,
) -> str:
    """README.md of a model's Hub folder: front matter, results, the trainer's own card."""
    front = yaml.safe_dump(
        card_metadata(model, display_name, scores, namespace, base_model),
        sort_keys=False,
        allow_unicode=True,
    )
    lines = [
        "---",
        front.rstrip("\n"),
        "---",
        "",
        f"# {display_name}",
        "",
        f"A multi-task imitation model from a reproduction of {PAPER}: one model for "
        f"{len(scores)} Gymnasium environments, trained by behaviour cloning on expert "
        "transitions. Scores are normalized: 100 · (return − random) / (expert − random), "
        "0% a uniform random policy and 100% the expert the data came from "
        "(`scores.json` of the bundle lists both per env).",
        "",
        "## Results",
        "",
        "| env | normalized score (%) | std | seeds | paper (%) |",
        "|:---|---:|---:|---:|---:|",
    ]
    for score in scores:
        lines.append(
            f"| {score.env_id} | {score.mean:.2f} | {_cell(score.std)} | "
            f"{_cell(score.n, '{}')} | {_cell(score.paper)} |"
        )
    if average:  # the mean over the envs shown (its n counts envs, not seeds)
        lines.append(f"| {average.env_id} | {average.mean:.2f} | | | {_cell(average.paper)} |")
    lines += [
        "",
        "Each seed is one independent evaluation episode with its own env seed, the model "
        "taking its most probable action. The model-index above holds the same numbers.",
        "",
        "## Use",
        "",
        f"With this project's package installed: `{LOAD_HINTS.get(model, 'load_policy')}` "
        "gives a policy for one env; to watch it play or record it:",
        "",
        "```",
        f"python -m workflow_scripts.enjoy --model {model} --model-dir . --env {scores[0].env_id} "
        "--episodes 1 --record episode.mp4",
        "```",
        "",
    ]
    if videos:
        lines += ["## Videos", "", "One evaluation episode per env (`videos/`):", ""]
        lines += [f"- [{Path(video).stem}]({video})" for video in videos]
        lines.append("")
    lines += ["## Model details", "", _demote_headings(trained_card).strip(), ""]
    return "\n".join(lines)


def _cell(value: float | int | None, form: str = "{:.2f}") -> str:
    return "" if value is None else form.format(value)


def _demote_headings(markdown: str) -> str:
    """The trainer's card inside ours: its headings two levels down."""
    return "\n".join(
        "##" + line if line.startswith("#") else line for line in markdown.splitlines()
    )


@dataclass
class BundleInputs:
    """Everything the bundle is made from (paths as the workflow writes them)."""

    model_dirs: dict[str, Path]
    table_csv: Path
    table_md: Path
    scores_json: Path
    envs: list[str]
    config: dict[str, Any]
    display_names: dict[str, str]
    plots: list[Path]
    extra_tables: list[Path]  # comparison.csv / .md
    videos_dir: Path | None = None
    video_seed: int | None = None
    minari_dir: Path | None = None
    namespace: str = DEFAULT_NAMESPACE


def build_bundle(inputs: BundleInputs, output: str | os.PathLike) -> Path:
    """Write the bundle to ``output`` (replacing it), through a temporary sibling folder."""
    output = Path(output)
    _check_inputs(inputs)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(
        tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    )
    try:
        _fill(partial, inputs)
        if output.exists():
            shutil.rmtree(output)
        os.replace(partial, output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return output


def _check_inputs(inputs: BundleInputs) -> None:
    files = [inputs.table_csv, inputs.table_md, inputs.scores_json, *inputs.plots]
    missing = [str(path) for path in [*files, *inputs.extra_tables] if not Path(path).is_file()]
    missing += [f"{path}/" for path in inputs.model_dirs.values() if not Path(path).is_dir()]
    if missing:
        raise BundleInputError(f"missing input(s): {', '.join(missing)}")
    for model in inputs.model_dirs:
        read_model_scores(inputs.table_csv, model)  # the column check, before any copying


def _fill(folder: Path, inputs: BundleInputs) -> None:
    for path in [inputs.table_csv, inputs.table_md, inputs.scores_json, *inputs.extra_tables]:
        shutil.copy2(path, folder / Path(path).name)
    (folder / "plots").mkdir()
    for path in inputs.plots:
        shutil.copy2(path, folder / "plots" / Path(path).name)
    (folder / "config.yaml").write_text(yaml.safe_dump(inputs.config, sort_keys=False))
    for model, model_dir in inputs.model_dirs.items():
        _model_folder(folder / "models" / model, model, model_dir, inputs)
    _datasets_folder(folder / "datasets", inputs)
    (folder / "README.md").write_text(_bundle_readme(inputs))
    _write_checksums(folder)


def _model_folder(target: Path, model: str, model_dir: Path, inputs: BundleInputs) -> None:
    shutil.copytree(model_dir, target)
    display_name = inputs.display_names.get(model, model)
    scores, average = read_model_scores(inputs.table_csv, model)
    videos = []
    if inputs.videos_dir is not None:
        for score in scores:
            source = model_video(model, score.env_id, inputs.video_seed, inputs.videos_dir)
            if not source.is_file():
                raise BundleInputError(f"missing video {source} (run: snakemake {source})")
            videos.append(_copy_video(source, target / "videos" / f"{score.env_id}.mp4"))
    trained_card = target / "README.md"
    card_text = trained_card.read_text() if trained_card.is_file() else ""
    section = inputs.config.get(model)
    base_model = hub_model_id(section) if model == "qwen" and section else None
    trained_card.write_text(
        model_card(
            model, display_name, scores, average, card_text, inputs.namespace, videos, base_model
        )
    )


def _copy_video(source: Path, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    if info_path(source).is_file():
        shutil.copy2(info_path(source), info_path(target))
    return f"{target.parent.name}/{target.name}"


def _datasets_folder(target: Path, inputs: BundleInputs) -> None:
    target.mkdir()
    exported = []
    if inputs.minari_dir is not None:
        for env_id in inputs.envs:
            source = inputs.minari_dir / env_id
            if not source.is_dir():
                raise BundleInputError(f"missing Minari export {source}/ (run: snakemake {source})")
            # The README tells users to load this id from this folder; make sure it is there.
            metadata_file = source / minari_dataset_id(env_id) / "data" / "metadata.json"
            if not metadata_file.is_file():
                raise BundleInputError(
                    f"{source}/ holds no Minari dataset {minari_dataset_id(env_id)} (no "
                    f"{metadata_file}; rebuild: snakemake --force {source})"
                )
            shutil.copytree(source, target / env_id)
            exported.append(env_id)
    videos = []
    if inputs.videos_dir is not None:
        for env_id in inputs.envs:
            source = expert_video(env_id, inputs.videos_dir)
            if source.is_file():
                videos.append(_copy_video(source, target / "videos" / f"{env_id}.mp4"))
    (target / "README.md").write_text(_datasets_readme(inputs, exported, videos))


def _datasets_readme(inputs: BundleInputs, exported: list[str], videos: list[str]) -> str:
    lines = [
        "---",
        yaml.safe_dump(
            {
                "license": "mit",
                "task_categories": ["reinforcement-learning"],
                "tags": ["minari", "offline-rl", "imitation-learning", "gymnasium", *inputs.envs],
            },
            sort_keys=False,
        ).rstrip("\n"),
        "---",
        "",
        "# Expert datasets",
        "",
        f"Expert transitions of {len(inputs.envs)} Gymnasium environments, one dataset per env, "
        f"collected with the experts' sampled actions as in {PAPER}. The scores that normalize "
        "every result (random 0%, expert 100%) are in the bundle's `scores.json`.",
        "",
    ]
    if exported:
        lines += [
            "Each env's folder is a Minari datasets root of its own, holding that env's "
            "dataset: point `MINARI_DATASETS_PATH` at the folder (before importing minari) "
            "and load the dataset by its id, e.g.",
            "",
            "```python",
            "import os",
            f'os.environ["MINARI_DATASETS_PATH"] = "{exported[0]}"',
            "import minari",
            f'dataset = minari.load_dataset("{minari_dataset_id(exported[0])}")',
            "```",
            "",
            "| env | `MINARI_DATASETS_PATH` | load with |",
            "|:---|:---|:---|",
            *[
                f'| {env_id} | `{env_id}` | `minari.load_dataset("{minari_dataset_id(env_id)}")` |'
                for env_id in exported
            ],
            "",
        ]
    else:
        commands = "\n".join(f"snakemake results/minari/{env_id}" for env_id in inputs.envs)
        lines += [
            "**The Minari exports are not in this bundle.** Build them from the run's HDF5",
            "datasets (`results/datasets/{env}.h5`) and publish again:",
            "",
            "```",
            commands,
            "snakemake results/publish --forcerun publish",
            "```",
            "",
            "(the publish rule includes `results/minari/{env}/` once the workflow has the",
            "Minari export rule; docs/publishing.md).",
            "",
        ]
    if videos:
        lines += ["Videos of each expert (`videos/`):", ""]
        lines += [f"- [{Path(video).stem}]({video})" for video in videos]
        lines.append("")
    return "\n".join(lines)


def _bundle_readme(inputs: BundleInputs) -> str:
    git = code_commit()
    commit = git["commit"] or "unknown (the code is not a git checkout)"
    if git["dirty"]:
        commit += " (with uncommitted changes to tracked files)"
    versions = package_versions(*BUNDLE_PACKAGES)
    models = ", ".join(
        f"`models/{model}/` ({inputs.display_names.get(model, model)})"
        for model in inputs.model_dirs
    )
    namespace = inputs.namespace
    lines = [
        "# Publish bundle",
        "",
        f"Results of a run of the reproduction of {PAPER}: {len(inputs.envs)} envs "
        f"({', '.join(inputs.envs)}), models {models}.",
        "",
        "## How it was made",
        "",
        f"- Made {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by "
        "`snakemake results/publish` (workflow_scripts.publish).",
        f"- Code: git commit {commit}.",
        "- Config: `config.yaml` here, the workflow config with every overlay merged.",
        "- Package versions: "
        + ", ".join(f"{name} {version}" for name, version in versions.items())
        + ".",
        "- Every file's SHA-256: `SHA256SUMS` (`sha256sum -c SHA256SUMS`).",
        "",
        "## Contents",
        "",
        "- `table.csv`, `table.md`: per env and model, the mean normalized score over the "
        "evaluation seeds, Welch's t-test, the paper's numbers.",
        "- `scores.json`: per env, the random and expert returns every score is scaled to.",
        "- `plots/`: normalized scores against the paper, the experts' training curves.",
        f"- {models}: one Hub model repository each (weights, config, model card with a "
        "model-index of the table's numbers, one video per env).",
        "- `datasets/`: one Hub dataset repository (Minari exports, or how to build them).",
        "",
        "## Upload",
        "",
        "Each part is uploaded as it is, from this folder (Hugging Face CLI, after "
        "`huggingface-cli login`):",
        "",
        "```",
        *[
            f"huggingface-cli upload {namespace}/{model} models/{model} . --repo-type model"
            for model in inputs.model_dirs
        ],
        f"huggingface-cli upload {namespace}/{DATASETS_REPO} datasets . --repo-type dataset",
        "```",
        "",
        f"The model cards name `{namespace}/{DATASETS_REPO}` as their dataset; publish with "
        "`--hub-namespace` set to your user or organisation to change it.",
        "",
    ]
    return "\n".join(lines)


def _write_checksums(folder: Path) -> None:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    lines = [f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}" for path in files]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _pairs(values: Sequence[str], flag: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            parser.error(f"{flag} takes MODEL=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", action="append", required=True, metavar="MODEL=DIR",
        help="a trained model's folder (repeat per model)",
    )  # fmt: skip
    parser.add_argument(
        "--display-name", action="append", default=[], metavar="MODEL=NAME",
        help="the model's name in its card (default: the model key)",
    )  # fmt: skip
    parser.add_argument("--envs", nargs="+", required=True, help="the configured env ids")
    parser.add_argument("--table-csv", required=True)
    parser.add_argument("--table-md", required=True)
    parser.add_argument("--scores", required=True, help="results/scores.json")
    parser.add_argument("--plots", nargs="*", default=[], help="PNG files for plots/")
    parser.add_argument(
        "--extra-tables", nargs="*", default=[], help="more tables for the top level"
    )
    parser.add_argument("--config-json", required=True, help="the run's config, as JSON text")
    parser.add_argument("--videos-dir", default=None, help="results/videos, to include videos")
    parser.add_argument(
        "--video-seed", type=int, default=None, help="the evaluation seed whose videos to include"
    )
    parser.add_argument(
        "--minari-dir", default=None, help="results/minari, to include every env's export"
    )
    parser.add_argument(
        "--hub-namespace", default=DEFAULT_NAMESPACE,
        help="the Hub user or organisation the cards and upload commands name",
    )  # fmt: skip
    parser.add_argument("--output", required=True, help="the bundle folder (results/publish)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.videos_dir is None) != (args.video_seed is None):
        parser.error("--videos-dir and --video-seed go together")
    inputs = BundleInputs(
        model_dirs={
            model: Path(path)
            for model, path in _pairs(args.model_dir, "--model-dir", parser).items()
        },
        table_csv=Path(args.table_csv),
        table_md=Path(args.table_md),
        scores_json=Path(args.scores),
        envs=list(args.envs),
        config=json.loads(args.config_json),
        display_names=_pairs(args.display_name, "--display-name", parser),
        plots=[Path(path) for path in args.plots],
        extra_tables=[Path(path) for path in args.extra_tables],
        videos_dir=None if args.videos_dir is None else Path(args.videos_dir),
        video_seed=args.video_seed,
        minari_dir=None if args.minari_dir is None else Path(args.minari_dir),
        namespace=args.hub_namespace,
    )
    try:
        output = build_bundle(inputs, args.output)
    except BundleInputError as error:
        parser.exit(1, f"publish: {error}\n")
    n_files = sum(1 for path in output.rglob("*") if path.is_file())
    print(f"publish bundle -> {output} ({n_files} files)")


if __name__ == "__main__":
    main()
