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

from typing import Any

from workflow_scripts.qwen.chat_format import assistant_message, system_prompt, user_message
from workflow_scripts.retrieval.index import RetrievalIndex


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
    if n_neighbours < 0:
        raise ValueError(f"n_neighbours must be >= 0, got {n_neighbours}")
    messages = [{"role": "system", "content": system_prompt(index.env_id, index.action_space)}]
    if n_neighbours:
        _, points = index.search(observation, n_neighbours)
        points = points[::-1]  # nearest last
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
    messages.append(
        {
            "role": "user",
            "content": user_message(
                observation, index.observation_space, reward, terminated, truncated
            ),
        }
    )
    return messages
