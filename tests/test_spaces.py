"""Spaces as JSON: every space the benchmark stores survives the round trip, others are
refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium import spaces

from workflow_scripts.envs import make_env
from workflow_scripts.spaces import (
    flat_dim,
    space_from_dict,
    space_from_json,
    space_to_dict,
    space_to_json,
)


def assert_same_space(restored: spaces.Space, original: spaces.Space) -> None:
    assert type(restored) is type(original)
    assert restored == original  # gymnasium compares n/start, or shape, bounds and dtype
    if isinstance(original, spaces.Box):
        assert restored.dtype == original.dtype
        np.testing.assert_array_equal(restored.low, original.low)
        np.testing.assert_array_equal(restored.high, original.high)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(2),
        spaces.Discrete(5, start=-2),
        spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
        spaces.Box(low=np.array([-np.inf, 0.0]), high=np.array([np.inf, 2.5]), dtype=np.float64),
        spaces.Box(0, 255, shape=(2, 2), dtype=np.uint8),
        spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32),
    ],
    ids=["discrete", "discrete-start", "box", "box-infinite", "box-2d-uint8", "box-1"],
)
def test_round_trip_through_dict_and_json(space):
    assert_same_space(space_from_dict(space_to_dict(space)), space)
    text = space_to_json(space)
    assert json.loads(text)["type"] == type(space).__name__
    assert_same_space(space_from_json(text), space)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "FrozenLake-v1"])
def test_round_trip_of_real_env_spaces(env_id):
    env = make_env(env_id)
    try:
        for space in (env.observation_space, env.action_space):
            assert_same_space(space_from_json(space_to_json(space)), space)
    finally:
        env.close()


def test_infinite_bounds_stay_infinite_in_the_json_text():
    space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    text = space_to_json(space)
    assert "Infinity" in text
    assert np.isinf(space_from_json(text).low).all()


def test_discrete_without_start_defaults_to_zero():
    assert space_from_dict({"type": "Discrete", "n": 3}) == spaces.Discrete(3)


@pytest.mark.parametrize(
    "space",
    [
        spaces.MultiDiscrete([2, 3]),
        spaces.MultiBinary(4),
        spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3))),
        spaces.Dict({"a": spaces.Discrete(2)}),
    ],
    ids=["multidiscrete", "multibinary", "tuple", "dict"],
)
def test_unsupported_space_is_refused_by_name(space):
    with pytest.raises(ValueError, match="only Box and Discrete"):
        space_to_dict(space)


@pytest.mark.parametrize(
    "description",
    [{"type": "MultiDiscrete", "nvec": [2, 3]}, {"n": 3}, {}],
    ids=["unknown-type", "no-type", "empty"],
)
def test_unknown_description_is_refused(description):
    with pytest.raises(ValueError, match="unknown space type"):
        space_from_dict(description)


def test_box_whose_bounds_do_not_fit_its_shape_is_refused():
    description = space_to_dict(spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32))
    description["low"] = description["low"][:2]
    with pytest.raises(ValueError):
        space_from_dict(description)


def test_bad_json_text_is_refused():
    with pytest.raises(json.JSONDecodeError):
        space_from_json('{"type": "Discrete", "n": ')


@pytest.mark.parametrize(
    ("space", "size"),
    [
        (spaces.Discrete(7), 1),
        (spaces.Box(-1.0, 1.0, shape=(4,)), 4),
        (spaces.Box(0, 1, shape=(2, 3)), 6),
    ],
)
def test_flat_dim_is_the_values_per_dataset_row(space, size):
    assert flat_dim(space) == size
