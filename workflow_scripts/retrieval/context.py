"""Retrieval context for chat models: the dataset transitions nearest the current
observation, with their expert actions, in the paper's chat format.

The paper's future work: "swap the history of interactions in the LLM history with an
experience-retrieval approach (putting in the context observations from the dataset that
are similar to the current observation, along with the optimal dataset actions)". The
conversation is the paper's (:mod:`workflow_scripts.qwen.chat_format`, unchanged):

- the system prompt of the env;
- for each of the ``n_neighbours`` nearest points of the index, farthest first and the
  nearest last (closest to the question), a user message with its observation and an
  assistant message with its expert action. Each is shown as a window's first
  observation, without reward/term/trunc: retrieved transitions are not consecutive, so
  there is no previous outcome to report;
- the current observation as the final user message (with the previous step's outcome
  when the caller gives it, as in the paper's episodes).

"Nearest" and "its expert action" are the index's (:mod:`workflow_scripts.retrieval.index`):
identical dataset observations are one point, with the most common expert action there
(Discrete actions) or the first row's (Box actions); equally near points in point order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workflow_scripts.qwen.chat_format import assistant_message, system_prompt, user_message
from workflow_scripts.retrieval.index import RetrievalIndex


def neighbour_messages(index: RetrievalIndex, points: np.ndarray) -> list[dict[str, str]]:
    """A user message (the observation) and an assistant message (its expert action) for each
    index point of ``points``, in the order given."""
    messages = []
    for point, neighbour in zip(points, index.observations(points), strict=True):
        messages.append(
            {"role": "user", "content": user_message(neighbour, index.observation_space)}
        )
        messages.append(
            {
                "role": "assistant",
                "content": assistant_message(index.action(int(point)), index.action_space),
            }
        )
    return messages


def retrieval_messages(
    index: RetrievalIndex,
    observation: Any,
    n_neighbours: int,
    reward: float | None = None,
    terminated: bool | None = None,
    truncated: bool | None = None,
) -> list[dict[str, str]]:
    """The chat messages for one step: system prompt, the ``n_neighbours`` nearest expert
    transitions (farthest first, nearest last; fewer if the index holds fewer points), then
    ``observation`` as the final user message.

    ``reward``, ``terminated`` and ``truncated`` (all three or none) are the previous step's
    outcome, shown in the final message as :func:`~workflow_scripts.qwen.chat_format.user_message`
    shows it. Same index and arguments, same messages.
    """
    return RetrievalContext(index, n_neighbours).messages(
        observation, reward, terminated, truncated
    )


@dataclass(frozen=True)
class RetrievalContext:
    """What a chat policy (the trained Qwen or an endpoint) puts in its context instead of
    the episode's history: the ``neighbours`` nearest transitions of ``index``.

    The policies ask :meth:`messages` at every step, with a ``fits`` test of their own
    (their token budget): the farthest neighbours are dropped, one transition at a time,
    until the conversation fits, as the history context drops its oldest transitions.
    """

    index: RetrievalIndex
    neighbours: int

    def __post_init__(self) -> None:
        if self.neighbours < 0:
            raise ValueError(f"n_neighbours must be >= 0, got {self.neighbours}")

    def messages(
        self,
        observation: Any,
        reward: float | None = None,
        terminated: bool | None = None,
        truncated: bool | None = None,
        fits: Callable[[list[dict[str, str]]], bool] | None = None,
    ) -> list[dict[str, str]]:
        """System prompt, the nearest transitions (farthest first), ``observation`` last
        with the previous step's outcome; the farthest dropped while ``fits`` says no."""
        system = {
            "role": "system",
            "content": system_prompt(self.index.env_id, self.index.action_space),
        }
        current = {
            "role": "user",
            "content": user_message(
                observation, self.index.observation_space, reward, terminated, truncated
            ),
        }
        points = np.zeros(0, dtype=np.int64)
        if self.neighbours:
            _, points = self.index.search(observation, self.neighbours)
        neighbours = neighbour_messages(self.index, points[::-1])  # nearest last
        while True:
            messages = [system, *neighbours, current]
            if fits is None or not neighbours or fits(messages):
                return messages
            neighbours = neighbours[2:]  # the farthest transition: its question and answer
