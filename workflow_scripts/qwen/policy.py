"""The evaluation policy: greedy decoding of one ``{"action": a}`` message per env step.

The context is the system prompt plus the episode's transitions as chat messages, exactly
as in training windows. While it grows, each step only feeds the new tokens (the previous
answer's end, the new observation, the assistant header) through the model on top of the
KV cache. Once it holds ``n_transitions_max`` transitions, the oldest is dropped (FIFO)
and the system prompt kept; the new first observation is then shown without the previous
outcome, as windows start in training, and the cache is rebuilt from the new context
(the retained tokens' keys depend on the dropped ones through attention, so they cannot
be reused); ``fifo_drop > 1`` drops several at once so that the cache is rebuilt every
``fifo_drop`` steps instead of every step.

Each answer is parsed only (:func:`workflow_scripts.qwen.chat_format.parse_action`): one
that is not exactly ``{"action": a}`` with ``a`` of the space's kind (not JSON, a wrong
key, a wrong number of values, a non-number or non-finite number), or no end of message
within the token bound, raises :class:`workflow_scripts.policy.PolicyFailure` with the raw
text. Parsed values are returned as they are, even outside the space: the evaluation
harness (:func:`workflow_scripts.evaluate.check_action`) decides for every model, failing
an out-of-range Discrete value and clipping (and counting) a Box value beyond the bounds,
or failing it under ``evaluation.out_of_bounds_actions: fail``.

With a retrieval context (:class:`workflow_scripts.retrieval.context.RetrievalContext`, the
paper's future work) the episode's history is replaced: each step's context is the system
prompt, the nearest dataset transitions with their expert actions (the farthest dropped
until the longest answer fits ``max_seq_length``), and the current observation with the
previous step's outcome. The neighbours change with every observation, so the cache is
rebuilt at every step.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from transformers import AutoModelForCausalLM, DynamicCache, PreTrainedModel

from workflow_scripts.policy import PolicyFailure, load_once
from workflow_scripts.qwen.chat_format import (
    ActionParseError,
    ContextStep,
    assistant_message,
    parse_action,
    system_prompt,
)
from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer, tokenizer_fingerprint
from workflow_scripts.qwen.train import ENVS_FILE
from workflow_scripts.spaces import space_from_dict

if TYPE_CHECKING:
    from workflow_scripts.retrieval.context import RetrievalContext

# Extra tokens allowed beyond the longest well-formed answer before giving up on a step.
ANSWER_TOKEN_MARGIN = 16
# A number as long as the format prints one (6 significant digits, sign, exponent).
LONGEST_NUMBER = -1.23457e-05


@dataclass
class _Transition(ContextStep):
    # Its user message's ids, as a later step and as the one opening the context (cached).
    user_ids: list[int] | None = None
    first_user_ids: list[int] | None = None
    # The model's own answer tokens, <|im_end|> included.
    answer_ids: list[int] = field(default_factory=list)


def max_answer_tokens(encoder: ChatMLEncoder, action_space: spaces.Space) -> int:
    """A bound on the tokens of one answer: the longest well-formed one plus a margin."""
    if isinstance(action_space, spaces.Discrete):
        longest = assistant_message(int(action_space.start + action_space.n - 1), action_space)
    else:
        longest = assistant_message(np.full(action_space.shape, LONGEST_NUMBER), action_space)
    return len(encoder.encode(longest)) + 1 + ANSWER_TOKEN_MARGIN


class QwenPolicy:
    """A fine-tuned causal LM acting in one env (see the module docstring)."""

    def __init__(
        self,
        model: PreTrainedModel,
        encoder: ChatMLEncoder,
        env_id: str,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        n_transitions_max: int,
        max_seq_length: int,
        reuse_kv_cache: bool = True,
        fifo_drop: int = 1,
        retrieval: RetrievalContext | None = None,
    ):
        if fifo_drop < 1 or fifo_drop > n_transitions_max:
            raise ValueError(f"fifo_drop must be in 1..{n_transitions_max}, got {fifo_drop}")
        self.model = model.eval()
        self.encoder = encoder
        self.env_id = env_id
        self.observation_space = observation_space
        self.action_space = action_space
        self.n_transitions_max = int(n_transitions_max)
        self.max_seq_length = int(max_seq_length)
        self.reuse_kv_cache = reuse_kv_cache
        self.fifo_drop = int(fifo_drop)
        self.retrieval = retrieval
        self.max_new_tokens = max_answer_tokens(encoder, action_space)
        self.device = next(model.parameters()).device
        self.system_ids = encoder.message_ids(
            "system", encoder.encode(system_prompt(env_id, action_space))
        )
        # Counters for benchmarks and logs.
        self.n_forward_tokens = 0
        self.n_generated_tokens = 0
        self.n_cache_rebuilds = 0
        self.reset()

    def reset(self) -> None:
        """Start a new episode: empty context and cache."""
        self._transitions: deque[_Transition] = deque()
        self._cache: DynamicCache | None = None
        self._cached_ids: list[int] = []
        self._retrieval_ids: list[int] = []

    @property
    def n_transitions_in_context(self) -> int:
        return len(self._transitions)

    def context_ids(self) -> list[int]:
        """Token ids of the current context, up to the open assistant header."""
        if self.retrieval is not None:
            return list(self._retrieval_ids)
        ids = list(self.system_ids)
        for index, transition in enumerate(self._transitions):
            opens = index == 0
            cached = transition.first_user_ids if opens else transition.user_ids
            if cached is None:
                content = transition.user_message(self.observation_space, opens_context=opens)
                cached = self.encoder.message_ids("user", self.encoder.encode(content))
                if opens:
                    transition.first_user_ids = cached
                else:
                    transition.user_ids = cached
            ids += cached
            ids += self.encoder.generation_prompt_ids
            if transition.answer_ids:
                ids += transition.answer_ids + self.encoder.newline_ids
        return ids

    def _forward(self, new_ids: list[int]) -> torch.Tensor:
        """Feed ``new_ids`` on top of the cache; return the logits of the last position."""
        input_ids = torch.tensor([new_ids], dtype=torch.long, device=self.device)
        output = self.model(
            input_ids=input_ids, past_key_values=self._cache, use_cache=True, logits_to_keep=1
        )
        self._cache = output.past_key_values
        self._cached_ids += new_ids
        self.n_forward_tokens += len(new_ids)
        return output.logits[0, -1]

    def _messages_ids(
        self, messages: list[dict[str, str]], encoded: dict[tuple[str, str], list[int]]
    ) -> list[int]:
        """ChatML ids of ``messages`` up to the open assistant header; each message is
        encoded once and kept in ``encoded`` (the retrieval context re-measures the same
        messages while it drops neighbours)."""
        ids = []
        for message in messages:
            key = (message["role"], message["content"])
            if key not in encoded:
                encoded[key] = self.encoder.message_ids(key[0], self.encoder.encode(key[1]))
            ids += encoded[key]
        return ids + self.encoder.generation_prompt_ids

    def observe(self, observation: Any, prev_reward: float | None, prev_term: bool | None) -> None:
        """Add the new observation to the context, dropping the oldest transitions if needed
        (or, with a retrieval context, build the context of its nearest transitions)."""
        transition = _Transition.observed(observation, prev_reward, prev_term)
        if self.retrieval is not None:
            self._transitions = deque([transition])
            encoded: dict[tuple[str, str], list[int]] = {}
            messages = self.retrieval.messages(
                transition.observation,
                transition.reward,
                transition.terminated,
                transition.truncated,
                fits=lambda messages: (
                    len(self._messages_ids(messages, encoded)) + self.max_new_tokens
                    <= self.max_seq_length
                ),
            )
            self._retrieval_ids = self._messages_ids(messages, encoded)
            return
        self._transitions.append(transition)
        # FIFO: at most n_transitions_max transitions (the current one included), and room
        # for the longest answer within max_seq_length. The paper drops one transition at a
        # time (fifo_drop=1), which rebuilds the cache at every step once the window is full;
        # dropping k at once rebuilds it every k steps, at the cost of a shorter context.
        if len(self._transitions) > self.n_transitions_max:
            for _ in range(min(self.fifo_drop, len(self._transitions) - 1)):
                self._transitions.popleft()
        while (
            len(self.context_ids()) + self.max_new_tokens > self.max_seq_length
            and len(self._transitions) > 1
        ):
            self._transitions.popleft()

    @torch.inference_mode()
    def next_token_logits(self) -> torch.Tensor:
        """Bring the cache up to date with the context; logits of the answer's first token.

        With ``reuse_kv_cache`` only the tokens after the cached prefix are fed; the cache
        is rebuilt when the prefix changed (after a FIFO drop) or when reuse is off.
        """
        context = self.context_ids()
        n_cached = len(self._cached_ids)
        reusable = (
            self.reuse_kv_cache
            and self._cache is not None
            and n_cached < len(context)
            and context[:n_cached] == self._cached_ids
        )
        if not reusable:
            if self._cache is not None:
                self.n_cache_rebuilds += 1
            self._cache, self._cached_ids = None, []
        return self._forward(context[len(self._cached_ids) :])

    @torch.inference_mode()
    def generate_answer(self, logits: torch.Tensor) -> list[int]:
        """Greedy tokens up to and including ``<|im_end|>`` (PolicyFailure past the bound)."""
        answer: list[int] = []
        while True:
            token = int(torch.argmax(logits))
            answer.append(token)
            self.n_generated_tokens += 1
            if token == self.encoder.im_end_id:
                return answer
            if len(answer) >= self.max_new_tokens:
                # Closed and kept in the context, so the policy stays consistent if a
                # caller carries on after the failure (the evaluation harness stops).
                self.record_answer([*answer, self.encoder.im_end_id])
                raise PolicyFailure(
                    f"no end of message within {self.max_new_tokens} generated tokens",
                    self.encoder.tokenizer.decode(answer),
                )
            logits = self._forward([token])

    def record_answer(self, answer_ids: list[int]) -> None:
        """Store the current step's answer (ending with ``<|im_end|>``) in the context."""
        if not answer_ids or answer_ids[-1] != self.encoder.im_end_id:
            raise ValueError("an answer must end with <|im_end|>")
        self._transitions[-1].answer_ids = list(answer_ids)

    def act(self, observation: Any, prev_reward: float | None, prev_term: bool | None) -> Any:
        """The greedy action for ``observation`` given the episode so far, as parsed (the
        harness checks it against the space); PolicyFailure for an answer that does not
        parse."""
        self.observe(observation, prev_reward, prev_term)
        answer = self.generate_answer(self.next_token_logits())
        # The cache covers the answer but its final <|im_end|>, which the next step feeds.
        self.record_answer(answer)
        raw_text = self.encoder.tokenizer.decode(answer[:-1])
        try:
            return parse_action(raw_text, self.action_space)
        except ActionParseError as error:
            raise PolicyFailure(str(error), raw_text) from None


def load_policy(
    model_dir: str | os.PathLike,
    env_id: str,
    device: str | torch.device | None = None,
    reuse_kv_cache: bool = True,
    fifo_drop: int = 1,
    retrieval: RetrievalContext | None = None,
) -> QwenPolicy:
    """The policy of a model folder written by ``train_qwen`` for one of its envs.

    ``device`` defaults to CUDA when available (bf16 weights there, fp32 on CPU).
    ``reuse_kv_cache=False`` re-encodes the whole context at every step (for comparison);
    ``fifo_drop`` is how many transitions a full window drops at once (the paper: 1);
    ``retrieval`` replaces the episode's history with the env's nearest dataset transitions.
    """
    model_dir = Path(model_dir)
    envs_path = model_dir / ENVS_FILE
    if not envs_path.is_file():
        raise FileNotFoundError(f"{model_dir}: not a Qwen model folder (no {ENVS_FILE})")
    envs = json.loads(envs_path.read_text())
    if env_id not in envs["envs"]:
        raise KeyError(
            f"{model_dir} was not trained on {env_id!r} (it knows {', '.join(sorted(envs['envs']))})"
        )
    spec = envs["envs"][env_id]
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    # Read once per folder, device and dtype in a job that evaluates it on several envs.
    model = load_once(
        model_dir,
        lambda: AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype, attn_implementation="sdpa"
        ).to(device),
        str(device),
        str(dtype),
    )
    tokenizer = load_tokenizer(model_dir)
    if tokenizer_fingerprint(tokenizer) != envs["tokenizer_sha256"]:
        raise ValueError(
            f"{model_dir}: the saved tokenizer differs from the one it was trained with"
        )
    encoder = ChatMLEncoder(tokenizer)
    return QwenPolicy(
        model,
        encoder,
        env_id,
        space_from_dict(spec["observation_space"]),
        space_from_dict(spec["action_space"]),
        spec["n_transitions_max"],
        envs["max_seq_length"],
        reuse_kv_cache=reuse_kv_cache,
        fifo_drop=fifo_drop,
        retrieval=retrieval,
    )
