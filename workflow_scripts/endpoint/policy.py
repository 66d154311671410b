"""A chat model behind an OpenAI-compatible endpoint, acting under the paper's protocol.

Each env step is one ``/v1/chat/completions`` request holding the paper's conversation
(:mod:`workflow_scripts.qwen.chat_format`): the system prompt, then the episode's
transitions as user/assistant messages, the current observation last; ``temperature: 0``
(greedy) and ``max_tokens`` the Qwen policy's answer bound for the action space
(:func:`workflow_scripts.qwen.policy.max_answer_tokens`, counted with the settings'
tokenizer) unless the settings give one.

The context rule is the in-process Qwen policy's: at most ``n_transitions_max``
transitions (the current one included), the oldest dropped first (FIFO) and the system
prompt kept; the new first observation is then shown without the previous outcome, as
training windows start. With ``max_seq_length`` set, the oldest transitions are also
dropped until the context (counted in ChatML tokens of the settings' tokenizer) plus the
answer bound fits, as the Qwen policy does. With a retrieval context
(:class:`workflow_scripts.retrieval.context.RetrievalContext`) the history is replaced, as
for the Qwen policy: the nearest dataset transitions with their expert actions, then the
current observation with the previous step's outcome (the farthest neighbours dropped
until the context and answer bound fit ``max_seq_length``, when set).

The failure rule is the Qwen policy's: an answer that
:func:`~workflow_scripts.qwen.chat_format.parse_action` refuses, that has no text, or that
stopped at the token bound (``finish_reason: length``) raises
:class:`~workflow_scripts.policy.PolicyFailure` with the raw text; parsed values come
back as they are and the harness (:func:`workflow_scripts.evaluate.check_action`)
decides about values outside the space. Transport errors are retried and, past the
bound, end the job (:mod:`workflow_scripts.endpoint.client`): they are never a failed
episode.

Per episode, :meth:`EndpointPolicy.record_fields` gives the evaluation record the
request count, retries, the server's prompt and completion token counts (``None`` unless
every request reported ``usage``), total and mean request latency and the served model's
name.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gymnasium import spaces

from workflow_scripts.endpoint.client import ChatClient, Completion, RetryPolicy
from workflow_scripts.endpoint.settings import EndpointSettings, read_settings
from workflow_scripts.envs import make_env
from workflow_scripts.policy import PolicyFailure
from workflow_scripts.qwen.chat_format import (
    ActionParseError,
    ContextStep,
    parse_action,
    system_prompt,
)
from workflow_scripts.qwen.policy import max_answer_tokens
from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer

if TYPE_CHECKING:
    from workflow_scripts.retrieval.context import RetrievalContext


@dataclass
class _Transition(ContextStep):
    # The model's answer text, once it has answered.
    answer: str | None = None


class EndpointPolicy:
    """One env's policy through a chat endpoint (see the module docstring)."""

    def __init__(
        self,
        client: ChatClient,
        settings: EndpointSettings,
        encoder: ChatMLEncoder,
        env_id: str,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        retrieval: RetrievalContext | None = None,
    ):
        self.client = client
        self.settings = settings
        self.encoder = encoder
        self.env_id = env_id
        self.observation_space = observation_space
        self.action_space = action_space
        self.retrieval = retrieval
        self.n_transitions_max = settings.budget(env_id)
        self.max_seq_length = settings.max_seq_length
        self.max_tokens = settings.max_tokens or max_answer_tokens(encoder, action_space)
        self.system_message = {"role": "system", "content": system_prompt(env_id, action_space)}
        self._system_tokens = self._message_tokens(self.system_message)
        self.reset()

    def reset(self) -> None:
        """Start a new episode: empty context, zero counters."""
        self._transitions: deque[_Transition] = deque()
        self._completions: list[Completion] = []

    @property
    def n_transitions_in_context(self) -> int:
        return len(self._transitions)

    def messages(self) -> list[dict[str, str]]:
        """The conversation sent for the current step (ends with the current observation)."""
        if self.retrieval is not None:
            current = self._transitions[-1]
            return self.retrieval.messages(
                current.observation,
                current.reward,
                current.terminated,
                current.truncated,
                fits=None if self.max_seq_length is None else self._fits,
            )
        messages = [self.system_message]
        for index, transition in enumerate(self._transitions):
            content = transition.user_message(self.observation_space, opens_context=index == 0)
            messages.append({"role": "user", "content": content})
            if transition.answer is not None:
                messages.append({"role": "assistant", "content": transition.answer})
        return messages

    def _message_tokens(self, message: dict[str, str]) -> int:
        return len(self.encoder.encode(message["content"])) + self.encoder.overhead(message["role"])

    def context_tokens(self) -> int:
        """ChatML tokens of :meth:`messages` up to the open assistant header, in the
        settings' tokenizer (what the in-process Qwen policy feeds its model)."""
        return self._tokens(self.messages())

    def _tokens(self, messages: list[dict[str, str]]) -> int:
        """ChatML tokens of ``messages`` (the system prompt first) up to the open header."""
        return (
            self._system_tokens
            + sum(self._message_tokens(message) for message in messages[1:])
            + len(self.encoder.generation_prompt_ids)
        )

    def _fits(self, messages: list[dict[str, str]]) -> bool:
        return self._tokens(messages) + self.max_tokens <= self.max_seq_length

    def observe(self, observation: Any, prev_reward: float | None, prev_term: bool | None) -> None:
        """Add the new observation to the context, dropping the oldest transitions if needed
        (with a retrieval context, the current transition is all it keeps)."""
        transition = _Transition.observed(observation, prev_reward, prev_term)
        if self.retrieval is not None:
            self._transitions = deque([transition])
            return
        self._transitions.append(transition)
        if len(self._transitions) > self.n_transitions_max:
            self._transitions.popleft()
        while (
            self.max_seq_length is not None
            and len(self._transitions) > 1
            and self.context_tokens() + self.max_tokens > self.max_seq_length
        ):
            self._transitions.popleft()

    def request_body(self) -> dict[str, Any]:
        """The chat completion request of the current step."""
        return {
            **self.settings.extra_body,
            "model": self.settings.model,
            "messages": self.messages(),
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "stream": False,
        }

    def act(self, observation: Any, prev_reward: float | None, prev_term: bool | None) -> Any:
        """The endpoint's greedy action for ``observation`` given the episode so far, as
        parsed (the harness checks it against the space); PolicyFailure for an answer that
        is not an action, an endpoint error (not PolicyFailure) when the server cannot be
        reached."""
        self.observe(observation, prev_reward, prev_term)
        completion = self.client.complete(self.request_body())
        self._completions.append(completion)
        text = completion.text
        # Kept in the context, so the policy stays consistent if a caller carries on after
        # a failure (the evaluation harness stops).
        self._transitions[-1].answer = text or ""
        if text is None:
            raise PolicyFailure(f"no text in the answer (finish_reason {completion.finish_reason})")
        if completion.finish_reason == "length":
            # The Qwen policy's reason for an answer without an end within the bound.
            raise PolicyFailure(
                f"no end of message within {self.max_tokens} generated tokens", text
            )
        try:
            return parse_action(text, self.action_space)
        except ActionParseError as error:
            raise PolicyFailure(str(error), text) from None

    def record_fields(self) -> dict[str, Any]:
        """The episode's endpoint fields for the per-seed record (see the module docstring)."""
        completions = self._completions
        n_requests = len(completions)
        latency = sum(completion.latency_s for completion in completions)

        def total(name: str) -> int | None:
            values = [getattr(completion, name) for completion in completions]
            return None if not values or None in values else int(sum(values))

        served = [completion.model for completion in completions if completion.model]
        return {
            "endpoint_requests": n_requests,
            "endpoint_retries": sum(completion.n_retries for completion in completions),
            "endpoint_prompt_tokens": total("prompt_tokens"),
            "endpoint_completion_tokens": total("completion_tokens"),
            "endpoint_latency_total_s": latency,
            "endpoint_latency_mean_s": latency / n_requests if n_requests else None,
            "endpoint_model": served[-1] if served else None,
        }


def load_policy(
    model_dir: str | os.PathLike,
    env_id: str,
    device: str | None = None,
    retrieval: RetrievalContext | None = None,
) -> EndpointPolicy:
    """The endpoint policy of an endpoint model folder (``endpoint.json``, see
    :mod:`workflow_scripts.endpoint.settings`) for ``env_id``.

    ``device`` is unused (the model runs on the server); it is the harness's common
    signature. The API key is read here from the environment variable the settings name,
    so a missing key fails before the first episode. ``retrieval`` replaces the episode's
    history with the env's nearest dataset transitions.
    """
    settings = read_settings(model_dir)
    settings.budget(env_id)  # an env without a budget fails before any request
    client = ChatClient(
        settings.base_url,
        api_key=settings.api_key(),
        retry=RetryPolicy(
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
        ),
    )
    env = make_env(env_id)
    try:
        observation_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    encoder = ChatMLEncoder(load_tokenizer(settings.tokenizer))
    return EndpointPolicy(
        client, settings, encoder, env_id, observation_space, action_space, retrieval
    )
