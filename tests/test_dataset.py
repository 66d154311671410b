"""The HDF5 dataset contract: writer, reader, validator and their errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from gymnasium import spaces

from workflow_scripts.dataset import (
    FORMAT_VERSION,
    DatasetError,
    DatasetWriter,
    read_info,
    require_final_observations,
    validate_dataset,
)

OBSERVATION_SPACE = spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTION_SPACE = spaces.Discrete(4)
REQUIRED = {"n_episodes": 1, "expert_mean_return": 0.0, "expert_std_return": 0.0, "seed": 0}


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


# Format 2: one final observation per done row.


def write_with_finals(path, n=30, done_every=7, order=(1, 0)):
    """A format-2 file of ``n`` rows written in two halves (in ``order``); every
    ``done_every``-th row done and its final observation ``-(row + 1)`` in every dim."""
    rng = np.random.default_rng(1)
    observations = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    actions = rng.integers(4, size=n)
    rewards = rng.normal(size=n).astype(np.float32)
    terminated = np.zeros(n, bool)
    terminated[done_every - 1 :: done_every] = True
    truncated = np.zeros(n, bool)
    truncated[-1] = True  # a stream's cut, as the collector marks it
    done_rows = np.flatnonzero(terminated | truncated)
    finals = -(done_rows[:, None] + 1.0) * np.ones((1, 3), np.float32)
    attrs = {"env_id": "Test-v0", "n_episodes": 4, "expert_mean_return": 1.0,
             "expert_std_return": 0.0, "seed": 0}  # fmt: skip
    halves = [(0, n // 2), (n // 2, n)]
    with DatasetWriter(
        path, n, OBSERVATION_SPACE, ACTION_SPACE, attrs, with_final_observations=True
    ) as writer:
        for half in order:
            start, stop = halves[half]
            inside = (done_rows >= start) & (done_rows < stop)
            writer.write_at(
                start, observations[start:stop], actions[start:stop], rewards[start:stop],
                terminated[start:stop], truncated[start:stop], finals[inside],
            )  # fmt: skip
    return done_rows, finals


def test_final_observations_are_stored_one_per_done_row_in_row_order(tmp_path):
    path = tmp_path / "d.h5"
    done_rows, finals = write_with_finals(path, order=(1, 0))  # second half written first
    info = validate_dataset(path)
    assert info.format_version == FORMAT_VERSION == 2
    assert info.has_final_observations and info.n_final_observations == len(done_rows) == 5
    with h5py.File(path, "r") as handle:
        np.testing.assert_array_equal(handle["final_observation_rows"][:], done_rows)
        np.testing.assert_array_equal(handle["final_observations"][:], finals)
        assert handle["final_observations"].dtype == np.float32
        assert handle["final_observation_rows"].dtype == np.int64
        assert handle.attrs["format_version"] == 2


def test_writer_refuses_a_wrong_number_of_final_observations(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(ValueError, match="1 done rows but 3 final observations"):
        with DatasetWriter(
            path, 5, OBSERVATION_SPACE, ACTION_SPACE, {"env_id": "Test-v0"},
            with_final_observations=True,
        ) as writer:  # fmt: skip
            done = np.array([0, 0, 1, 0, 0], bool)
            writer.append(np.zeros((5, 3)), np.zeros(5), np.zeros(5), done, np.zeros(5, bool),
                          np.zeros((3, 3)))  # fmt: skip
    with pytest.raises(ValueError, match="required"):
        with DatasetWriter(
            path, 5, OBSERVATION_SPACE, ACTION_SPACE, {"env_id": "Test-v0"},
            with_final_observations=True,
        ) as writer:  # fmt: skip
            writer.append(np.zeros((5, 3)), np.zeros(5), np.zeros(5), np.zeros(5), np.zeros(5))
    assert not path.exists()


def test_format_1_file_is_read_and_refused_only_where_episodes_must_be_whole(tmp_path):
    """A file without final observations (the format before version 2, or a hand-made
    one): training readers take it; what needs whole episodes names it and its rebuild."""
    path = tmp_path / "CartPole-v1.h5"
    write_small(path)
    with h5py.File(path, "a") as handle:
        del handle.attrs["format_version"]  # as the collector before format 2 wrote it
    info = validate_dataset(path)
    assert info.format_version == 1 and not info.has_final_observations
    with pytest.raises(DatasetError) as refused:
        require_final_observations(info)
    message = str(refused.value)
    assert message.startswith(f"{path}: dataset format 1 has no final observations")
    assert "snakemake --force results/datasets/CartPole-v1.h5" in message


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    write_with_finals(path)
    with h5py.File(path, "a") as handle:
        handle.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(DatasetError, match=f"format {FORMAT_VERSION + 1} is newer"):
        read_info(path)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("drop_array", "format 2 but missing dataset.*final_observations"),
        ("wrong_row", "final_observation_rows are not the done rows"),
        ("one_more_done", "final_observation_rows are not the done rows"),
        ("nan", "final_observations has a non-finite value.*row 2"),
        ("short", "has shape"),
    ],
)
def test_validator_checks_the_final_observation_arrays(tmp_path, damage, problem):
    path = tmp_path / "d.h5"
    write_with_finals(path)
    with h5py.File(path, "a") as handle:
        if damage == "drop_array":
            del handle["final_observations"]
        elif damage == "wrong_row":
            handle["final_observation_rows"][1] = 15
        elif damage == "one_more_done":
            handle["terminated"][0] = True
        elif damage == "nan":
            handle["final_observations"][2, 1] = np.nan
        elif damage == "short":
            rows = handle["final_observation_rows"][:-1]
            del handle["final_observation_rows"]
            handle["final_observation_rows"] = rows
    with pytest.raises(DatasetError, match=problem):
        validate_dataset(path)


def test_validator_checks_discrete_final_observations_are_in_the_space(tmp_path):
    path = tmp_path / "d.h5"
    observation_space = spaces.Discrete(16)
    with DatasetWriter(
        path, 4, observation_space, ACTION_SPACE, dict(REQUIRED, env_id="Test-v0"),
        with_final_observations=True,
    ) as writer:  # fmt: skip
        done = np.array([0, 1, 0, 1], bool)
        writer.append(np.arange(4), np.zeros(4), np.zeros(4), done, np.zeros(4, bool),
                      np.array([15, 3]))  # fmt: skip
    assert validate_dataset(path).n_final_observations == 2
    with h5py.File(path, "a") as handle:
        handle["final_observations"][1] = 16
    with pytest.raises(DatasetError, match="final_observations row 1 holds 16, outside"):
        validate_dataset(path)


def test_validate_dataset_cli_reports_final_observations(tmp_path, capsys):
    from workflow_scripts.validate_dataset import main

    new, old = tmp_path / "new.h5", tmp_path / "old.h5"
    write_with_finals(new)
    write_small(old)
    assert main([str(new), str(old)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "format 2: 5 final observations, one per done row" in lines[0]
    assert "format 1: NOTE no final observations" in lines[1] and "--force" in lines[1]
