"""fetch_model: a hub model into a local folder, whole or not at all, resumable; offline training.

The hub is not reachable from CI, so ``snapshot_download`` is replaced by a stand-in that
writes what a download writes; the rule wiring is checked in the paper config's plan.
"""

from __future__ import annotations

import json

import pytest

import workflow_scripts.fetch_model as fetch
from tests.support.workflow import copy_workflow, snakemake


def fake_download(files: dict[str, str], calls: list):
    def snapshot_download(repo_id, revision, local_dir, allow_patterns):
        calls.append((repo_id, revision, str(local_dir)))
        local_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (local_dir / name).write_text(text)
        return str(local_dir)

    return snapshot_download


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    def install(files):
        calls = []
        monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download(files, calls))
        return calls

    return install


MODEL_FILES = {"config.json": "{}", "model.safetensors": "weights", "tokenizer.json": "{}"}


def test_a_download_becomes_the_model_folder_with_its_provenance(hub, tmp_path):
    calls = hub(MODEL_FILES)
    folder = fetch.fetch_model("Qwen/Qwen3-1.7B", tmp_path / "base")
    assert calls == [("Qwen/Qwen3-1.7B", None, str(tmp_path / ".base.partial"))]
    record = json.loads((folder / fetch.PROVENANCE_FILE).read_text())
    assert record["repo_id"] == "Qwen/Qwen3-1.7B" and record["revision"] == "main"
    assert record["files"]["model.safetensors"] == len("weights")
    assert not (tmp_path / ".base.partial").exists()


@pytest.mark.parametrize(
    "files, message",
    [
        ({"model.safetensors": "w"}, "no config.json"),
        ({"config.json": "{}"}, r"no \*.safetensors weights"),
        (
            {"config.json": "{}", "model-00001-of-00002.safetensors": "w",
             "model.safetensors.index.json": json.dumps({"weight_map": {
                 "a": "model-00001-of-00002.safetensors",
                 "b": "model-00002-of-00002.safetensors"}})},
            "shards missing from the download",
        ),
    ],
    ids=["no config", "no weights", "missing shard"],
)  # fmt: skip
def test_an_incomplete_download_is_not_published(hub, tmp_path, files, message):
    hub(files)
    with pytest.raises(fetch.FetchError, match=message):
        fetch.fetch_model("Qwen/Qwen3-1.7B", tmp_path / "base")
    assert not (tmp_path / "base").exists()
    assert (tmp_path / ".base.partial").is_dir()  # kept: a rerun resumes the download


def test_an_unreachable_hub_is_one_line_naming_the_way_out(monkeypatch, tmp_path, capsys):
    import huggingface_hub

    def offline(**kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(SystemExit) as stopped:
        fetch.main(["--model", "Qwen/Qwen3-1.7B", "--output", str(tmp_path / "base")])
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    assert "cannot download Qwen/Qwen3-1.7B" in error and "local folder" in error


def test_the_paper_plan_fetches_once_and_trains_and_evaluates_offline(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    result = snakemake(workdir, "-n", "-p", "results/eval/qwen/CartPole-v1/seed0.json")
    output = result.stdout
    assert "rule fetch_qwen:" in output  # once, before the GPU job (localrule)
    commands = [line for line in output.splitlines() if "python -m workflow_scripts" in line]
    train = next(line for line in commands if "train_qwen" in line)
    assert "HF_HUB_OFFLINE=1 python -m workflow_scripts.launch" in train
    assert "--model-name-or-path results/models/qwen/base" in train
    assert "Qwen/Qwen3-1.7B" not in train
    evaluate = next(line for line in commands if "workflow_scripts.evaluate" in line)
    assert "HF_HUB_OFFLINE=1 python -m workflow_scripts.evaluate" in evaluate
