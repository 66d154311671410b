"""The paper's chat format: RL transitions as a system prompt and user/assistant messages.

Ground truth is the two example conversations of the paper's "Qwen-1.7B specifics"
(CartPole-v1 and HalfCheetah-v4); tests/qwen/test_chat_format.py reproduces them character
for character. The rules they show:

- system: the env id, the goal, the autoreset note and the action space sentence;
- user: ``{"observation": [...]}`` for the first observation of a window, then
  ``{"observation": [...], "reward": r, "term": False, "trunc": False}`` where reward,
  term and trunc are the outcome of the previous action (Python-style ``False``/``True``);
- assistant: ``{"action": a}``, the only part the model learns to write (valid JSON).

Numbers are printed with 6 significant digits (``%g``: ``1`` for an integral reward,
``0.0125555``, ``-0.000438883``); Discrete values as plain integers. Action bounds in the
system prompt are printed as Python floats (``-1.0``), each with the shortest text that
reads back to the same float32.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

SYSTEM_PROMPT_TEMPLATE = (
    "You control a {env_id} agent.\n"
    "Your goal is to maximize the sum of the rewards obtained during an episode "
    "(Reinforcement Learning).\n"
    "Feel free to explore, you are given several episodes to find the best policy.\n"
    "Note that the environment is autoresetting when an episode is done.\n"
    "Return ONLY valid JSON with exactly one key:\n"
    '{{"action":a}}\n'
    "Where a is {action_description}\n"
    "No extra text.\n"
)


class ActionParseError(ValueError):
    """An assistant answer that is not ``{"action": a}`` with ``a`` of the action space's
    kind (an integer, or a list of the right number of finite numbers); whether ``a`` is
    within the space is the evaluation harness's decision, not the parser's."""


def format_number(value: float) -> str:
    """A number as the paper prints it: 6 significant digits, no trailing zeros (``%g``)."""
    return f"{float(value):.6g}"


def _format_bound(value: float, dtype: np.dtype) -> str:
    # Shortest text that reads back to the same value in the space's dtype, always with a
    # decimal point as Python prints floats: float32 -1 -> "-1.0", float32 0.4 -> "0.4".
    text = str(np.dtype(dtype).type(value)) if np.dtype(dtype).kind == "f" else repr(float(value))
    if text.lstrip("-").isdigit():
        text += ".0"
    return text


def format_space_value(value: Any, space: spaces.Space) -> str:
    """An observation or action as it appears in a message: an int or a list of numbers."""
    if isinstance(space, spaces.Discrete):
        return str(int(np.asarray(value).reshape(())))
    if isinstance(space, spaces.Box):
        flat = np.asarray(value, dtype=np.float64).reshape(-1)
        return "[" + ", ".join(format_number(x) for x in flat) + "]"
    raise ValueError(f"unsupported space {space!r}: only Box and Discrete are handled")


def describe_action_space(action_space: spaces.Space) -> str:
    """The 'Where a is ...' sentence of the system prompt."""
    if isinstance(action_space, spaces.Discrete):
        first = int(action_space.start)
        return f"an integer in {first}..{first + int(action_space.n) - 1}"
    if isinstance(action_space, spaces.Box):
        n_values = int(np.prod(action_space.shape))
        names = ", ".join(f"a{i}" for i in range(n_values))
        low = ", ".join(_format_bound(x, action_space.dtype) for x in action_space.low.reshape(-1))
        high = ", ".join(
            _format_bound(x, action_space.dtype) for x in action_space.high.reshape(-1)
        )
        return (
            f"a list of {n_values} floats formatted as [{names}], "
            f"respecting the lower bound [{low}] and upper bound [{high}]"
        )
    raise ValueError(f"unsupported action space {action_space!r}")


def system_prompt(env_id: str, action_space: spaces.Space) -> str:
    """The system message: instructions, env id, action space, output format."""
    return SYSTEM_PROMPT_TEMPLATE.format(
        env_id=env_id, action_description=describe_action_space(action_space)
    )


def user_message(
    observation: Any,
    observation_space: spaces.Space,
    reward: float | None = None,
    terminated: bool | None = None,
    truncated: bool | None = None,
) -> str:
    """An observation message; with the previous step's outcome unless it opens a window.

    ``reward``, ``terminated`` and ``truncated`` are given together (not the first
    observation of a window) or all omitted (the first one).
    """
    observation_text = format_space_value(observation, observation_space)
    outcome = (reward, terminated, truncated)
    if all(part is None for part in outcome):
        return f'{{"observation": {observation_text}}}'
    if any(part is None for part in outcome):
        raise ValueError("reward, terminated and truncated go together: give all three or none")
    return (
        f'{{"observation": {observation_text}, "reward": {format_number(reward)}, '
        f'"term": {bool(terminated)}, "trunc": {bool(truncated)}}}'
    )


@dataclass
class ContextStep:
    """One env step in a chat policy's context (the trained Qwen's or an endpoint's): the
    observation and the outcome of the previous action, none on an episode's first step
    (the harness gives ``prev_reward=None`` there), else the previous reward and
    termination, never truncated (a truncated step would have ended the episode)."""

    observation: Any
    reward: float | None
    terminated: bool | None
    truncated: bool | None

    @classmethod
    def observed(cls, observation: Any, prev_reward: float | None, prev_term: bool | None):
        """The step of ``act(observation, prev_reward, prev_term)`` (a subclass's own fields
        take their defaults)."""
        if prev_reward is None:
            outcome = {"reward": None, "terminated": None, "truncated": None}
        else:
            outcome = {
                "reward": float(prev_reward),
                "terminated": bool(prev_term),
                "truncated": False,
            }
        return cls(observation=np.asarray(observation).copy(), **outcome)

    def user_message(self, observation_space: spaces.Space, opens_context: bool) -> str:
        """Its user message. The step that opens the context (the oldest one kept) is shown
        without the previous outcome, as a training window's first observation is."""
        if opens_context:
            return user_message(self.observation, observation_space)
        return user_message(
            self.observation, observation_space, self.reward, self.terminated, self.truncated
        )


def assistant_message(action: Any, action_space: spaces.Space) -> str:
    """The action message the model learns to write: ``{"action": a}``."""
    return f'{{"action": {format_space_value(action, action_space)}}}'


def window_messages(
    env_id: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
) -> list[dict[str, str]]:
    """The conversation for a window of consecutive dataset rows (may span episodes).

    Row i holds o_i, a_i and the outcome (r_i, term_i, trunc_i) of a_i, which the user
    message of row i+1 reports. The last row's outcome is not shown.
    """
    n_rows = len(actions)
    messages = [{"role": "system", "content": system_prompt(env_id, action_space)}]
    for i in range(n_rows):
        if i == 0:
            content = user_message(observations[i], observation_space)
        else:
            content = user_message(
                observations[i],
                observation_space,
                float(rewards[i - 1]),
                bool(terminated[i - 1]),
                bool(truncated[i - 1]),
            )
        messages.append({"role": "user", "content": content})
        messages.append(
            {"role": "assistant", "content": assistant_message(actions[i], action_space)}
        )
    return messages


def parse_action(text: str, action_space: spaces.Space) -> int | np.ndarray:
    """Read an assistant answer back into the values it holds, in ``action_space``'s shape.

    Parsing only: raises :class:`ActionParseError` saying why for anything that is not
    exactly ``{"action": a}`` with ``a`` of the space's kind: an integer for Discrete
    (``true``/``false`` refused); for Box, a list of the space's number of finite numbers
    (a number too large for a float64, e.g. ``1e400``, is not finite). Whether the values
    are in the space is not checked here: the evaluation harness
    (:func:`workflow_scripts.evaluate.check_action`) decides that for every model, so a
    Discrete value out of range comes back as it is (the harness fails it) and so does a
    Box value beyond the bounds (the harness clips or fails it, by its rule). Box values
    come back as float64, so that a large value is not turned into infinity by a cast to
    the space's dtype before the harness sees it.
    """
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as error:
        raise ActionParseError(f"not valid JSON ({error.msg} at char {error.pos})") from None
    if not isinstance(answer, dict) or list(answer) != ["action"]:
        raise ActionParseError('not a JSON object with exactly one key "action"')
    value = answer["action"]
    if isinstance(action_space, spaces.Discrete):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ActionParseError(f"action {value!r} is not an integer")
        return value
    if isinstance(action_space, spaces.Box):
        n_values = int(np.prod(action_space.shape))
        if not isinstance(value, list) or len(value) != n_values:
            raise ActionParseError(f"action is not a list of {n_values} numbers")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            raise ActionParseError("action list holds something that is not a number")
        if not all(_is_finite_number(x) for x in value):
            raise ActionParseError("action holds a non-finite number")
        return np.asarray(value, dtype=np.float64).reshape(action_space.shape)
    raise ValueError(f"unsupported action space {action_space!r}")


def _is_finite_number(value: int | float) -> bool:
    # JSON integers are unbounded in Python; one beyond float64's range is not finite.
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
