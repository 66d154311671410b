"""The paper's chat format, checked against its two example conversations verbatim."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium import spaces

from workflow_scripts.qwen.chat_format import (
    ActionParseError,
    assistant_message,
    describe_action_space,
    parse_action,
    system_prompt,
    user_message,
    window_messages,
)

# Copied character for character from the paper ("Qwen-1.7B specifics"): each line is the
# conversation's messages as comma-separated JSON objects.
PAPER_CARTPOLE = r"""{"content":"You control a CartPole-v1 agent.\nYour goal is to maximize the sum of the rewards obtained during an episode (Reinforcement Learning).\nFeel free to explore, you are given several episodes to find the best policy.\nNote that the environment is autoresetting when an episode is done.\nReturn ONLY valid JSON with exactly one key:\n{\"action\":a}\nWhere a is an integer in 0..1\nNo extra text.\n","role":"system"},{"content":"{\"observation\": [0.0125555, -0.0327935, -0.0235698, -0.033951]}","role":"user"},{"content":"{\"action\": 0}","role":"assistant"},{"content":"{\"observation\": [0.0118997, -0.22757, -0.0242488, 0.251203], \"reward\": 1, \"term\": False, \"trunc\": False}","role":"user"},{"content":"{\"action\": 0}","role":"assistant"},{"content":"{\"observation\": [0.00734828, -0.422337, -0.0192248, 0.53614], \"reward\": 1, \"term\": False, \"trunc\": False}","role":"user"},{"content":"{\"action\": 0}","role":"assistant"}"""
PAPER_HALFCHEETAH = r"""{"content":"You control a HalfCheetah-v4 agent.\nYour goal is to maximize the sum of the rewards obtained during an episode (Reinforcement Learning).\nFeel free to explore, you are given several episodes to find the best policy.\nNote that the environment is autoresetting when an episode is done.\nReturn ONLY valid JSON with exactly one key:\n{\"action\":a}\nWhere a is a list of 6 floats formatted as [a0, a1, a2, a3, a4, a5], respecting the lower bound [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0] and upper bound [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\nNo extra text.\n","role":"system"},{"content":"{\"observation\": [0.0731153, -0.0756214, -0.0697146, -0.0345845, -0.0649871, -0.0479404, 0.0472209, 0.0910212, 0.00440165, 0.149537, -0.0911166, 0.167378, -0.0381019, 0.178949, -0.0664392, 0.0603031, -0.000438883]}","role":"user"},{"content":"{\"action\": [0.956099, -0.0899368, -0.656796, 0.402296, 0.288539, 0.742594]}","role":"assistant"},{"content":"{\"observation\": [-0.067301, 0.0394335, 0.195527, -0.167817, -0.152994, 0.194582, -0.0451425, 0.227252, 2.54028, -0.873769, -0.797803, 8.49115, 2.09069, -11.8046, 8.71891, 3.08689, -0.533467], \"reward\": 2.0996, \"term\": False, \"trunc\": False}","role":"user"},{"content":"{\"action\": [0.256653, 0.84912, -5.89574, -0.871725, 0.472961, 0.872767]}","role":"assistant"},{"content":"{\"observation\": [-0.0947112, -0.0670583, 0.322549, 0.358275, -0.457815, 0.133585, 0.326774, 0.423371, 0.74343, -0.0731082, -2.46382, -0.337217, 11.1515, 1.39821, -5.44028, 7.84672, 6.43616], \"reward\": 1.01134, \"term\": False, \"trunc\": False}","role":"user"},{"content":"{\"action\": [-0.797737, -0.608111, 0.0463318, -0.401778, 0.853886, 0.887671]}","role":"assistant"}"""


def paper_line(messages: list[dict[str, str]]) -> str:
    """Messages serialised as in the paper: compact JSON objects, content before role."""
    return ",".join(
        json.dumps({"content": m["content"], "role": m["role"]}, separators=(",", ":"))
        for m in messages
    )


def rows(observations, actions, rewards):
    n = len(actions)
    return dict(
        observations=np.asarray(observations, dtype=np.float32),
        actions=actions,
        rewards=np.asarray(rewards, dtype=np.float32),
        terminated=np.zeros(n, dtype=bool),
        truncated=np.zeros(n, dtype=bool),
    )


def test_cartpole_example_reproduced_exactly():
    observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    window = rows(
        [
            [0.0125555, -0.0327935, -0.0235698, -0.033951],
            [0.0118997, -0.22757, -0.0242488, 0.251203],
            [0.00734828, -0.422337, -0.0192248, 0.53614],
        ],
        np.array([0, 0, 0], dtype=np.int64),
        [1.0, 1.0, 1.0],
    )
    messages = window_messages("CartPole-v1", observation_space, spaces.Discrete(2), **window)
    assert paper_line(messages) == PAPER_CARTPOLE


def test_halfcheetah_example_reproduced_exactly():
    observation_space = spaces.Box(-np.inf, np.inf, (17,), np.float64)
    action_space = spaces.Box(-1.0, 1.0, (6,), np.float32)
    window = rows(
        [
            [
                0.0731153,
                -0.0756214,
                -0.0697146,
                -0.0345845,
                -0.0649871,
                -0.0479404,
                0.0472209,
                0.0910212,
                0.00440165,
                0.149537,
                -0.0911166,
                0.167378,
                -0.0381019,
                0.178949,
                -0.0664392,
                0.0603031,
                -0.000438883,
            ],
            [
                -0.067301,
                0.0394335,
                0.195527,
                -0.167817,
                -0.152994,
                0.194582,
                -0.0451425,
                0.227252,
                2.54028,
                -0.873769,
                -0.797803,
                8.49115,
                2.09069,
                -11.8046,
                8.71891,
                3.08689,
                -0.533467,
            ],
            [
                -0.0947112,
                -0.0670583,
                0.322549,
                0.358275,
                -0.457815,
                0.133585,
                0.326774,
                0.423371,
                0.74343,
                -0.0731082,
                -2.46382,
                -0.337217,
                11.1515,
                1.39821,
                -5.44028,
                7.84672,
                6.43616,
            ],
        ],  # fmt: skip
        # The paper's second action (-5.89574) is outside the bounds: formatting does not
        # care, and the test uses the paper's numbers unchanged.
        np.array(
            [
                [0.956099, -0.0899368, -0.656796, 0.402296, 0.288539, 0.742594],
                [0.256653, 0.84912, -5.89574, -0.871725, 0.472961, 0.872767],
                [-0.797737, -0.608111, 0.0463318, -0.401778, 0.853886, 0.887671],
            ],
            dtype=np.float32,
        ),
        [2.0996, 1.01134, 0.5],
    )
    messages = window_messages("HalfCheetah-v4", observation_space, action_space, **window)
    assert paper_line(messages) == PAPER_HALFCHEETAH


def test_messages_vary_with_their_inputs():
    # Guards against a formatter that ignores its arguments.
    box = spaces.Box(-2.0, 2.0, (1,), np.float32)
    assert user_message([0.5], box) == '{"observation": [0.5]}'
    assert (
        user_message([1e-7, -3.0], spaces.Box(-1, 1, (2,)), 2.5, True, False)
        == '{"observation": [1e-07, -3], "reward": 2.5, "term": True, "trunc": False}'
    )
    assert user_message(7, spaces.Discrete(16)) == '{"observation": 7}'
    assert assistant_message(np.array([1.23456789], np.float32), box) == '{"action": [1.23457]}'
    assert assistant_message(np.int64(3), spaces.Discrete(4)) == '{"action": 3}'
    assert describe_action_space(spaces.Discrete(6)) == "an integer in 0..5"
    assert describe_action_space(box) == (
        "a list of 1 floats formatted as [a0], respecting the lower bound [-2.0] and upper bound [2.0]"
    )
    assert "0.4" in describe_action_space(spaces.Box(-0.4, 0.4, (2,), np.float32))
    assert "You control a Taxi-v3 agent." in system_prompt("Taxi-v3", spaces.Discrete(6))
    with pytest.raises(ValueError, match="go together"):
        user_message([0.5], box, 1.0, None, False)


@pytest.mark.parametrize(
    "text, expected",
    [('{"action": 2}', 2), ('{"action":0}', 0), (' {"action": 3} ', 3)],
)
def test_parse_discrete_action(text, expected):
    assert parse_action(text, spaces.Discrete(4)) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"action": 1.0}', "not an integer"),
        ('{"action": true}', "not an integer"),
        ('{"action": 1', "not valid JSON"),
        ('{"action": 1, "x": 2}', "exactly one key"),
        ('{"move": 1}', "exactly one key"),
        ("[1]", "exactly one key"),
        ("", "not valid JSON"),
    ],
)
def test_parse_discrete_action_rejects(text, reason):
    with pytest.raises(ActionParseError, match=reason):
        parse_action(text, spaces.Discrete(4))


def test_parse_discrete_action_out_of_range_is_left_to_the_harness():
    # Parsing only: the range check is check_action's, which fails it for every model.
    assert parse_action('{"action": 4}', spaces.Discrete(4)) == 4
    assert parse_action('{"action": -1}', spaces.Discrete(4)) == -1


def test_parse_box_action():
    box = spaces.Box(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), dtype=np.float32)
    action = parse_action('{"action": [0.5, -2]}', box)
    assert action.dtype == np.float64 and action.tolist() == [0.5, -2.0]
    for text, reason in [
        ('{"action": [0.5]}', "list of 2 numbers"),
        ('{"action": [0.5, 1, 2]}', "list of 2 numbers"),
        ('{"action": [0.5, "1"]}', "not a number"),
        ('{"action": [0.5, true]}', "not a number"),
        ('{"action": [0.5, NaN]}', "non-finite"),
        ('{"action": [0.5, -Infinity]}', "non-finite"),
        ('{"action": [0.5, 1e400]}', "non-finite"),
        ('{"action": [0.5, 1' + "0" * 400 + "]}", "non-finite"),
        ('{"action": 0.5}', "list of 2 numbers"),
        ('{"actions": [0.5, 1]}', "exactly one key"),
        ('{"action": [0.5, 1]', "not valid JSON"),
    ]:
        with pytest.raises(ActionParseError, match=reason):
            parse_action(text, box)


def test_parse_box_action_beyond_the_bounds_returns_the_raw_values():
    # The paper's own HalfCheetah-v4 answer (Box(-1, 1, (6,))) holds -5.89574: the parser
    # returns it as written; the harness clips or fails it.
    box = spaces.Box(-1.0, 1.0, (6,), np.float32)
    text = '{"action": [0.256653, 0.84912, -5.89574, -0.871725, 0.472961, 0.872767]}'
    action = parse_action(text, box)
    assert action.shape == (6,) and action[2] == -5.89574
    # float64, so a finite value beyond float32's range is still finite for the harness.
    assert parse_action('{"action": [1e39, 0, 0, 0, 0, 0]}', box)[0] == 1e39


def test_parse_box_action_in_the_spaces_shape():
    box = spaces.Box(-1.0, 1.0, (2, 2), np.float32)
    assert parse_action('{"action": [1, 2, 3, 4]}', box).tolist() == [[1, 2], [3, 4]]


def test_formatted_actions_parse_back():
    box = spaces.Box(-0.4, 0.4, (3,), np.float32)
    box.seed(0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = box.sample() if rng.random() < 0.8 else np.array([-0.4, 0.4, 0.0], np.float32)
        parsed = parse_action(assistant_message(action, box), box)
        np.testing.assert_allclose(parsed, action, rtol=1e-5, atol=1e-9)
