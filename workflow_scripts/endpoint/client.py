"""One chat completion from an OpenAI-compatible ``/v1/chat/completions``, with retries.

Standard library only (``urllib``), so a run needs no client package. The request is a
plain chat completion (``stream: false``); the answer is read from a JSON body, or from a
``text/event-stream`` body for servers that always stream (``transformers serve`` 4.57
does), concatenating the deltas. ``usage`` is kept when the server reports it.

Transport errors are not the model's doing and never reach the evaluation's failure rule:
a refused or reset connection, a timeout, HTTP 408/409/425/429 and 5xx, a body that is
not a chat completion (a server that crashed mid-answer) are retried after
``backoff_initial_s · 2^k`` seconds (at most ``backoff_max_s``, a server's
``Retry-After`` honoured within that cap, times a random factor in [0.5, 1] so that many
jobs do not retry in step), up to ``max_retries`` retries; past that
:class:`EndpointUnavailable` is raised and the job fails. Any other HTTP error (400, 401,
403, 404, 422: a wrong URL, model name or key) is raised at once as :class:`EndpointError`.
Neither error is a :class:`workflow_scripts.policy.PolicyFailure`. The API key goes into
the ``Authorization`` header only: never into a message, a record or a log.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# HTTP statuses worth another try: the server is busy, rate-limiting or failing for now.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
# How much of an error body goes into an error message.
ERROR_BODY_CHARS = 500


class EndpointError(RuntimeError):
    """The endpoint refused the request (a client error, not worth retrying): the job fails."""


class EndpointUnavailable(EndpointError):
    """Transport errors persisted past the retry bound: the job fails, not the episode."""


class _Retryable(Exception):
    """A transport error of one attempt (internal: retried, or wrapped on giving up)."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Completion:
    """One answer: its text, why it ended, the server's token counts and our timings."""

    text: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    # The served model's name as the response gives it (e.g. a dated hosted version).
    model: str | None
    # Wall time of the attempt that answered, and the attempts that failed before it.
    latency_s: float
    n_retries: int


@dataclass(frozen=True)
class RetryPolicy:
    """How transport errors are retried (see the module docstring)."""

    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.max_retries < 0:
            raise ValueError("timeout_s must be positive and max_retries at least 0")
        if not 0 <= self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("backoff delays must satisfy 0 <= backoff_initial_s <= backoff_max_s")

    def delay_s(self, retry: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first)."""
        delay = min(self.backoff_initial_s * 2**retry, self.backoff_max_s)
        if retry_after_s is not None:
            delay = min(max(delay, retry_after_s), self.backoff_max_s)
        return delay * rng.uniform(0.5, 1.0)


class ChatClient:
    """Posts chat completions to ``{base_url}/v1/chat/completions``.

    ``base_url`` is the server's root (``http://localhost:8000``); a trailing ``/v1`` is
    accepted too, as OpenAI clients write it. ``api_key`` (read by the caller from an
    environment variable) is sent as a bearer token when given.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        root = base_url.rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        self.url = f"{root}/v1/chat/completions"
        self._api_key = api_key
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = random.Random()

    def __repr__(self) -> str:  # never the key
        return f"ChatClient({self.url!r})"

    def complete(self, body: dict[str, Any]) -> Completion:
        """POST ``body``; the first answer that arrives, retrying transport errors."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        for retry in range(self.retry.max_retries + 1):
            start = time.perf_counter()
            try:
                answer = self._attempt(data, headers)
            except _Retryable as error:
                if retry == self.retry.max_retries:
                    raise EndpointUnavailable(
                        f"{self.url}: gave up after {retry + 1} attempts; last error: {error}"
                    ) from None
                self._sleep(self.retry.delay_s(retry, error.retry_after_s, self._rng))
                continue
            return _completion(answer, self.url, time.perf_counter() - start, retry)
        raise AssertionError("unreachable")

    def _attempt(self, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.retry.timeout_s) as response:
                content_type = response.headers.get("Content-Type", "")
                raw = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as error:
            detail = _error_body(error)
            if error.code in RETRYABLE_STATUSES:
                raise _Retryable(
                    f"HTTP {error.code}: {detail}", _retry_after_s(error.headers)
                ) from None
            raise EndpointError(f"{self.url}: HTTP {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            # Connection refused or reset, DNS failure, timeout while connecting or reading,
            # a body cut short (IncompleteRead).
            reason = getattr(error, "reason", error)
            raise _Retryable(f"{type(reason).__name__}: {reason}") from None
        if "text/event-stream" in content_type:
            return _merge_stream(raw)
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError:
            raise _Retryable(f"a body that is not JSON: {raw[:ERROR_BODY_CHARS]!r}") from None
        return _checked(answer, raw)


def _checked(answer: Any, raw: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or not answer.get("choices"):
        # A server error reported in a 200 body, or a half-written answer.
        raise _Retryable(f"not a chat completion: {raw[:ERROR_BODY_CHARS]!r}")
    return answer


def _merge_stream(raw: str) -> dict[str, Any]:
    """A streamed answer (server-sent events) as one non-streamed chat completion."""
    pieces: list[str] = []
    finish_reason = usage = model = None
    saw_content = False
    for line in raw.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            break
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError:
            raise _Retryable(
                f"a stream event that is not JSON: {payload[:ERROR_BODY_CHARS]!r}"
            ) from None
        if not isinstance(chunk, dict) or "error" in chunk:
            raise _Retryable(f"the server reported an error: {payload[:ERROR_BODY_CHARS]}")
        model = chunk.get("model", model)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            content = (choice.get("delta") or {}).get("content")
            if content is not None:
                pieces.append(content)
                saw_content = True
            finish_reason = choice.get("finish_reason") or finish_reason
    if finish_reason is None:
        raise _Retryable("the stream ended before the answer did (no finish_reason)")
    message = {"role": "assistant", "content": "".join(pieces) if saw_content else None}
    answer = {"model": model, "choices": [{"message": message, "finish_reason": finish_reason}]}
    return answer | ({"usage": usage} if usage else {})


def _completion(answer: dict[str, Any], url: str, latency_s: float, n_retries: int) -> Completion:
    choice = answer["choices"][0]
    message = choice.get("message") or {}
    text = message.get("content")
    if text is not None and not isinstance(text, str):
        raise EndpointError(f"{url}: message content is not text: {text!r}"[:ERROR_BODY_CHARS])
    usage = answer.get("usage") or {}
    return Completion(
        text=text,
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        model=answer.get("model"),
        latency_s=latency_s,
        n_retries=n_retries,
    )


def _error_body(error: urllib.error.HTTPError) -> str:
    try:
        return error.read().decode("utf-8", errors="replace")[:ERROR_BODY_CHARS] or error.reason
    except OSError:
        return str(error.reason)


def _retry_after_s(headers: Any) -> float | None:
    # Only the delta-seconds form; an HTTP date is rare from APIs and falls back to backoff.
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
