"""A tiny random Qwen3: trains on CPU, checkpoints, resumes, saves, and acts through the policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import workflow_scripts.qwen.train as train_module
from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import TINY_QWEN3
from workflow_scripts.envs import make_env
from workflow_scripts.policy import PolicyFailure
from workflow_scripts.qwen.chat_format import assistant_message, user_message
from workflow_scripts.qwen.model import AssistantTokenLoss, build_random_qwen3
from workflow_scripts.qwen.policy import QwenPolicy, load_policy
from workflow_scripts.qwen.train import TrainSettings
from workflow_scripts.qwen_budgets import main as budgets_cli
from workflow_scripts.train_qwen import main as train_cli
from workflow_scripts.training import (
    CheckpointMismatch,
    TrainingDiverged,
    list_checkpoints,
    parse_settings,
)

MAX_SEQ_LENGTH = 384


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen_inputs")
    datasets = [
        write_env_dataset(folder / "CartPole-v1.h5", "CartPole-v1", 400, 0, policy="heuristic"),
        write_env_dataset(folder / "FrozenLake-v1.h5", "FrozenLake-v1", 300, 1),
    ]
    budgets = folder / "budgets.json"
    budgets_cli(
        ["--datasets", *map(str, datasets), "--max-seq-length", str(MAX_SEQ_LENGTH)]
        + ["--sample-rows", "400", "--output", str(budgets)]
    )
    return datasets, budgets


def train_args(inputs, run_dir, **changes) -> list[str]:
    datasets, budgets = inputs
    flags = {
        "--budgets": str(budgets),
        "--output": str(run_dir / "final"),
        "--checkpoint-dir": str(run_dir / "checkpoints"),
        "--tensorboard-dir": str(run_dir / "tensorboard"),
        "--random-init": json.dumps(TINY_QWEN3),
        "--max-seq-length": str(MAX_SEQ_LENGTH),
        "--global-batch-size": "4",
        "--micro-batch-size": "2",
        "--max-steps": "6",
        "--learning-rate": "1e-2",
        "--min-learning-rate": "1e-3",
        "--warmup-steps": "1",
        "--checkpoint-every": "2",
        "--log-every": "1",
        "--num-workers": "0",
        "--display-name": "tiny",
        "--weight-decay": "0.0",
        "--adam-beta1": "0.9",
        "--adam-beta2": "0.95",
        "--grad-clip": "1.0",
        "--seed": "0",
        "--parallelism": "fsdp",
        "--keep-checkpoints": "2",
        "--stop-before-time-limit": "0",
    }
    flags.update(changes)
    pairs = [item for pair in flags.items() for item in pair]
    return ["--datasets", *map(str, datasets), *pairs, "--gradient-checkpointing"]


@pytest.fixture(scope="module")
def trained(inputs, tmp_path_factory):
    """One uninterrupted run through the CLI, with gradient checkpointing on."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train_cli(train_args(inputs, run_dir) + ["--gradient-checkpointing"])
    return run_dir / "final"


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


@pytest.mark.parametrize("env_id", ["CartPole-v1", "FrozenLake-v1"])
def test_reloaded_model_drives_a_real_env_for_an_episode(trained, env_id):
    policy = load_policy(trained, env_id, device="cpu")
    env = make_env(env_id)
    observation, _ = env.reset(seed=0)
    reward, terminated, outcome = None, None, None
    for step in range(1, 501):
        try:
            action = policy.act(observation, reward, terminated)
        except PolicyFailure as failure:
            # An untrained-looking answer is recorded, not a crash.
            outcome = ("failure", step, failure.reason, failure.raw_output)
            break
        assert env.action_space.contains(action)
        observation, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            outcome = ("done", step)
            break
    assert outcome is not None
    if outcome[0] == "failure":
        assert isinstance(outcome[2], str) and outcome[2]
        assert isinstance(outcome[3], str)
    assert policy.n_generated_tokens >= 1


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


# --- policy context -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    return build_random_qwen3(TINY_QWEN3, 4096, seed=0).eval()


def cartpole_policy(model, encoder, n_transitions_max, reuse_kv_cache=True) -> QwenPolicy:
    env = make_env("CartPole-v1")
    return QwenPolicy(
        model,
        encoder,
        "CartPole-v1",
        env.observation_space,
        env.action_space,
        n_transitions_max=n_transitions_max,
        max_seq_length=4096,
        reuse_kv_cache=reuse_kv_cache,
    )


def feed_steps(policy: QwenPolicy, n_steps: int, encoder) -> list[torch.Tensor]:
    """Drive the context with known observations and canonical answers; collect logits."""
    logits = []
    for step in range(n_steps):
        observation = np.array([step, -step, 0.5 * step, 1.0], dtype=np.float32)
        policy.observe(
            observation, None if step == 0 else float(step), None if step == 0 else False
        )
        logits.append(policy.next_token_logits().clone())
        answer = assistant_message(step % 2, policy.action_space)
        policy.record_answer(encoder.encode(answer) + [encoder.im_end_id])
    return logits


def test_fifo_keeps_the_system_prompt_and_the_newest_transitions(tiny_model, encoder, tokenizer):
    policy = cartpole_policy(tiny_model, encoder, n_transitions_max=3)
    feed_steps(policy, 7, encoder)
    policy.observe(np.array([7, -7, 3.5, 1.0], dtype=np.float32), 7.0, False)
    assert policy.n_transitions_in_context == 3
    text = tokenizer.decode(policy.context_ids())
    space = policy.observation_space
    expected = (
        "<|im_start|>system\nYou control a CartPole-v1 agent."
        + text.split("You control a CartPole-v1 agent.")[1].split("<|im_end|>")[0]
        + "<|im_end|>\n"
        # Steps 5, 6, 7 remain; the oldest kept one opens the window without an outcome.
        + f"<|im_start|>user\n{user_message([5, -5, 2.5, 1], space)}<|im_end|>\n"
        + '<|im_start|>assistant\n{"action": 1}<|im_end|>\n'
        + f"<|im_start|>user\n{user_message([6, -6, 3, 1], space, 6.0, False, False)}<|im_end|>\n"
        + '<|im_start|>assistant\n{"action": 0}<|im_end|>\n'
        + f"<|im_start|>user\n{user_message([7, -7, 3.5, 1], space, 7.0, False, False)}<|im_end|>\n"
        + "<|im_start|>assistant\n"
    )
    assert text == expected
    assert "Where a is an integer in 0..1" in text
    policy.reset()
    assert policy.n_transitions_in_context == 0


def test_kv_cache_reuse_gives_the_same_logits_as_re_encoding(tiny_model, encoder):
    reusing = cartpole_policy(tiny_model, encoder, n_transitions_max=4, reuse_kv_cache=True)
    re_encoding = cartpole_policy(tiny_model, encoder, n_transitions_max=4, reuse_kv_cache=False)
    for with_cache, without in zip(
        feed_steps(reusing, 7, encoder), feed_steps(re_encoding, 7, encoder), strict=True
    ):
        torch.testing.assert_close(with_cache, without, rtol=1e-4, atol=1e-4)
    # While the window grew (4 steps) only new tokens were fed; after that, FIFO rebuilds.
    assert reusing.n_forward_tokens < re_encoding.n_forward_tokens
    assert reusing.n_cache_rebuilds == 3


def test_untrained_model_answer_is_a_policy_failure_with_the_raw_text(tiny_model, encoder):
    policy = cartpole_policy(tiny_model, encoder, n_transitions_max=8)
    with pytest.raises(PolicyFailure) as failure:
        policy.act(np.zeros(4, dtype=np.float32), None, None)
    assert failure.value.reason
    assert isinstance(failure.value.raw_output, str)


def test_fifo_drop_of_several_transitions_rebuilds_less_often(tiny_model, encoder):
    one_by_one = cartpole_policy(tiny_model, encoder, n_transitions_max=4)
    by_three = cartpole_policy(tiny_model, encoder, n_transitions_max=4)
    by_three.fifo_drop = 3
    feed_steps(one_by_one, 10, encoder)
    feed_steps(by_three, 10, encoder)
    # One by one, steps 5..10 each overflow and rebuild; by three, only steps 5 and 8 do
    # (the context then holds 2, 3, 4, 2, 3, 4 transitions).
    assert one_by_one.n_cache_rebuilds == 6 and one_by_one.n_transitions_in_context == 4
    assert by_three.n_cache_rebuilds == 2 and by_three.n_transitions_in_context == 4
    with pytest.raises(ValueError, match="fifo_drop must be in 1..4"):
        QwenPolicy(tiny_model, encoder, "CartPole-v1", by_three.observation_space,
                   by_three.action_space, 4, 4096, fifo_drop=5)  # fmt: skip
