"""The HDF5 dataset contract: writer, reader, validator and their errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from gymnasium import spaces

from workflow_scripts.dataset import DatasetError, DatasetWriter, read_info, validate_dataset

OBSERVATION_SPACE = spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTION_SPACE = spaces.Discrete(4)


def write_small(
    path, n=100, observation_space=OBSERVATION_SPACE, action_space=ACTION_SPACE, poison=None
):
    rng = np.random.default_rng(0)
    if isinstance(observation_space, spaces.Discrete):
        observations = rng.integers(observation_space.n, size=n)
    else:
        observations = rng.uniform(-1, 1, (n, *observation_space.shape)).astype(np.float32)
    if isinstance(action_space, spaces.Discrete):
        actions = rng.integers(action_space.n, size=n)
    else:
        actions = rng.uniform(-1, 1, (n, *action_space.shape)).astype(np.float32)
    rewards = rng.normal(size=n).astype(np.float32)
    if poison is not None:
        rewards[poison] = np.nan
    terminated = np.zeros(n, bool)
    terminated[::10] = True
    attrs = {
        "env_id": "Test-v0",
        "n_episodes": 10,
        "expert_mean_return": 1.5,
        "expert_std_return": 0.5,
        "seed": 7,
        "versions": {"numpy": np.__version__},
    }
    with DatasetWriter(path, n, observation_space, action_space, attrs) as writer:
        writer.append(
            observations[:40], actions[:40], rewards[:40], terminated[:40], np.zeros(40, bool)
        )
        writer.append(
            observations[40:], actions[40:], rewards[40:], terminated[40:], np.zeros(n - 40, bool)
        )
    return observations, actions, rewards


def test_round_trip_with_plain_h5py(tmp_path):
    path = tmp_path / "d.h5"
    observations, actions, rewards = write_small(path)
    with h5py.File(path, "r") as handle:
        assert (
            handle["observations"].shape == (100, 3) and handle["observations"].dtype == np.float32
        )
        assert handle["actions"].shape == (100,) and handle["actions"].dtype == np.int64
        np.testing.assert_array_equal(handle["observations"][:], observations)
        np.testing.assert_array_equal(handle["rewards"][:], rewards)
        assert handle["terminated"].dtype == bool
        assert json.loads(handle.attrs["versions"]) == {"numpy": np.__version__}
        assert json.loads(handle.attrs["action_space"]) == {"type": "Discrete", "n": 4, "start": 0}
    info = validate_dataset(path, env_id="Test-v0", observation_space=OBSERVATION_SPACE)
    assert info.n_transitions == 100 and info.expert_mean_return == 1.5 and info.seed == 7
    assert info.action_space == ACTION_SPACE


def test_discrete_observations_and_box_actions(tmp_path):
    path = tmp_path / "d.h5"
    write_small(
        path,
        observation_space=spaces.Discrete(16),
        action_space=spaces.Box(-2, 2, (2,), np.float32),
    )
    info = validate_dataset(path)
    assert info.observation_space == spaces.Discrete(16)
    assert info.action_space.shape == (2,)


def test_failed_writer_leaves_nothing_that_looks_complete(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with DatasetWriter(
            path, 10, OBSERVATION_SPACE, ACTION_SPACE, {"env_id": "Test-v0"}
        ) as writer:
            writer.append(np.zeros((5, 3)), np.zeros(5), np.zeros(5), np.zeros(5), np.zeros(5))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_to_finish_short(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(RuntimeError, match="5 of 10 rows"):
        with DatasetWriter(
            path, 10, OBSERVATION_SPACE, ACTION_SPACE, {"env_id": "Test-v0"}
        ) as writer:
            writer.append(np.zeros((5, 3)), np.zeros(5), np.zeros(5), np.zeros(5), np.zeros(5))
    assert not path.exists()


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "d.h5"
    write_small(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"d\.h5: cannot be opened as HDF5"):
        read_info(path)


def test_missing_dataset_and_wrong_env(tmp_path):
    path = tmp_path / "d.h5"
    write_small(path)
    with pytest.raises(DatasetError, match="holds env 'Test-v0', expected 'CartPole-v1'"):
        read_info(path, env_id="CartPole-v1")
    with h5py.File(path, "a") as handle:
        del handle["rewards"]
    with pytest.raises(DatasetError, match="missing dataset.*rewards"):
        read_info(path)


def test_incomplete_marker(tmp_path):
    path = tmp_path / "d.h5"
    write_small(path)
    with h5py.File(path, "a") as handle:
        handle.attrs["complete"] = False
    with pytest.raises(DatasetError, match="marked incomplete"):
        read_info(path)


def test_nan_row_is_found(tmp_path):
    path = tmp_path / "d.h5"
    write_small(path, poison=57)
    read_info(path)  # structure is fine
    with pytest.raises(DatasetError, match="rewards has a non-finite value.*row 57"):
        validate_dataset(path)


def test_space_mismatch(tmp_path):
    path = tmp_path / "d.h5"
    write_small(path)
    with pytest.raises(DatasetError, match="observation space"):
        validate_dataset(path, observation_space=spaces.Box(-1.0, 1.0, (4,), np.float32))


def test_discrete_value_outside_space(tmp_path):
    path = tmp_path / "d.h5"
    write_small(path)
    with h5py.File(path, "a") as handle:
        handle["actions"][3] = 9
    with pytest.raises(DatasetError, match="actions row 3 holds 9"):
        validate_dataset(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_info(tmp_path / "nope.h5")


def test_validate_dataset_cli(tmp_path, capsys):
    from workflow_scripts.validate_dataset import main

    good, bad = tmp_path / "good.h5", tmp_path / "bad.h5"
    write_small(good)
    write_small(bad, poison=3)
    assert main([str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main([str(good), str(bad)]) == 1
    assert "bad.h5: rewards has a non-finite value" in capsys.readouterr().err
