"""The tiny random Qwen3 trainer: trains on CPU, checkpoints, resumes, refuses bad runs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import workflow_scripts.qwen.train as train_module
from tests.qwen.conftest import train_args
from workflow_scripts.qwen.model import AssistantTokenLoss
from workflow_scripts.qwen.policy import load_policy
from workflow_scripts.qwen.train import TrainSettings
from workflow_scripts.train_qwen import main as train_cli
from workflow_scripts.training import (
    CheckpointMismatch,
    TrainingDiverged,
    list_checkpoints,
    parse_settings,
)


def test_training_lowers_the_loss_and_writes_a_self_contained_folder(trained, tmp_path):
    summary = json.loads((trained / "training.json").read_text())
    losses = [loss for _, loss in summary["losses_this_attempt"]]
    assert [step for step, _ in summary["losses_this_attempt"]] == [1, 2, 3, 4, 5, 6]
    assert losses[0] > 10  # about ln(151936) = 11.9 at random init
    assert losses[-1] < losses[0] - 2
    assert summary["resumed_from_step"] is None
    for name in ("config.json", "model.safetensors", "tokenizer.json", "qwen_envs.json"):
        assert (trained / name).is_file(), name
    envs = json.loads((trained / "qwen_envs.json").read_text())
    assert sorted(envs["envs"]) == ["CartPole-v1", "FrozenLake-v1"]
    assert envs["envs"]["CartPole-v1"]["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
    assert list((trained.parent / "tensorboard").glob("events.out.tfevents.*"))
    assert [step for step, _ in list_checkpoints(trained.parent / "checkpoints")] == [4, 6]
    with pytest.raises(KeyError, match="was not trained on 'Taxi-v3'"):
        load_policy(trained, "Taxi-v3")


def test_resume_after_a_stop_continues_from_the_checkpoint(inputs, trained, tmp_path):
    # Stopped after step 4 (as a kill right after that checkpoint would leave it).
    train_cli(train_args(inputs, tmp_path, **{"--max-steps-this-run": "4"}))
    assert not (tmp_path / "final").exists()
    assert [step for step, _ in list_checkpoints(tmp_path / "checkpoints")] == [2, 4]

    train_cli(train_args(inputs, tmp_path))
    summary = json.loads((tmp_path / "final" / "training.json").read_text())
    assert summary["resumed_from_step"] == 4
    assert [step for step, _ in summary["losses_this_attempt"]] == [5, 6]
    # Same samples, same optimizer state: the resumed run ends where the uninterrupted one did.
    resumed = load_file(tmp_path / "final" / "model.safetensors")
    reference = load_file(trained / "model.safetensors")
    assert resumed.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=1e-5, atol=1e-6)

    with pytest.raises(CheckpointMismatch, match="learning_rate: checkpoint 0.01 vs now 0.02"):
        train_module.train(
            parse_settings(
                TrainSettings,
                "train_qwen",
                train_args(inputs, tmp_path, **{"--learning-rate": "2e-2"}),
            )
        )


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(
    inputs, tmp_path, monkeypatch
):
    original_forward = AssistantTokenLoss.forward
    calls = {"n": 0}

    def nan_from_step_three(self, *args, **kwargs):
        calls["n"] += 1
        loss_sum, n_tokens = original_forward(self, *args, **kwargs)
        if calls["n"] > 4:  # two micro-batches per step
            loss_sum = loss_sum * float("nan")
        return loss_sum, n_tokens

    monkeypatch.setattr(AssistantTokenLoss, "forward", nan_from_step_three)
    with pytest.raises(TrainingDiverged, match=r"step 3 \(loss nan.*step_00000002"):
        train_module.train(
            parse_settings(TrainSettings, "train_qwen", train_args(inputs, tmp_path))
        )
    assert [step for step, _ in list_checkpoints(tmp_path / "checkpoints")] == [2]
    assert not (tmp_path / "final").exists()


def test_cli_rejects_bad_arguments(inputs, tmp_path):
    with pytest.raises(SystemExit):
        parse_settings(
            TrainSettings, "train_qwen", train_args(inputs, tmp_path, **{"--max-steps": "0"})
        )
    with pytest.raises(SystemExit):
        parse_settings(
            TrainSettings,
            "train_qwen",
            train_args(inputs, tmp_path) + ["--model-name-or-path", "Qwen/Qwen3-1.7B"],
        )
