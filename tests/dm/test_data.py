"""The window loader: rows match the files, mixing, determinism with workers, bad data."""

from __future__ import annotations

from collections import Counter

import h5py
import numpy as np
import pytest
import torch

from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import tiny_dm_config
from workflow_scripts.dataset import DatasetError, read_info
from workflow_scripts.dm.data import WindowBatches, WindowSampler, make_loader
from workflow_scripts.dm.layout import FLAG_CONTINUING, FLAG_EPISODE_ENDED, FLAG_WINDOW_START


def make_batches(paths, batch_size=6, seed=0, rank=0, world_size=1, **config):
    infos = [read_info(path) for path in paths]
    return WindowBatches(infos, tiny_dm_config(**config), batch_size, seed, rank, world_size)


def test_windows_are_the_file_rows_with_shifted_reward_and_done(tiny_datasets):
    batches = make_batches(tiny_datasets)
    config = tiny_dm_config()
    steps = config.context_transitions
    for step in range(3):
        batch = batches[step]
        for row, (position, start) in enumerate(batches.window_indices(step)):
            with h5py.File(tiny_datasets[position], "r") as handle:
                env_id = handle.attrs["env_id"]
                rows = slice(start, start + steps)
                obs, act = handle["observations"][rows], handle["actions"][rows]
                rewards = handle["rewards"][rows]
                done = handle["terminated"][rows] | handle["truncated"][rows]
            env = config.env_index(env_id)
            assert batch["env_index"][row] == env
            if env_id == "FrozenLake-v1":
                assert np.array_equal(batch["discrete_observations"][row].numpy(), obs)
                assert np.array_equal(batch["discrete_actions"][row].numpy(), act)
            elif env_id == "CartPole-v1":
                assert np.array_equal(batch["observations"][row, :, :4].numpy(), obs)
                assert not batch["observations"][row, :, 4:].any()
                assert np.array_equal(batch["discrete_actions"][row].numpy(), act)
            else:
                assert np.array_equal(batch["observations"][row, :, :3].numpy(), obs)
                assert np.array_equal(batch["actions"][row, :, :1].numpy(), act)
            assert batch["prev_flags"][row, 0] == FLAG_WINDOW_START
            assert batch["prev_rewards"][row, 0] == 0
            assert np.array_equal(batch["prev_rewards"][row, 1:].numpy(), rewards[:-1])
            expected = np.where(done[:-1], FLAG_EPISODE_ENDED, FLAG_CONTINUING)
            assert np.array_equal(batch["prev_flags"][row, 1:].numpy(), expected)


def test_every_env_gets_the_same_number_of_windows():
    sampler = WindowSampler([1000, 50_000, 40], context_transitions=16, seed=3)
    counts = Counter(sampler(index)[0] for index in range(3 * 500))
    assert counts == {0: 500, 1: 500, 2: 500}
    for index in range(300):
        env, start = sampler(index)
        assert 0 <= start <= [1000, 50_000, 40][env] - 16
    starts = [sampler(index)[1] for index in range(3000) if sampler(index)[0] == 1]
    assert len(set(starts)) > 900  # start rows spread over the file


def legacy_window(n_starts, seed, global_index):
    """The unweighted mixing as it was before env_weights (one slot per env per block)."""
    block, slot = divmod(global_index, len(n_starts))
    rng = np.random.default_rng((seed, block))
    env_order = rng.permutation(len(n_starts))
    starts = rng.integers(0, n_starts, size=len(n_starts))
    env = int(env_order[slot])
    return env, int(starts[env])


def test_env_weights_give_each_env_its_share_and_weight_one_changes_nothing():
    sizes, context, seed = [1000, 50_000, 40], 16, 3
    plain = WindowSampler(sizes, context, seed)
    ones = WindowSampler(sizes, context, seed, weights=[1, 1, 1])
    n_starts = [n - context + 1 for n in sizes]
    for index in range(600):
        assert plain(index) == ones(index) == legacy_window(n_starts, seed, index)
    weighted = WindowSampler(sizes, context, seed, weights=[1, 3, 2])
    for block in range(50):  # every block of 6 holds exactly 1, 3 and 2 windows
        counts = Counter(weighted(index)[0] for index in range(6 * block, 6 * block + 6))
        assert counts == {0: 1, 1: 3, 2: 2}
    starts = [weighted(index) for index in range(600)]
    assert all(0 <= start <= sizes[env] - context for env, start in starts)
    assert starts == [weighted(index) for index in range(600)]  # resumable: index alone
    with pytest.raises(ValueError, match="positive integer weight"):
        WindowSampler(sizes, context, seed, weights=[1, 0, 2])


def test_env_weights_name_envs_of_the_datasets(tiny_datasets):
    infos = [read_info(path) for path in tiny_datasets]
    env_ids = [info.env_id for info in infos]
    batches = WindowBatches(infos, tiny_dm_config(), 12, 0, env_weights={env_ids[0]: 4})
    counts = Counter(position for step in range(20) for position, _ in batches.window_indices(step))
    assert counts[0] == 4 * counts[1] == 4 * counts[len(infos) - 1]
    with pytest.raises(ValueError, match="Nowhere-v0, which no dataset holds"):
        WindowBatches(infos, tiny_dm_config(), 12, 0, env_weights={"Nowhere-v0": 2})


def test_stream_is_deterministic_and_identical_with_workers(tiny_datasets):
    batches = make_batches(tiny_datasets, seed=5)
    serial = list(make_loader(batches, 2, 7, num_workers=0))
    with_workers = list(make_loader(make_batches(tiny_datasets, seed=5), 2, 7, num_workers=2))
    resumed = list(make_loader(make_batches(tiny_datasets, seed=5), 4, 7, num_workers=0))
    for a, b in zip(serial, with_workers, strict=True):
        assert all(torch.equal(a[key], b[key]) for key in a)
    for a, b in zip(serial[2:], resumed, strict=True):
        assert all(torch.equal(a[key], b[key]) for key in a)
    other_seed = make_batches(tiny_datasets, seed=6)[2]
    assert not torch.equal(other_seed["prev_rewards"], serial[0]["prev_rewards"])


def test_ranks_read_disjoint_parts_of_the_single_process_stream(tiny_datasets):
    single = make_batches(tiny_datasets, batch_size=4)
    rank0 = make_batches(tiny_datasets, batch_size=2, rank=0, world_size=2)
    rank1 = make_batches(tiny_datasets, batch_size=2, rank=1, world_size=2)
    for step in range(3):
        assert single.window_indices(step) == rank0.window_indices(step) + rank1.window_indices(
            step
        )


def test_nan_rows_and_short_files_are_named(tmp_path):
    path = write_env_dataset(
        tmp_path / "CartPole-v1.h5", "CartPole-v1", 40, seed=0, policy="heuristic"
    )
    with h5py.File(path, "r+") as handle:
        handle["observations"][:, 1] = np.nan
    batches = make_batches([path], batch_size=2, env_ids=("CartPole-v1",))
    with pytest.raises(
        DatasetError,
        match=r"CartPole-v1.h5: observations has a non-finite value .* \(env CartPole-v1\)",
    ):
        batches[0]
    short = write_env_dataset(
        tmp_path / "short" / "CartPole-v1.h5", "CartPole-v1", 10, seed=0, policy="heuristic"
    )
    with pytest.raises(DatasetError, match="fewer transitions than one training window"):
        make_batches([short], env_ids=("CartPole-v1",))
