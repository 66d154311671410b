"""The Minari export: a collected dataset round-trips through ``minari.load_dataset``
episode by episode; old-format files, mismatched baselines and the rule's target."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import yaml
from packaging.requirements import Requirement

from tests.support.datasets import write_env_dataset
from tests.support.workflow import copy_workflow, output_of, snakemake
from workflow_scripts.baseline import compute_baseline
from workflow_scripts.dataset import DatasetError, read_info
from workflow_scripts.minari_export import export_minari, main, minari_dataset_id
from workflow_scripts.provenance import write_json
from workflow_scripts.rollout import collect_dataset

minari = pytest.importorskip(
    "minari", reason="minari is not installed (pip install -e '.[dev]' brings it)"
)

N_ACTIONS = {"CartPole-v1": 2, "FrozenLake-v1": 4}


def collect(folder, env_id, n_transitions=1500, n_envs=3):
    """A dataset collected by the workflow's own collector (random actions) and the env's
    random baseline, named as the workflow names them."""
    rng = np.random.default_rng(0)
    dataset = folder / "datasets" / f"{env_id}.h5"
    dataset.parent.mkdir(parents=True)
    collect_dataset(
        env_id,
        lambda observations: rng.integers(N_ACTIONS[env_id], size=len(observations)),
        dataset, n_transitions, n_envs, seed=5, progress=False,
        attrs={"expert_algo": "ppo", "expert_sampling": "stochastic policy"},
    )  # fmt: skip
    baseline = folder / "baselines" / f"{env_id}.json"
    baseline.parent.mkdir(parents=True)
    write_json(baseline, compute_baseline(env_id, 3, seed=0))
    return dataset, baseline


def flat_episodes(dataset):
    """The flat file's episodes, split at its done rows (independently of the export)."""
    with h5py.File(dataset, "r") as handle:
        arrays = {name: handle[name][:] for name in handle if name != "final_observation_rows"}
    ends = np.flatnonzero(arrays["terminated"] | arrays["truncated"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
        rows = slice(start, end + 1)
        yield {
            "observations": np.concatenate(
                [arrays["observations"][rows], arrays["final_observations"][index][None]]
            ),
            "actions": arrays["actions"][rows],
            "rewards": arrays["rewards"][rows],
            "terminations": arrays["terminated"][rows],
            "truncations": arrays["truncated"][rows],
        }


@pytest.mark.parametrize("env_id", ["CartPole-v1", "FrozenLake-v1"])
def test_every_episode_round_trips_through_minari(tmp_path, monkeypatch, env_id):
    dataset, baseline = collect(tmp_path, env_id)
    output = tmp_path / "minari" / env_id
    summary = export_minari(dataset, baseline, output, batch_rows=200)  # several batches
    assert sorted(path.name for path in output.parent.iterdir()) == [env_id]  # no leftovers

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(output))
    loaded = minari.load_dataset(minari_dataset_id(env_id))
    expected = list(flat_episodes(dataset))
    assert loaded.total_steps == summary["n_steps"] == 1500
    assert loaded.total_episodes == summary["n_episodes"] == len(expected)
    for episode, rows in zip(loaded.iterate_episodes(), expected, strict=True):
        assert len(episode.observations) == len(episode.actions) + 1  # T + 1 observations
        for field, values in rows.items():
            stored = getattr(episode, field)
            assert stored.dtype == values.dtype, field
            np.testing.assert_array_equal(stored, values, err_msg=field)

    info = read_info(dataset)
    random_mean = json.loads(baseline.read_text())["mean_return"]
    metadata = loaded.storage.metadata
    assert metadata["ref_min_score"] == random_mean
    assert metadata["ref_max_score"] == info.expert_mean_return
    assert minari.get_normalized_score(loaded, np.array([info.expert_mean_return])) == 1.0
    assert metadata["algorithm_name"] == "ppo expert (stochastic policy)"
    assert metadata["code_permalink"].startswith(("git ", "gym-llm-bench "))
    assert metadata["requirements"] == ["gymnasium==0.29.1"]
    assert metadata["source_dataset_sha256"] and metadata["source_format_version"] == 2
    assert loaded.spec.env_spec.id == env_id
    assert loaded.spec.env_spec.max_episode_steps == info.attrs["max_episode_steps"]
    assert loaded.observation_space == info.observation_space
    assert loaded.recover_environment().spec.max_episode_steps == info.attrs["max_episode_steps"]


def test_a_dataset_without_final_observations_is_refused_with_its_rebuild(tmp_path, capsys):
    """A format-1 file (flat arrays only, as the collector wrote them before format 2)."""
    _, baseline = collect(tmp_path, "CartPole-v1", n_transitions=600)
    old = tmp_path / "old" / "CartPole-v1.h5"
    old.parent.mkdir()
    write_env_dataset(old, "CartPole-v1", 600)
    output = tmp_path / "minari" / "CartPole-v1"
    with pytest.raises(DatasetError) as refused:
        export_minari(old, baseline, output)
    message = str(refused.value)
    assert message.startswith(f"{old}: dataset format 1 has no final observations")
    assert "snakemake --force results/datasets/CartPole-v1.h5" in message
    assert not output.parent.exists()
    # The command line says the same and exits 1.
    args = ["--dataset", str(old), "--baseline", str(baseline), "--output", str(output)]
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 1
    assert f"{old}: dataset format 1 has no final observations" in capsys.readouterr().err


def test_a_baseline_of_another_env_or_cap_is_refused(tmp_path):
    dataset, baseline = collect(tmp_path, "CartPole-v1", n_transitions=600)
    document = json.loads(baseline.read_text())
    write_json(baseline, dict(document, env_id="Acrobot-v1"))
    with pytest.raises(DatasetError, match="is the baseline of 'Acrobot-v1', not 'CartPole-v1'"):
        export_minari(dataset, baseline, tmp_path / "out")
    write_json(baseline, dict(document, max_episode_steps=200))
    with pytest.raises(DatasetError, match="capped at 200 steps, the dataset's at 500"):
        export_minari(dataset, baseline, tmp_path / "out")


def test_an_export_replaces_an_older_one(tmp_path):
    dataset, baseline = collect(tmp_path, "CartPole-v1", n_transitions=600)
    output = tmp_path / "minari" / "CartPole-v1"
    (output / "stale").mkdir(parents=True)
    export_minari(dataset, baseline, output)
    assert sorted(path.name for path in output.iterdir()) == ["gym-llm-bench"]


def test_the_rule_writes_the_env_target(tmp_path):
    """``snakemake results/minari/CartPole-v1`` from a dataset and baseline already made
    (``--allowed-rules`` keeps the upstream rules out of the plan)."""
    workdir = copy_workflow(tmp_path / "workflow")
    config = {"envs": ["CartPole-v1"], "models": [], "evaluation": {"seeds": [0]}}
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    collect(workdir / "results", "CartPole-v1", n_transitions=600)
    result = snakemake(
        workdir, "results/minari/CartPole-v1", "--cores", "1",
        "--allowed-rules", "minari_export", "--configfile", "tiny.yaml",
    )  # fmt: skip
    assert result.returncode == 0, output_of(result)
    data = workdir / "results/minari/CartPole-v1/gym-llm-bench/cartpole-v1/expert-v0/data"
    assert (data / "main_data.hdf5").exists() and (data / "metadata.json").exists()
    log = (workdir / "logs/minari_export/CartPole-v1.log").read_text()
    assert "MINARI_DATASETS_PATH=results/minari/CartPole-v1" in log


def test_the_rule_environment_mirrors_the_pins(repo_root):
    """envs/minari.yaml: the core pins of pyproject.toml plus its minari extra."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    expected = project["dependencies"] + project["optional-dependencies"]["minari"]
    conda_env = yaml.safe_load((repo_root / "envs" / "minari.yaml").read_text())
    (pip,) = [item["pip"] for item in conda_env["dependencies"] if isinstance(item, dict)]
    assert "-e .." in pip
    listed = [line for line in pip if not line.startswith("-")]
    assert sorted(map(str, map(Requirement, listed))) == sorted(
        map(str, map(Requirement, expected))
    )
    # The tests' own install brings the extra, so the round trip runs in CI.
    (dev_self,) = [
        Requirement(item)
        for item in project["optional-dependencies"]["dev"]
        if Requirement(item).name == "gym-llm-bench"
    ]
    assert "minari" in dev_self.extras
