"""Chat models with a retrieval context (the paper's future work): the trained Qwen and the
endpoint policies put the nearest dataset transitions in their context instead of the
episode's history, in the paper's message format; ``evaluate`` wires the env's index in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.endpoint.endpoint_stubs import Reply, completion, stub_server
from tests.support.tiny_models import TINY_QWEN3
from workflow_scripts.endpoint.policy import load_policy as load_endpoint_policy
from workflow_scripts.endpoint.settings import settings_from_dict, write_settings
from workflow_scripts.envs import make_env
from workflow_scripts.evaluate import evaluate_model_seed
from workflow_scripts.qwen.model import build_random_qwen3
from workflow_scripts.qwen.policy import QwenPolicy
from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer
from workflow_scripts.retrieval.context import RetrievalContext, retrieval_messages


def always_right(body, index):
    return Reply(200, completion('{"action": 1}'))


def endpoint_folder(tmp_path, base_url):
    folder = tmp_path / "endpoint"
    settings = {"base_url": base_url, "model": "m", "n_transitions_max": 2}
    write_settings(folder, settings_from_dict(settings))
    return folder


QUERY = np.array([0.02, 0.1, -0.03, -0.2], dtype=np.float32)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def qwen_policy(index, neighbours, max_seq_length, tokenizer) -> QwenPolicy:
    env = make_env("CartPole-v1")
    return QwenPolicy(
        build_random_qwen3(TINY_QWEN3, 4096, seed=0).eval(),
        ChatMLEncoder(tokenizer),
        "CartPole-v1",
        env.observation_space,
        env.action_space,
        n_transitions_max=3,
        max_seq_length=max_seq_length,
        retrieval=RetrievalContext(index, neighbours),
    )


def test_context_drops_the_farthest_neighbours_until_it_fits(cartpole_index):
    full = retrieval_messages(cartpole_index, QUERY, 6)
    # Room for the system prompt, the current observation and three neighbours.
    limit = sum(len(m["content"]) for m in full[:1] + full[7:])
    fitted = RetrievalContext(cartpole_index, 6).messages(
        QUERY, fits=lambda messages: sum(len(m["content"]) for m in messages) <= limit
    )
    assert fitted == [full[0], *full[7:]]
    nothing_fits = RetrievalContext(cartpole_index, 6).messages(QUERY, fits=lambda _: False)
    assert nothing_fits == [full[0], full[-1]]
    with pytest.raises(ValueError, match="n_neighbours"):
        RetrievalContext(cartpole_index, -1)


def test_qwen_context_is_the_chat_template_of_the_retrieval_messages(cartpole_index, tokenizer):
    policy = qwen_policy(cartpole_index, 5, 4096, tokenizer)
    previous = np.array([0.01, 0.2, -0.02, -0.1], dtype=np.float32)
    for observation, reward, terminated in [(previous, None, None), (QUERY, 1.0, False)]:
        policy.observe(observation, reward, terminated)
        messages = retrieval_messages(
            cartpole_index, observation, 5, *([] if reward is None else [reward, terminated, False])
        )
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert policy.context_ids() == tokenizer(text, add_special_tokens=False)["input_ids"]
        # No history: the episode's own previous step is not in the context.
        assert policy.n_transitions_in_context == 1
        policy.next_token_logits()
    assert policy.n_cache_rebuilds == 1  # the neighbours changed with the observation


def test_qwen_context_keeps_room_for_the_answer(cartpole_index, tokenizer):
    roomy = qwen_policy(cartpole_index, 8, 4096, tokenizer)
    roomy.observe(QUERY, None, None)
    tight = qwen_policy(cartpole_index, 8, len(roomy.context_ids()) - 1, tokenizer)
    tight.observe(QUERY, None, None)
    assert len(tight.context_ids()) + tight.max_new_tokens <= tight.max_seq_length
    messages = retrieval_messages(cartpole_index, QUERY, 8)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # The nearest neighbours stayed: the tight context is a suffix of the full one after the
    # system prompt.
    system = len(roomy.system_ids)
    assert full_ids[:system] == tight.context_ids()[:system]
    assert full_ids[-(len(tight.context_ids()) - system) :] == tight.context_ids()[system:]


def test_endpoint_requests_hold_the_retrieval_messages(tmp_path, cartpole_index):
    with stub_server(always_right) as server:
        folder = endpoint_folder(tmp_path, server.base_url)
        policy = load_endpoint_policy(
            folder, "CartPole-v1", retrieval=RetrievalContext(cartpole_index, 4)
        )
        env = make_env("CartPole-v1")
        observation, _ = env.reset(seed=3)
        seen, reward, terminated = [], None, None
        for _ in range(4):
            action = policy.act(observation, reward, terminated)
            outcome = [] if reward is None else [reward, terminated, False]
            seen.append(retrieval_messages(cartpole_index, observation, 4, *outcome))
            observation, reward, terminated, _, _ = env.step(action)
        assert [body["messages"] for body in server.requests] == seen


def test_evaluate_records_the_index_and_refuses_it_for_a_non_chat_policy(
    tmp_path, cartpole_index_path, cartpole_dataset
):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(
        json.dumps({"env_id": "CartPole-v1", "mean_return": 22.0, "max_episode_steps": 500})
    )
    with stub_server(always_right) as server:
        folder = endpoint_folder(tmp_path, server.base_url)
        record = evaluate_model_seed(
            "chat_knn", folder, "CartPole-v1", 0, baseline, cartpole_dataset,
            tmp_path / "seed0.json", policy_module="workflow_scripts.endpoint.policy",
            retrieval_index=cartpole_index_path, neighbours=3,
        )  # fmt: skip
        assert len(server.requests) == record["length"]
        assert all(len(body["messages"]) == 1 + 2 * 3 + 1 for body in server.requests)
    assert record["retrieval_neighbours"] == 3
    assert record["retrieval_index"] == str(cartpole_index_path)
    assert len(record["retrieval_index_sha256"]) == 64
    with pytest.raises(ValueError, match="takes no retrieval context"):
        evaluate_model_seed(
            "knn", cartpole_index_path, "CartPole-v1", 0, baseline, cartpole_dataset,
            tmp_path / "other.json", policy_module="workflow_scripts.retrieval.policy",
            retrieval_index=cartpole_index_path, neighbours=3,
        )  # fmt: skip
    assert not (tmp_path / "other.json").exists()
