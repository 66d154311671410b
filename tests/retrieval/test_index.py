"""The retrieval index: keys, duplicates and their actions, exact lookups, tie-breaking,
provenance, and the errors that name the file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from gymnasium import spaces

from tests.retrieval.conftest import CARTPOLE_ROWS, write_rows
from tests.support.datasets import write_env_dataset
from workflow_scripts.dataset import ARRAY_NAMES, DatasetError, read_info
from workflow_scripts.provenance import sha256_json
from workflow_scripts.retrieval import index as index_module
from workflow_scripts.retrieval.index import (
    INDEX_KIND,
    IndexFileError,
    build_index,
    load_index,
    observation_keys,
)


def test_box_keys_are_standardized_with_the_datasets_mean_and_std(cartpole_dataset, cartpole_index):
    with h5py.File(cartpole_dataset) as handle:
        observations = handle["observations"][:].astype(np.float64)
    np.testing.assert_allclose(cartpole_index.mean, observations.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cartpole_index.std, observations.std(axis=0), rtol=1e-10)
    key = cartpole_index.keys(observations[5].astype(np.float32))
    expected = (observations[5] - observations.mean(axis=0)) / observations.std(axis=0)
    assert key.shape == (1, 4) and key.dtype == np.float32
    np.testing.assert_allclose(key[0], expected, rtol=1e-6)


def test_every_dataset_observation_finds_its_own_row_and_action(cartpole_dataset, cartpole_index):
    with h5py.File(cartpole_dataset) as handle:
        observations, actions = handle["observations"][:], handle["actions"][:]
    assert cartpole_index.n_points == CARTPOLE_ROWS  # continuous states: no duplicates
    for row in range(0, CARTPOLE_ROWS, 7):
        distances, points = cartpole_index.search(observations[row], 1)
        assert distances[0] == 0.0
        assert cartpole_index.rows(points)[0] == row
        assert cartpole_index.action(int(points[0])) == actions[row]


def test_search_returns_the_nearest_first_and_at_most_the_index(cartpole_index):
    query = np.array([0.01, -0.2, 0.03, 0.1], dtype=np.float32)
    distances, points = cartpole_index.search(query, 10)
    assert len(points) == 10 and np.all(np.diff(distances) >= 0)
    # The same ten as a brute-force scan of the standardized observations.
    every = cartpole_index.observations(np.arange(cartpole_index.n_points))
    keys = observation_keys(
        every, cartpole_index.observation_space, cartpole_index.mean, cartpole_index.std
    )
    brute = ((keys - cartpole_index.keys(query)) ** 2).sum(axis=1)
    np.testing.assert_array_equal(points, np.argsort(brute, kind="stable")[:10])
    assert len(cartpole_index.search(query, 10 * CARTPOLE_ROWS)[1]) == CARTPOLE_ROWS


def test_constant_dimension_gets_std_one(tmp_path):
    observations = np.array([[0.1, 2.0, 0.0, 0.0], [0.3, 2.0, 0.0, 0.0], [0.5, 2.0, 0.0, 1.0]])
    dataset = write_rows(tmp_path / "CartPole-v1.h5", "CartPole-v1", observations, [0, 1, 1])
    build_index(dataset, tmp_path / "index.h5")
    with load_index(tmp_path / "index.h5") as index:
        assert index.std[1] == 1.0 and index.mean[1] == pytest.approx(2.0)
        assert index.nearest(np.array([0.3, 5.0, 0.0, 0.0])) == 1


def test_identical_observations_are_one_point_with_the_most_common_action(tmp_path):
    same = [0.1, 0.2, 0.3, 0.4]
    observations = np.array([same, [0.5, 0.5, 0.5, 0.5], same, same, [-0.0, 1.0, 1.0, 1.0],
                             [0.0, 1.0, 1.0, 1.0]], dtype=np.float32)  # fmt: skip
    actions = [0, 1, 1, 1, 1, 0]  # `same`: 0, 1, 1 -> 1; the (+-0.0) pair: 1, 0 -> tie -> 0
    dataset = write_rows(tmp_path / "CartPole-v1.h5", "CartPole-v1", observations, actions)
    build_index(dataset, tmp_path / "index.h5")
    with load_index(tmp_path / "index.h5") as index:
        assert index.n_points == 3
        np.testing.assert_array_equal(index.rows(np.arange(3)), [0, 1, 4])
        with h5py.File(tmp_path / "index.h5") as handle:
            np.testing.assert_array_equal(handle["counts"][:], [3, 1, 2])
        assert index.action(index.nearest(np.array(same, np.float32))) == 1
        assert index.action(index.nearest(np.array([0.0, 1.0, 1.0, 1.0], np.float32))) == 0


def test_box_actions_of_identical_observations_are_the_first_rows(tmp_path):
    observations = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [1.0, 0.0, 0.5]], np.float32)
    actions = np.array([[0.5], [-1.0], [1.5]], np.float32)
    dataset = write_rows(tmp_path / "Pendulum-v1.h5", "Pendulum-v1", observations, actions)
    build_index(dataset, tmp_path / "index.h5")
    with load_index(tmp_path / "index.h5") as index:
        assert index.n_points == 2
        action = index.action(index.nearest(observations[2]))
        assert action.shape == (1,) and action.dtype == np.float32 and action[0] == 0.5


def test_duplicates_are_confirmed_by_value_not_by_hash(tmp_path, monkeypatch):
    # Every row hashing alike must still group only the rows that are truly equal.
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(20, 4)).astype(np.float32)
    picks = rng.integers(0, 20, size=300)
    observations, actions = distinct[picks], rng.integers(0, 2, size=300)
    dataset = write_rows(tmp_path / "CartPole-v1.h5", "CartPole-v1", observations, actions)
    monkeypatch.setattr(index_module, "_row_hashes", lambda obs: np.zeros(obs.shape[0], np.uint64))
    build_index(dataset, tmp_path / "index.h5")
    _, first_rows = np.unique(picks, return_index=True)
    with load_index(tmp_path / "index.h5") as index:
        np.testing.assert_array_equal(index.rows(np.arange(index.n_points)), np.sort(first_rows))
        for value in range(20):
            votes = np.bincount(actions[picks == value], minlength=2)
            assert index.action(index.nearest(distinct[value])) == int(np.argmax(votes))


def test_discrete_observations_are_one_hot(tmp_path):
    # FrozenLake states 0, 5, 0, 0, 14, 5: state 0 took 2, 2, 1 -> 2; state 5 took 3, 0 -> 0.
    dataset = write_rows(
        tmp_path / "FrozenLake-v1.h5", "FrozenLake-v1", [0, 5, 0, 0, 14, 5], [2, 3, 2, 1, 1, 0]
    )
    build_index(dataset, tmp_path / "index.h5")
    with load_index(tmp_path / "index.h5") as index:
        assert index.attrs["encoding"] == "one_hot" and index.mean is None
        assert index.keys(5).tolist() == [[0.0] * 5 + [1.0] + [0.0] * 10]
        assert [index.action(index.nearest(state)) for state in (0, 5, 14)] == [2, 0, 1]
        # An unseen state is equally far from every stored one: the earliest wins.
        distances, points = index.search(9, 3)
        assert distances.tolist() == [2.0, 2.0, 2.0] and points.tolist() == [0, 1, 2]
        assert index.nearest(9) == 0
        with pytest.raises(ValueError, match="outside"):
            index.keys(16)


def test_equally_near_distinct_points_go_to_the_earliest(tmp_path):
    # Four points at the same distance from the origin, stored in this order.
    observations = np.array([[0, 0, 0, 1], [0, 0, 1, 0], [0, 0, -1, 0], [0, 0, 0, -1]], np.float32)
    dataset = write_rows(tmp_path / "CartPole-v1.h5", "CartPole-v1", observations, [1, 0, 1, 0])
    build_index(dataset, tmp_path / "index.h5")
    with load_index(tmp_path / "index.h5") as index:
        origin = index.mean * 1  # standardized to the zero key
        distances, points = index.search(origin.astype(np.float32), 4)
        assert len(set(distances.tolist())) == 1
        assert points.tolist() == [0, 1, 2, 3] and index.nearest(origin) == 0


def test_index_records_its_provenance(cartpole_dataset, cartpole_index):
    import faiss

    attrs = cartpole_index.attrs
    assert attrs["kind"] == INDEX_KIND and attrs["complete"] is True
    assert attrs["env_id"] == "CartPole-v1" and attrs["encoding"] == "standardized"
    assert attrs["dataset_attrs_sha256"] == sha256_json(read_info(cartpole_dataset).attrs)
    assert attrs["dataset_n_transitions"] == CARTPOLE_ROWS
    assert attrs["library"] == "faiss-cpu" and attrs["library_version"] == faiss.__version__
    assert attrs["build_time_s"] > 0 and attrs["created_utc"].endswith("+00:00")
    assert '"faiss-cpu"' in attrs["versions"] and "commit" in attrs["code_commit"]


def test_building_twice_gives_the_same_arrays(cartpole_dataset, cartpole_index_path, tmp_path):
    again = tmp_path / "CartPole-v1.h5"
    build_index(cartpole_dataset, again)
    with h5py.File(cartpole_index_path) as first, h5py.File(again) as second:
        assert sorted(first) == sorted(second)
        for name in first:
            np.testing.assert_array_equal(first[name][:], second[name][:])


def test_not_a_dataset_is_refused_naming_the_file(tmp_path):
    text = tmp_path / "CartPole-v1.h5"
    text.write_text("not hdf5")
    with pytest.raises(DatasetError, match="CartPole-v1.h5.*HDF5"):
        build_index(text, tmp_path / "out" / "CartPole-v1.h5")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_another_envs_dataset_is_refused(cartpole_dataset, tmp_path):
    with pytest.raises(DatasetError, match="expected 'Pendulum-v1'"):
        build_index(cartpole_dataset, tmp_path / "index.h5", env_id="Pendulum-v1")
    renamed = tmp_path / "Pendulum-v1.h5"
    renamed.write_bytes(cartpole_dataset.read_bytes())
    with pytest.raises(DatasetError, match="Pendulum-v1.h5: holds env 'CartPole-v1'"):
        build_index(renamed, tmp_path / "index.h5")
    with pytest.raises(DatasetError, match="written as Pendulum-v1.h5"):
        build_index(cartpole_dataset, tmp_path / "out" / "Pendulum-v1.h5")
    assert not (tmp_path / "index.h5").exists() and not (tmp_path / "out").exists()


def test_an_empty_dataset_is_refused(cartpole_dataset, tmp_path):
    empty = tmp_path / "CartPole-v1.h5"
    with h5py.File(cartpole_dataset) as source, h5py.File(empty, "w") as handle:
        for name in ARRAY_NAMES:
            handle.create_dataset(
                name, shape=(0, *source[name].shape[1:]), dtype=source[name].dtype
            )
        for key, value in source.attrs.items():
            handle.attrs[key] = value
        handle.attrs["n_transitions"] = 0
    with pytest.raises(DatasetError, match="CartPole-v1.h5: holds no transitions"):
        build_index(empty, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_load_refuses_what_is_not_a_complete_index_of_the_env(
    cartpole_dataset, cartpole_index_path, tmp_path
):
    with pytest.raises(IndexFileError, match="missing.h5: index file does not exist.*build_index"):
        load_index(tmp_path / "missing.h5")
    with pytest.raises(IndexFileError, match="not a retrieval index"):
        load_index(cartpole_dataset)
    with pytest.raises(IndexFileError, match="index of 'CartPole-v1', expected 'Pendulum-v1'"):
        load_index(cartpole_index_path, env_id="Pendulum-v1")
    unfinished = tmp_path / "CartPole-v1.h5"
    unfinished.write_bytes(cartpole_index_path.read_bytes())
    with h5py.File(unfinished, "a") as handle:
        handle.attrs["complete"] = False
    with pytest.raises(IndexFileError, match="incomplete"):
        load_index(unfinished)


def test_keys_refuse_unsupported_spaces_and_box_without_statistics():
    with pytest.raises(ValueError, match="mean and std"):
        observation_keys(np.zeros((1, 4)), spaces.Box(-1, 1, (4,)))
    with pytest.raises(ValueError, match="unsupported"):
        observation_keys(np.zeros((1, 2)), spaces.MultiBinary(2))


def test_a_real_discrete_dataset_round_trips(tmp_path):
    dataset = write_env_dataset(tmp_path / "FrozenLake-v1.h5", "FrozenLake-v1", 300, seed=1)
    build_index(dataset, tmp_path / "index.h5")
    with h5py.File(dataset) as handle:
        observations, actions = handle["observations"][:], handle["actions"][:]
    with load_index(tmp_path / "index.h5", "FrozenLake-v1") as index:
        assert index.n_points == len(np.unique(observations))
        for state in np.unique(observations):
            votes = np.bincount(actions[observations == state], minlength=4)
            assert index.action(index.nearest(int(state))) == int(np.argmax(votes))
