"""The publish bundle on a fake results tree: model cards whose model-index equals table.csv,
front matter that parses, files copied and checksummed, Minari folders or a pointer, bad
inputs named, and the folder replaced only when complete."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.eval.eval_inputs import write_scores
from tests.support.workflow import copy_workflow, job_counts, planned_outputs, snakemake
from workflow_scripts import aggregate
from workflow_scripts.minari_export import minari_dataset_id
from workflow_scripts.publish import (
    BundleInputError,
    BundleInputs,
    build_bundle,
    main,
    read_model_scores,
)
from workflow_scripts.video import expert_video, info_path, model_video

ENVS = ["CartPole-v1", "Pendulum-v1"]
MODELS = ["dm", "qwen"]
SEEDS = [0, 1, 2]
DISPLAY_NAMES = {"dm": "DM-tiny", "qwen": "Qwen3-tiny"}


@pytest.fixture
def results(tmp_path) -> Path:
    """A results tree as the workflow leaves it, with tiny stand-ins for big files."""
    root = tmp_path / "results"
    rng = np.random.default_rng(0)
    write_scores(
        root / "eval",
        {
            (model, env_id): list(rng.normal(80 if model == "dm" else 40, 10, len(SEEDS)))
            for model in MODELS
            for env_id in ENVS
        },
    )
    records = sorted(str(path) for path in (root / "eval").rglob("seed*.json"))
    aggregate.main(
        ["--records", *records, "--models", *MODELS, "--envs", *ENVS,
         "--seeds", *map(str, SEEDS), "--table-csv", str(root / "table.csv"),
         "--table-md", str(root / "table.md")]
    )  # fmt: skip
    for model in MODELS:
        folder = root / "models" / model / "final"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model_type": model}))
        (folder / "model.safetensors").write_bytes(b"weights of " + model.encode())
        (folder / "training.json").write_text("{}")
        (folder / "README.md").write_text(f"# The {model} trainer's card\n\nArchitecture.\n")
        for env_id in ENVS:
            video = model_video(model, env_id, SEEDS[0], root / "videos")
            video.parent.mkdir(parents=True, exist_ok=True)
            video.write_bytes(b"mp4")
            info_path(video).write_text("{}")
    for env_id in ENVS:
        expert_video(env_id, root / "videos").parent.mkdir(parents=True, exist_ok=True)
        expert_video(env_id, root / "videos").write_bytes(b"mp4")
    (root / "scores.json").write_text(json.dumps({"CartPole-v1": {"random": 22.0}}))
    (root / "plots").mkdir()
    for name in ("normalized_scores.png", "expert_curves.png"):
        (root / "plots" / name).write_bytes(b"\x89PNG")
    return root


def inputs(root: Path, **changes) -> BundleInputs:
    values = dict(
        model_dirs={model: root / "models" / model / "final" for model in MODELS},
        table_csv=root / "table.csv",
        table_md=root / "table.md",
        scores_json=root / "scores.json",
        envs=ENVS,
        config={"envs": ENVS, "models": MODELS, "qwen": {"model_name_or_path": "Qwen/Qwen3-1.7B",
                                                          "random_init": None}},
        display_names=DISPLAY_NAMES,
        plots=sorted((root / "plots").glob("*.png")),
        extra_tables=[],
        videos_dir=root / "videos",
        video_seed=SEEDS[0],
    )  # fmt: skip
    return BundleInputs(**(values | changes))


def front_matter(card: Path) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card.read_text(), re.DOTALL)
    assert match, f"{card} has no YAML front matter"
    return yaml.safe_load(match.group(1))


def table_means(table_csv: Path, model: str) -> dict[str, float]:
    with table_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["env_id"]: float(row[f"{model}_mean"]) for row in rows if row["env_id"] != "Average"
    }


def test_model_cards_hold_the_tables_numbers(results, tmp_path):
    bundle = build_bundle(inputs(results), tmp_path / "publish")
    for model in MODELS:
        metadata = front_matter(bundle / "models" / model / "README.md")
        (index,) = metadata["model-index"]
        assert index["name"] == DISPLAY_NAMES[model]
        found = {}
        for result in index["results"]:
            assert result["task"]["type"] == "reinforcement-learning"
            assert result["dataset"]["name"] == result["dataset"]["type"]
            (metric,) = result["metrics"]
            assert metric["type"] == "normalized_score"
            found[result["dataset"]["type"]] = metric["value"]
        assert found == table_means(results / "table.csv", model)  # exactly, unrounded
        assert metadata["library_name"] == "transformers"
        assert {"reinforcement-learning", "imitation-learning", *ENVS} <= set(metadata["tags"])
        assert metadata["datasets"] == ["gym-llm-bench/expert-datasets"]
    dm_card = front_matter(bundle / "models/dm/README.md")
    qwen_card = front_matter(bundle / "models/qwen/README.md")
    assert "decision-transformer" in dm_card["tags"] and dm_card["license"] == "mit"
    assert qwen_card["base_model"] == "Qwen/Qwen3-1.7B" and qwen_card["license"] == "apache-2.0"


def test_bundle_holds_models_results_and_how_it_was_made(results, tmp_path):
    bundle = build_bundle(inputs(results), tmp_path / "publish")
    dm = bundle / "models" / "dm"
    assert (dm / "model.safetensors").read_bytes() == b"weights of dm"
    assert (dm / "config.json").exists() and (dm / "training.json").exists()
    card = (dm / "README.md").read_text()
    assert "The dm trainer's card" in card  # the trainer's card, kept below ours
    assert all((dm / "videos" / f"{env_id}.mp4").exists() for env_id in ENVS)
    assert (dm / "videos" / "CartPole-v1.json").exists()
    for name in ("table.csv", "table.md", "scores.json", "config.yaml", "README.md"):
        assert (bundle / name).is_file(), name
    assert sorted(path.name for path in (bundle / "plots").iterdir()) == [
        "expert_curves.png", "normalized_scores.png",
    ]  # fmt: skip
    assert yaml.safe_load((bundle / "config.yaml").read_text())["envs"] == ENVS
    readme = (bundle / "README.md").read_text()
    assert "git commit" in readme and "gymnasium 0.29.1" in readme
    assert "huggingface-cli upload gym-llm-bench/dm models/dm . --repo-type model" in readme
    # Every file is listed with its hash.
    listed = {}
    for line in (bundle / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert set(listed) == files - {"SHA256SUMS"}
    card_bytes = (dm / "README.md").read_bytes()
    assert listed["models/dm/README.md"] == hashlib.sha256(card_bytes).hexdigest()


def test_without_minari_exports_the_datasets_folder_says_how_to_build_them(results, tmp_path):
    bundle = build_bundle(inputs(results), tmp_path / "publish")
    datasets = bundle / "datasets"
    readme = (datasets / "README.md").read_text()
    assert "snakemake results/minari/CartPole-v1" in readme
    assert "snakemake results/minari/Pendulum-v1" in readme
    assert (datasets / "videos" / "CartPole-v1.mp4").exists()  # the expert's video
    assert yaml.safe_load(readme.split("---")[1])["task_categories"] == ["reinforcement-learning"]


def write_minari_export(folder: Path, env_id: str) -> Path:
    """A stand-in for ``results/minari/{env}``: a Minari datasets root holding the env's
    dataset id (``<id>/data/metadata.json``), as minari_export lays it out."""
    data = folder / minari_dataset_id(env_id) / "data"
    data.mkdir(parents=True)
    (data / "metadata.json").write_text(json.dumps({"env": env_id}))
    return folder


def test_minari_exports_are_copied_and_the_readme_loads_each(results, tmp_path):
    for env_id in ENVS:
        write_minari_export(results / "minari" / env_id, env_id)
    bundle = build_bundle(inputs(results, minari_dir=results / "minari"), tmp_path / "publish")
    for env_id in ENVS:
        copied = bundle / "datasets" / env_id / minari_dataset_id(env_id) / "data"
        assert json.loads((copied / "metadata.json").read_text()) == {"env": env_id}
    readme = (bundle / "datasets" / "README.md").read_text()
    # Each env's folder is its own Minari root: per env, its path and its dataset id.
    assert 'os.environ["MINARI_DATASETS_PATH"] = "CartPole-v1"' in readme
    assert 'minari.load_dataset("gym-llm-bench/cartpole-v1/expert-v0")' in readme
    assert (
        '| Pendulum-v1 | `Pendulum-v1` | `minari.load_dataset("gym-llm-bench/pendulum-v1/expert-v0")` |'
        in readme
    )


def test_a_minari_export_without_the_envs_dataset_id_is_named(results, tmp_path):
    for env_id in ENVS:
        write_minari_export(results / "minari" / env_id, env_id)
    other = results / "minari" / "Pendulum-v1"
    (other / minari_dataset_id("Pendulum-v1") / "data" / "metadata.json").unlink()
    with pytest.raises(BundleInputError, match="holds no Minari dataset gym-llm-bench/pendulum-v1"):
        build_bundle(inputs(results, minari_dir=results / "minari"), tmp_path / "publish")


def test_a_table_without_the_models_column_is_named(results, tmp_path, capsys):
    table = results / "table.csv"
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [name for name in rows[0] if not name.startswith("qwen_")]
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(BundleInputError, match=rf"{re.escape(str(table))}: no column 'qwen_mean'"):
        read_model_scores(table, "qwen")
    output = tmp_path / "publish"
    argv = ["--model-dir", f"qwen={results / 'models/qwen/final'}", "--envs", *ENVS,
            "--table-csv", str(table), "--table-md", str(results / "table.md"),
            "--scores", str(results / "scores.json"), "--config-json", "{}",
            "--output", str(output)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    assert f"{table}: no column 'qwen_mean'" in capsys.readouterr().err
    assert not output.exists()


def test_a_non_number_in_the_table_is_named(results):
    table = results / "table.csv"
    table.write_text(table.read_text().replace("CartPole-v1,", "CartPole-v1,oops", 1))
    with pytest.raises(BundleInputError, match=r"column 'qwen_mean', row CartPole-v1"):
        read_model_scores(table, "qwen")


def test_a_failed_publish_keeps_the_previous_bundle(results, tmp_path):
    output = tmp_path / "publish"
    build_bundle(inputs(results), output)
    before = (output / "SHA256SUMS").read_text()
    model_video("dm", "Pendulum-v1", SEEDS[0], results / "videos").unlink()
    with pytest.raises(BundleInputError, match="missing video"):
        build_bundle(inputs(results), output)
    assert (output / "SHA256SUMS").read_text() == before
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_cli_builds_the_bundle(results, tmp_path, capsys):
    output = tmp_path / "publish"
    config = {"envs": ENVS, "models": ["dm"]}
    main(["--model-dir", f"dm={results / 'models/dm/final'}", "--display-name", "dm=DM-tiny",
          "--envs", *ENVS, "--table-csv", str(results / "table.csv"),
          "--table-md", str(results / "table.md"), "--scores", str(results / "scores.json"),
          "--plots", *map(str, sorted((results / "plots").glob("*.png"))),
          "--config-json", json.dumps(config), "--videos-dir", str(results / "videos"),
          "--video-seed", "0", "--hub-namespace", "someone", "--output", str(output)])  # fmt: skip
    assert "publish bundle ->" in capsys.readouterr().out
    assert sorted(path.name for path in (output / "models").iterdir()) == ["dm"]
    metadata = front_matter(output / "models/dm/README.md")
    assert metadata["datasets"] == ["someone/expert-datasets"]
    assert metadata["model-index"][0]["name"] == "DM-tiny"


def test_publish_rule_over_finished_demo_results(tmp_path):
    """``snakemake results/publish`` on a demo results tree where everything else is done:
    only the publish job runs, and the cards carry the table's numbers."""
    workdir = copy_workflow(tmp_path / "demo")
    demo = ["--configfile", "config.demo.yaml"]
    plan = snakemake(workdir, "-n", "--forceall", "results/publish", *demo)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    outputs = planned_outputs(plan.stdout)
    assert outputs[-1] == "results/publish"
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config.update(yaml.safe_load((workdir / "config.demo.yaml").read_text()))
    envs, models = config["envs"], config["models"]
    fake = tmp_path / "fake_records"
    write_scores(fake, {(model, env_id): [50.0, 60.0 + len(model)] for model in models
                        for env_id in envs})  # fmt: skip
    start = 1_700_000_000
    for index, path in enumerate(outputs[:-1]):
        output = workdir / path
        output.parent.mkdir(parents=True, exist_ok=True)
        if path.startswith("results/models/") and path.endswith("final"):
            output.mkdir()
            (output / "config.json").write_text("{}")
        elif path.startswith("results/minari/"):  # a Minari export: a datasets root folder
            write_minari_export(output, Path(path).name)
        elif path == "results/table.csv":
            records = sorted(str(p) for p in fake.rglob("seed*.json"))
            aggregate.main(["--records", *records, "--models", *models, "--envs", *envs,
                            "--seeds", "0", "1", "--table-csv", str(output),
                            "--table-md", str(workdir / "results/table.md")])  # fmt: skip
        elif not output.exists():
            output.write_text("placeholder")
        os.utime(output, (start + index, start + index))
    assert job_counts(snakemake(workdir, "-n", "results/publish", *demo).stdout) == {"publish": 1}
    run = snakemake(workdir, "results/publish", "--cores", "1", *demo)
    assert run.returncode == 0, run.stdout + run.stderr
    bundle = workdir / "results/publish"
    for model in models:
        (index,) = front_matter(bundle / "models" / model / "README.md")["model-index"]
        values = {r["dataset"]["type"]: r["metrics"][0]["value"] for r in index["results"]}
        assert values == table_means(workdir / "results/table.csv", model)
        assert index["name"] == config[model]["display_name"]
        assert sorted(p.name for p in (bundle / "models" / model / "videos").glob("*.mp4")) == [
            f"{env_id}.mp4" for env_id in sorted(envs)
        ]
    assert yaml.safe_load((bundle / "config.yaml").read_text())["envs"] == envs
    assert (bundle / "comparison.md").exists() and (bundle / "plots/expert_curves.png").exists()
    # The Minari exports when the workflow has their rule, else the pointer to it.
    datasets = bundle / "datasets"
    exported = [env_id for env_id in envs if (datasets / env_id).is_dir()]
    assert exported in ([], envs)
    if not exported:
        assert f"snakemake results/minari/{envs[0]}" in (datasets / "README.md").read_text()
