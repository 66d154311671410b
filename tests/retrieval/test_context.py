"""The retrieval context: the paper's chat messages, nearest expert transitions last, then
the current observation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from tests.retrieval.conftest import write_rows
from workflow_scripts.qwen.chat_format import assistant_message, system_prompt, user_message
from workflow_scripts.retrieval.context import retrieval_messages
from workflow_scripts.retrieval.index import build_index, load_index


def test_messages_hold_the_nearest_transitions_nearest_last(cartpole_index):
    query = np.array([0.02, 0.1, -0.03, -0.2], dtype=np.float32)
    messages = retrieval_messages(cartpole_index, query, 5)
    space = cartpole_index.observation_space
    assert messages[0] == {
        "role": "system",
        "content": system_prompt("CartPole-v1", cartpole_index.action_space),
    }
    assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * 5 + ["user"]
    assert messages[-1]["content"] == user_message(query, space)
    _, points = cartpole_index.search(query, 5)
    shown = [messages[1 + 2 * i] for i in range(5)]
    for message, point in zip(shown, points[::-1], strict=True):
        observation = cartpole_index.observations([point])[0]
        assert message["content"] == user_message(observation, space)
    for i, point in enumerate(points[::-1]):
        assert messages[2 + 2 * i]["content"] == assistant_message(
            cartpole_index.action(int(point)), cartpole_index.action_space
        )


def test_a_dataset_observation_is_its_own_nearest_example(cartpole_dataset, cartpole_index):
    with h5py.File(cartpole_dataset) as handle:
        observation, action = handle["observations"][42], handle["actions"][42]
    messages = retrieval_messages(cartpole_index, observation, 3)
    assert messages[-3]["content"] == user_message(observation, cartpole_index.observation_space)
    assert messages[-2]["content"] == f'{{"action": {action}}}'
    assert (
        messages[-3]["content"].startswith('{"observation": [')
        and "reward" not in (messages[-3]["content"])
    )


def test_the_final_message_carries_the_previous_outcome_when_given(cartpole_index):
    query = np.zeros(4, np.float32)
    messages = retrieval_messages(cartpole_index, query, 2, reward=1.0, terminated=False,
                                  truncated=False)  # fmt: skip
    assert messages[-1]["content"] == (
        '{"observation": [0, 0, 0, 0], "reward": 1, "term": False, "trunc": False}'
    )
    with pytest.raises(ValueError, match="go together"):
        retrieval_messages(cartpole_index, query, 2, reward=1.0)


def test_no_neighbours_or_more_than_the_index_holds(tmp_path):
    dataset = write_rows(tmp_path / "FrozenLake-v1.h5", "FrozenLake-v1", [0, 4, 8], [1, 1, 2])
    build_index(dataset, tmp_path / "index.h5")
    with load_index(tmp_path / "index.h5") as index:
        assert [m["role"] for m in retrieval_messages(index, 4, 0)] == ["system", "user"]
        messages = retrieval_messages(index, 4, 10)
        assert len(messages) == 1 + 2 * 3 + 1
        # One-hot: state 4 itself is nearest (last); the others tie, earliest nearer.
        assert [m["content"] for m in messages[1:-1]] == [
            '{"observation": 8}', '{"action": 2}',
            '{"observation": 0}', '{"action": 1}',
            '{"observation": 4}', '{"action": 1}',
        ]  # fmt: skip
        assert messages[-1]["content"] == '{"observation": 4}'
        with pytest.raises(ValueError, match="n_neighbours"):
            retrieval_messages(index, 4, -1)


def test_same_arguments_same_messages(cartpole_index):
    query = np.array([0.1, 0.0, 0.05, 0.3], dtype=np.float32)
    assert retrieval_messages(cartpole_index, query, 4) == retrieval_messages(
        cartpole_index, query, 4
    )
