"""The endpoint policy against stub servers: the paper's messages, FIFO context, greedy
requests with the answer bound, the failure rule, transport errors ending the job, the
per-seed record's endpoint fields, and the endpoint.json model folder."""

from __future__ import annotations

import json

import pytest

from tests.endpoint.endpoint_stubs import Reply, completion, stub_server
from tests.eval.eval_inputs import write_baseline
from tests.support.datasets import write_dataset
from workflow_scripts.endpoint.client import EndpointUnavailable
from workflow_scripts.endpoint.policy import EndpointPolicy, load_policy
from workflow_scripts.endpoint.settings import (
    SETTINGS_FILE,
    EndpointSettings,
    read_settings,
    settings_from_dict,
    write_settings,
)
from workflow_scripts.endpoint.settings import (
    main as settings_cli,
)
from workflow_scripts.envs import make_env
from workflow_scripts.evaluate import evaluate_model_seed, evaluate_policy
from workflow_scripts.qwen.chat_format import assistant_message, system_prompt, user_message
from workflow_scripts.qwen.policy import max_answer_tokens
from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer

USAGE = {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}


class Recording:
    """Wraps a policy and records what it was given and what it returned, step by step."""

    def __init__(self, policy):
        self.policy = policy
        self.calls, self.actions = [], []

    def reset(self):
        self.policy.reset()

    def act(self, observation, prev_reward, prev_term):
        self.calls.append((observation.copy(), prev_reward, prev_term))
        action = self.policy.act(observation, prev_reward, prev_term)
        self.actions.append(action)
        return action

    def record_fields(self):
        return self.policy.record_fields()


def alternating(body, index):
    """A scripted model: actions 0, 1, 0, 1, ... with usage."""
    return Reply(200, completion(f'{{"action": {index % 2}}}', usage=USAGE))


def endpoint_folder(tmp_path, base_url, **changes):
    values = {"base_url": base_url, "model": "stub", "n_transitions_max": 3} | changes
    folder = tmp_path / "endpoint-model"
    write_settings(folder, settings_from_dict(values))
    return folder


def test_requests_hold_the_papers_conversation_with_a_fifo_context(tmp_path):
    with stub_server(alternating) as stub:
        folder = endpoint_folder(tmp_path, stub.base_url, extra_body={"top_k": 1})
        policy = Recording(load_policy(folder, "CartPole-v1"))
        record = evaluate_policy(policy, "CartPole-v1", 0, 22.0, 500.0, max_episode_steps=6)
    env = make_env("CartPole-v1")
    space = env.observation_space
    assert record["failure"] is None and record["length"] == 6
    assert policy.actions == [0, 1, 0, 1, 0, 1]
    assert len(stub.requests) == 6
    bound = max_answer_tokens(ChatMLEncoder(load_tokenizer()), env.action_space)
    system = {"role": "system", "content": system_prompt("CartPole-v1", env.action_space)}
    for step, request in enumerate(stub.requests):
        assert request["model"] == "stub" and request["temperature"] == 0
        assert request["max_tokens"] == bound and request["stream"] is False
        assert request["top_k"] == 1  # extra_body
        # The newest three transitions; the oldest kept one without its previous outcome.
        kept = range(max(0, step - 2), step + 1)
        expected = [system]
        for position, index in enumerate(kept):
            observation, reward, terminated = policy.calls[index]
            if position == 0:
                content = user_message(observation, space)
            else:
                content = user_message(observation, space, reward, terminated, False)
            expected.append({"role": "user", "content": content})
            if index < step:
                answer = assistant_message(policy.actions[index], env.action_space)
                expected.append({"role": "assistant", "content": answer})
        assert request["messages"] == expected, step
    # The first request is the paper's opening: system prompt and one bare observation.
    assert stub.requests[0]["messages"][1]["content"].startswith('{"observation": [')
    assert (
        '"reward": 1, "term": False, "trunc": False}' in stub.requests[1]["messages"][-1]["content"]
    )


def test_record_carries_the_endpoint_fields_per_episode(tmp_path):
    def busy_once(body, index):
        return Reply(503, {"error": "busy"}) if index == 0 else alternating(body, index)

    with stub_server(busy_once) as stub:
        folder = endpoint_folder(tmp_path, stub.base_url, backoff_initial_s=0.01)
        policy = load_policy(folder, "CartPole-v1")
        first = evaluate_policy(policy, "CartPole-v1", 0, 22.0, 500.0, max_episode_steps=4)
        second = evaluate_policy(policy, "CartPole-v1", 1, 22.0, 500.0, max_episode_steps=3)
    assert first["endpoint_requests"] == 4 and first["endpoint_retries"] == 1
    assert first["endpoint_prompt_tokens"] == 400 and first["endpoint_completion_tokens"] == 28
    assert first["endpoint_latency_total_s"] > 0
    assert first["endpoint_latency_mean_s"] == pytest.approx(first["endpoint_latency_total_s"] / 4)
    assert first["endpoint_model"] == "stub-model-2026"
    # Counters start again with each episode.
    assert second["endpoint_requests"] == 3 and second["endpoint_retries"] == 0


def test_token_counts_are_none_unless_every_request_reported_usage(tmp_path):
    def usage_once(body, index):
        return Reply(200, completion('{"action": 0}', usage=USAGE if index == 0 else None))

    with stub_server(usage_once) as stub:
        policy = load_policy(endpoint_folder(tmp_path, stub.base_url), "CartPole-v1")
        record = evaluate_policy(policy, "CartPole-v1", 0, 22.0, 500.0, max_episode_steps=3)
    assert record["endpoint_prompt_tokens"] is None
    assert record["endpoint_completion_tokens"] is None
    assert record["endpoint_requests"] == 3


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (completion('{"action": 0'), "not valid JSON"),
        (completion('{"act": 0}'), 'exactly one key "action"'),
        (completion('{"action": 0}', finish_reason="length"), "no end of message within"),
        (completion(None, finish_reason="content_filter"), "no text in the answer"),
    ],
    ids=["not-json", "wrong-key", "token-bound", "no-text"],
)
def test_an_answer_that_is_not_an_action_fails_the_episode(tmp_path, answer, reason):
    def fails_at_step_3(body, index):
        return Reply(200, answer) if index == 2 else alternating(body, index)

    with stub_server(fails_at_step_3) as stub:
        policy = load_policy(endpoint_folder(tmp_path, stub.base_url), "CartPole-v1")
        record = evaluate_policy(policy, "CartPole-v1", 0, 22.0, 500.0)
    failure = record["failure"]
    assert failure["source"] == "policy" and failure["step"] == 2
    assert reason in failure["reason"]
    assert failure["raw_output"] == answer["choices"][0]["message"]["content"]
    assert record["normalized_score"] == 0.0 and record["endpoint_requests"] == 3
    if "token" in reason:
        assert str(policy.max_tokens) in failure["reason"]


def test_out_of_range_values_are_the_harness_decision(tmp_path):
    with stub_server(lambda body, index: Reply(200, completion('{"action": 5}'))) as stub:
        policy = load_policy(endpoint_folder(tmp_path, stub.base_url), "CartPole-v1")
        assert policy.act(make_env("CartPole-v1").reset(seed=0)[0], None, None) == 5
        record = evaluate_policy(policy, "CartPole-v1", 0, 22.0, 500.0)
    assert record["failure"]["source"] == "harness"


def test_a_transport_error_past_the_bound_fails_the_job_not_the_episode(tmp_path):
    def down_after_two(body, index):
        return alternating(body, index) if index < 2 else Reply(502, "bad gateway")

    with stub_server(down_after_two) as stub:
        folder = endpoint_folder(tmp_path, stub.base_url, max_retries=2, backoff_initial_s=0.01)
        policy = load_policy(folder, "CartPole-v1")
        with pytest.raises(EndpointUnavailable, match="gave up after 3 attempts.*HTTP 502"):
            evaluate_policy(policy, "CartPole-v1", 0, 22.0, 500.0)
    assert len(stub.requests) == 5


def test_token_bound_on_the_context_counts_as_the_chat_template_does(tmp_path):
    tokenizer = load_tokenizer()
    settings = EndpointSettings(
        base_url="http://127.0.0.1:9", model="stub", n_transitions_max=50, max_seq_length=400
    )
    env = make_env("CartPole-v1")
    policy = EndpointPolicy(
        None, settings, ChatMLEncoder(tokenizer), "CartPole-v1",
        env.observation_space, env.action_space,
    )  # fmt: skip
    observation, _ = env.reset(seed=0)
    sizes = []
    for step in range(12):
        policy.observe(observation, None if step == 0 else 1.0, None if step == 0 else False)
        rendered = tokenizer.apply_chat_template(
            policy.messages(), add_generation_prompt=True, tokenize=True
        )
        assert policy.context_tokens() == len(rendered)
        assert policy.context_tokens() + policy.max_tokens <= 400
        sizes.append(policy.n_transitions_in_context)
        policy._transitions[-1].answer = assistant_message(step % 2, env.action_space)
        observation, *_ = env.step(step % 2)
    # The token bound, not the 50-transition budget, caps the context.
    assert max(sizes) < 50 and sizes[-1] == sizes[-2] < 12


# --- the endpoint model folder ----------------------------------------------------------


def test_api_key_comes_from_the_named_variable_and_is_never_stored(tmp_path, monkeypatch):
    with stub_server(alternating) as stub:
        folder = endpoint_folder(tmp_path, stub.base_url, api_key_env="STUB_API_KEY")
        monkeypatch.delenv("STUB_API_KEY", raising=False)
        with pytest.raises(KeyError, match="STUB_API_KEY"):
            load_policy(folder, "CartPole-v1")
        monkeypatch.setenv("STUB_API_KEY", "sk-test-456")
        policy = load_policy(folder, "CartPole-v1")
        record = evaluate_policy(policy, "CartPole-v1", 0, 22.0, 500.0, max_episode_steps=2)
    assert {headers["Authorization"] for headers in stub.headers} == {"Bearer sk-test-456"}
    assert "sk-test" not in (folder / SETTINGS_FILE).read_text()
    assert "sk-test" not in json.dumps(record)


def test_budget_per_env_and_settings_checks(tmp_path):
    folder = endpoint_folder(tmp_path, "http://127.0.0.1:9", n_transitions_max={"Pendulum-v1": 4})
    with pytest.raises(KeyError, match="no budget for 'CartPole-v1'"):
        load_policy(folder, "CartPole-v1")
    assert read_settings(folder).budget("Pendulum-v1") == 4
    base = {"base_url": "http://h", "model": "m", "n_transitions_max": 2}
    with pytest.raises(ValueError, match="unknown endpoint setting"):
        settings_from_dict(base | {"api_key": "sk-1"})
    with pytest.raises(ValueError, match="protocol's fields: temperature"):
        settings_from_dict(base | {"extra_body": {"temperature": 0.7}})
    with pytest.raises(ValueError, match="n_transitions_max"):
        settings_from_dict(base | {"n_transitions_max": 0})
    with pytest.raises(ValueError, match="base_url"):
        settings_from_dict(base | {"base_url": "localhost:8000"})
    with pytest.raises(ValueError, match="model"):
        settings_from_dict({"base_url": "http://h", "n_transitions_max": 2})
    with pytest.raises(FileNotFoundError, match="not an endpoint model folder"):
        read_settings(tmp_path)


def test_settings_cli_writes_a_folder_the_evaluate_stage_runs(tmp_path):
    baseline = write_baseline(tmp_path / "baseline.json", "CartPole-v1", 22.0, 5)
    dataset = write_dataset(tmp_path / "CartPole-v1.h5", "CartPole-v1", 500.0)
    folder = tmp_path / "models" / "stub-endpoint"
    output = tmp_path / "eval" / "seed3.json"
    with stub_server(alternating) as stub:
        settings_cli(
            ["--output", str(folder), "--settings", json.dumps(
                {"base_url": stub.base_url, "model": "stub", "n_transitions_max": 4}
            )]
        )  # fmt: skip
        record = evaluate_model_seed(
            "stub-endpoint", folder, "CartPole-v1", 3, baseline, dataset, output,
            max_episode_steps=5, device="cpu", policy_module="workflow_scripts.endpoint.policy",
        )  # fmt: skip
    assert json.loads(output.read_text()) == record
    assert record["model"] == "stub-endpoint" and record["length"] == 5
    assert record["endpoint_requests"] == 5 and record["model_sha256"]
