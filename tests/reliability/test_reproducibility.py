"""Reproducibility: the same config and seeds give the same bytes; every output says what it
was made from; a change of config or code reruns exactly what depends on it.
"""

from __future__ import annotations

import json
import shutil

import h5py
import pytest
import yaml

from tests.reliability.reliability_helpers import (
    final_targets,
    snapshot,
    tiny_config,
    write_overlay,
)
from tests.support.workflow import REPO_ROOT, job_counts, output_of, snakemake
from workflow_scripts.provenance import sha256_file, sha256_tree

ENV = "CartPole-v1"
EVALUATIONS = [f"eval/dm/{ENV}/seed{seed}.json" for seed in (0, 1)]


def without_timings(record: dict) -> dict:
    """An evaluation record without its wall-clock fields (``*_time_s``)."""
    return {key: value for key, value in record.items() if not key.endswith("_time_s")}


def test_rerun_gives_a_byte_identical_dataset_model_and_evaluations(built_copy):
    """Collection, DM training and evaluation redone from the same expert on CPU."""
    workdir = built_copy
    results = workdir / "results"
    before = snapshot(results)
    records = {name: json.loads((results / name).read_text()) for name in EVALUATIONS}

    # Targets first: --forcerun takes every name that follows it up to the next option.
    snakemake(workdir, "--profile", "profiles/local", "--cores", "2", *final_targets(tiny_config()),
              "--forcerun", "rollout", "--configfile", "tiny.yaml", check=True)  # fmt: skip

    after = snapshot(results)
    dataset = f"datasets/{ENV}.h5"
    assert after[dataset] == before[dataset]  # byte-identical
    weights = "models/dm/final/model.safetensors"
    assert after[weights] == before[weights]
    assert (results / "models/dm/final/training.json").stat().st_mtime > 0  # rewritten
    for name in EVALUATIONS:
        rerun = json.loads((results / name).read_text())
        assert without_timings(rerun) == without_timings(records[name])


def test_every_output_records_its_inputs_and_package_versions(built_workflow):
    results = built_workflow / "results"
    expert_dir = results / "experts" / ENV

    hyperparams = yaml.safe_load((results / f"hyperparams/{ENV}.yml").read_text())
    assert hyperparams["versions"]["stable-baselines3"] and hyperparams["provenance"]

    expert = json.loads((expert_dir / "expert.json").read_text())
    assert expert["hyperparams_sha256"] == sha256_file(results / f"hyperparams/{ENV}.yml")
    assert expert["model_sha256"] == sha256_file(expert_dir / f"{ENV}.zip")
    assert expert["versions"]["torch"]

    baseline = json.loads((results / f"baselines/{ENV}.json").read_text())
    assert baseline["versions"]["gymnasium"] == "0.29.1" and baseline["seed"] >= 0

    with h5py.File(results / f"datasets/{ENV}.h5", "r") as handle:
        attrs = dict(handle.attrs)
    assert attrs["expert_sha256"] == sha256_file(expert_dir / f"{ENV}.zip")
    assert json.loads(attrs["versions"])["h5py"]

    from workflow_scripts.dataset import read_info
    from workflow_scripts.provenance import sha256_json

    training = json.loads((results / "models/dm/final/training.json").read_text())
    dataset_info = read_info(results / f"datasets/{ENV}.h5")
    assert training["datasets"] == [
        {
            "path": f"results/datasets/{ENV}.h5",
            "env_id": ENV,
            "n_transitions": dataset_info.n_transitions,
            "expert_mean_return": dataset_info.expert_mean_return,
            "attrs_sha256": sha256_json(dataset_info.attrs),
        }  # fmt: skip
    ]
    assert training["versions"]["transformers"] and training["fingerprint_sha256"]

    for name in EVALUATIONS:
        record = json.loads((results / name).read_text())
        assert record["model_sha256"] == sha256_tree(
            results / "models/dm/final", exclude=("training.json",)
        )
        assert record["baseline_sha256"] == sha256_file(results / f"baselines/{ENV}.json")
        assert record["dataset_attrs_sha256"] == sha256_json(dataset_info.attrs)
        assert record["versions"]["torch"]


@pytest.fixture
def built_copy_with_code(built_copy):
    """:func:`built_copy` with its own copy of the package, identical to the repository's."""
    shutil.copytree(
        REPO_ROOT / "workflow_scripts",
        built_copy / "workflow_scripts",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return built_copy


def append_comment(path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


# change → jobs a dry run plans (downstream of the change, and nothing else)
CHANGES = {
    "nothing": (None, {}),
    "dm.learning_rate": ({"dm": {"learning_rate": 1.0e-3}}, {"train_dm": 1, "evaluate": 2}),
    "evaluation.seeds": ({"evaluation": {"seeds": [0, 1, 2]}}, {"evaluate": 1}),
    "dataset.n_transitions": (
        {"dataset": {"n_transitions": 2500}},
        {"rollout": 1, "train_dm": 1, "evaluate": 2},
    ),
    "code of the baseline": ("workflow_scripts/baseline.py", {"baseline": 1, "evaluate": 2}),
    "code of the DM policy": ("workflow_scripts/dm/policy.py", {"evaluate": 2}),
    "code of the dataset format": (
        "workflow_scripts/dataset.py",
        {"rollout": 1, "train_dm": 1, "evaluate": 2},
    ),
}


# One dry run each (~5 s); the default run keeps one config and two code changes.
IN_DEFAULT_RUN = ("nothing", "dm.learning_rate", "code of the baseline", "code of the DM policy")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(name, marks=() if name in IN_DEFAULT_RUN else pytest.mark.slow)
        for name in CHANGES
    ],
)
def test_a_change_reruns_exactly_what_depends_on_it(built_copy_with_code, change):
    workdir = built_copy_with_code
    edit, expected = CHANGES[change]
    config = tiny_config()
    if isinstance(edit, dict):
        for section, values in edit.items():
            config[section] = {**config.get(section, {}), **values}
    elif edit is not None:
        append_comment(workdir / edit)
    overlay = write_overlay(workdir, config, "changed.yaml")

    dry_run = snakemake(workdir, "-n", *final_targets(config), "--configfile", overlay)
    assert dry_run.returncode == 0, dry_run.stderr
    assert job_counts(output_of(dry_run)) == expected
