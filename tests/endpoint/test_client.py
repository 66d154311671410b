"""The HTTP client: answers read from JSON or a stream, transport errors retried with
backoff, then given up with an error that is not a model failure."""

from __future__ import annotations

import random
import socket
import time

import pytest

from tests.endpoint.endpoint_stubs import HANG, Reply, completion, streamed, stub_server
from workflow_scripts.endpoint.client import (
    ChatClient,
    EndpointError,
    EndpointUnavailable,
    RetryPolicy,
)
from workflow_scripts.policy import PolicyFailure

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def fast_retries(**changes) -> RetryPolicy:
    return RetryPolicy(**({"timeout_s": 5.0, "max_retries": 3} | changes))


class Sleeps(list):
    """Records the backoff delays instead of waiting."""

    def __call__(self, seconds):
        self.append(seconds)


def test_json_answer_with_usage_and_the_served_models_name():
    with stub_server(lambda body, i: Reply(200, completion('{"action": 1}', usage=USAGE))) as stub:
        answer = ChatClient(stub.base_url).complete(BODY)
    assert answer.text == '{"action": 1}' and answer.finish_reason == "stop"
    assert (answer.prompt_tokens, answer.completion_tokens) == (12, 5)
    assert answer.model == "stub-model-2026" and answer.n_retries == 0
    assert answer.latency_s > 0
    assert stub.requests == [BODY]


def test_streamed_answer_is_merged_and_its_usage_kept():
    reply = streamed(['{"action', '": ', "1}"], usage=USAGE)
    with stub_server(lambda body, i: reply) as stub:
        answer = ChatClient(stub.base_url + "/v1/").complete(BODY)  # an OpenAI-style base URL
    assert answer.text == '{"action": 1}' and answer.finish_reason == "stop"
    assert answer.prompt_tokens == 12


def test_503_then_200_is_retried_with_exponential_backoff():
    def responder(body, index):
        return Reply(503, {"error": "busy"}) if index < 3 else Reply(200, completion("ok"))

    sleeps = Sleeps()
    retry = fast_retries(max_retries=5, backoff_initial_s=0.5, backoff_max_s=1.5)
    with stub_server(responder) as stub:
        answer = ChatClient(stub.base_url, retry=retry, sleep=sleeps).complete(BODY)
    assert answer.text == "ok" and answer.n_retries == 3
    assert len(stub.requests) == 4
    # 0.5, 1, 2 → capped at 1.5; each times a jitter factor in [0.5, 1].
    for delay, nominal in zip(sleeps, [0.5, 1.0, 1.5], strict=True):
        assert nominal * 0.5 <= delay <= nominal


def test_retry_after_of_a_429_is_honoured_within_the_cap():
    policy = fast_retries(backoff_initial_s=0.1, backoff_max_s=30.0)
    rng = random.Random(0)
    assert 5.0 <= policy.delay_s(0, retry_after_s=10.0, rng=rng) <= 10.0
    assert 15.0 <= policy.delay_s(0, retry_after_s=600.0, rng=rng) <= 30.0

    def responder(body, index):
        if index == 0:
            return Reply(429, {"error": "slow down"}, {"Retry-After": "2"})
        return Reply(200, completion("ok"))

    sleeps = Sleeps()
    with stub_server(responder) as stub:
        ChatClient(stub.base_url, retry=policy, sleep=sleeps).complete(BODY)
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 2.0


@pytest.mark.parametrize(
    "bad_reply",
    [
        Reply(200, "<html>proxy error</html>", {"Content-Type": "text/html"}),
        Reply(200, {"error": {"message": "overloaded"}}),
        Reply(
            200, 'data: {"error": "generation crashed"}\n\n', {"Content-Type": "text/event-stream"}
        ),
        Reply(
            200,
            'data: {"choices": [{"delta": {"content": "{"}}]}\n\n',
            {"Content-Type": "text/event-stream"},
        ),  # fmt: skip
    ],
    ids=["not-json", "error-object", "stream-error", "stream-cut-short"],
)
def test_a_body_that_is_not_an_answer_is_a_transport_error(bad_reply):
    def responder(body, index):
        return bad_reply if index == 0 else Reply(200, completion("ok"))

    with stub_server(responder) as stub:
        answer = ChatClient(stub.base_url, retry=fast_retries(), sleep=Sleeps()).complete(BODY)
    assert answer.text == "ok" and answer.n_retries == 1


def test_a_server_that_never_answers_is_given_up_after_the_bound():
    retry = fast_retries(timeout_s=0.3, max_retries=2, backoff_initial_s=0.01)
    with stub_server(lambda body, i: HANG) as stub:
        start = time.perf_counter()
        with pytest.raises(EndpointUnavailable, match="gave up after 3 attempts") as error:
            ChatClient(stub.base_url, retry=retry).complete(BODY)
        elapsed = time.perf_counter() - start
        assert len(stub.requests) == 3
    assert "timed out" in str(error.value)
    assert not isinstance(error.value, PolicyFailure)
    assert 0.9 <= elapsed < 5.0  # three timeouts of 0.3 s, short real sleeps


def test_connection_refused_is_retried_then_given_up():
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    client = ChatClient(f"http://127.0.0.1:{port}", retry=fast_retries(max_retries=2), sleep=sleeps)
    with pytest.raises(EndpointUnavailable, match="refused"):
        client.complete(BODY)
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried_and_never_show_the_key(status):
    with stub_server(lambda body, i: Reply(status, {"error": "bad model name"})) as stub:
        client = ChatClient(stub.base_url, api_key="sk-secret-123", retry=fast_retries())
        with pytest.raises(EndpointError, match=f"HTTP {status}: .*bad model name") as error:
            client.complete(BODY)
    assert not isinstance(error.value, EndpointUnavailable)
    assert len(stub.requests) == 1
    assert stub.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in str(error.value) and "sk-secret" not in repr(client)


def test_no_authorization_header_without_a_key():
    with stub_server(lambda body, i: Reply(200, completion("ok"))) as stub:
        ChatClient(stub.base_url).complete(BODY)
    assert "Authorization" not in stub.headers[0]


def test_retry_policy_is_checked():
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(backoff_initial_s=10.0, backoff_max_s=1.0)
