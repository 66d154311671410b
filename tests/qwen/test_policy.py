"""The Qwen policy: a trained model acts in real envs; context FIFO, KV cache, failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.tiny_models import TINY_QWEN3
from workflow_scripts.envs import make_env
from workflow_scripts.evaluate import check_action
from workflow_scripts.policy import PolicyFailure
from workflow_scripts.qwen.chat_format import assistant_message, user_message
from workflow_scripts.qwen.model import build_random_qwen3
from workflow_scripts.qwen.policy import QwenPolicy, load_policy


@pytest.mark.parametrize("env_id", ["CartPole-v1", "FrozenLake-v1"])
def test_reloaded_model_drives_a_real_env_for_an_episode(trained, env_id):
    policy = load_policy(trained, env_id, device="cpu")
    env = make_env(env_id)
    observation, _ = env.reset(seed=0)
    reward, terminated, outcome = None, None, None
    for step in range(1, 501):
        try:
            # The parser returns the answer's values; the harness checks them against the
            # space (a Discrete value out of range fails there), as in an evaluation.
            action, _ = check_action(policy.act(observation, reward, terminated), env.action_space)
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
