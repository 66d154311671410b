"""Dataset collection: exact row count, per-env contiguous streams, autoreset, final
observations (every episode complete), determinism."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from workflow_scripts.dataset import validate_dataset
from workflow_scripts.envs import make_env
from workflow_scripts.provenance import sha256_file
from workflow_scripts.rollout import collect_dataset, rollout


def random_actions(seed=0, n_actions=2):
    rng = np.random.default_rng(seed)
    return lambda observations: rng.integers(n_actions, size=len(observations))


def test_exact_rows_and_streams_replay_in_the_env(tmp_path):
    path = tmp_path / "cartpole.h5"
    summary = collect_dataset(
        "CartPole-v1", random_actions(), path, 1001, n_envs=4, seed=11, progress=False
    )
    info = validate_dataset(path, env_id="CartPole-v1")
    assert info.n_transitions == 1001
    assert summary["rows_per_env"] == 251 and info.n_episodes == summary["n_episodes"] > 10
    with h5py.File(path, "r") as handle:
        observations = handle["observations"][:]
        actions = handle["actions"][:]
        rewards = handle["rewards"][:]
        terminated = handle["terminated"][:]
        truncated = handle["truncated"][:]
        rows, values = handle["final_observation_rows"][:], handle["final_observations"][:]
        finals = dict(zip(rows.tolist(), values, strict=True))
    assert info.format_version == 2 and info.n_final_observations == len(finals)
    assert sorted(finals) == list(np.flatnonzero(terminated | truncated))
    # Each env copy's block replays exactly in a fresh env with the same seed and actions:
    # contiguous rows, autoreset after each done row, and each done row's final observation
    # is what the env returned before the reset (at the cut: the stream's next one).
    for rank, start in enumerate(range(0, 1001, 251)):
        stop = min(start + 251, 1001)
        env = make_env("CartPole-v1")
        observation, _ = env.reset(seed=11 + rank)
        for row in range(start, stop):
            np.testing.assert_array_equal(observations[row], observation)
            observation, reward, term, trunc, _ = env.step(int(actions[row]))
            assert rewards[row] == reward and terminated[row] == term
            if row < stop - 1:
                assert truncated[row] == trunc
            if terminated[row] or truncated[row]:
                np.testing.assert_array_equal(finals[row], observation)
            if term:
                # CartPole ends when the cart or pole leaves its limits: the stored final
                # state is outside them, unlike every stored row's observation.
                x, _, angle, _ = finals[row]
                assert abs(x) > 2.4 or abs(angle) > 12 * 2 * np.pi / 360
            if term or trunc:
                observation, _ = env.reset()
        assert truncated[stop - 1]  # the stream is cut at the block's end
    episode_starts = np.concatenate([[0], np.array(sorted(finals))[:-1] + 1])
    for start, end in zip(episode_starts, sorted(finals), strict=True):
        episode = np.concatenate([observations[start : end + 1], finals[end][None]])
        assert len(episode) == end - start + 2  # T + 1 observations for T actions


def test_frozenlake_final_observation_is_the_goal_or_a_hole(tmp_path):
    """Discrete observations: an episode's last state (never a row's observation, since the
    env resets there) is the goal after a reward of 1, a hole after a termination without."""
    path = tmp_path / "frozenlake.h5"
    collect_dataset(
        "FrozenLake-v1", random_actions(n_actions=4), path, 4000, n_envs=4, seed=3, progress=False
    )
    info = validate_dataset(path, env_id="FrozenLake-v1")
    with h5py.File(path, "r") as handle:
        rows = handle["final_observation_rows"][:]
        finals = handle["final_observations"][:]
        rewards = handle["rewards"][rows]
        terminated = handle["terminated"][rows]
        observations = handle["observations"][:]
    assert info.n_final_observations == len(rows) and finals.dtype == np.int64
    goal, holes = 15, {5, 7, 11, 12}  # the default 4x4 map
    assert (finals[terminated & (rewards == 1)] == goal).all()
    assert set(finals[terminated & (rewards == 0)]) <= holes
    assert (terminated & (rewards == 1)).any() and (terminated & (rewards == 0)).any()
    assert goal not in set(observations)  # only final observations hold the goal


def test_same_seed_gives_byte_identical_files(tmp_path):
    for name in ("a.h5", "b.h5"):
        collect_dataset(
            "Pendulum-v1",
            _pendulum_policy(),
            tmp_path / name,
            600,
            n_envs=3,
            seed=5,
            progress=False,
        )
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def _pendulum_policy():
    rng = np.random.default_rng(1)
    return lambda observations: rng.uniform(-2, 2, (len(observations), 1)).astype(np.float32)


def test_too_few_rows_for_an_episode_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="no episode finished"):
        collect_dataset(
            "Pendulum-v1",
            _pendulum_policy(),
            tmp_path / "p.h5",
            100,
            n_envs=2,
            seed=0,
            progress=False,
        )
    assert not (tmp_path / "p.h5").exists()


def test_cli_collects_from_the_expert_files_it_is_given(tmp_path, tiny_expert):
    """The rule's command: the expert's files as flags, the sampler seeded as before."""
    output = tmp_path / "datasets" / "CartPole-v1.h5"
    command = [
        sys.executable, "-m", "workflow_scripts.rollout", "--env", "CartPole-v1",
        "--expert-model", str(tiny_expert.model), "--expert-summary", str(tiny_expert.summary),
        "--expert-config", str(tiny_expert.config), "--n-transitions", "600", "--n-envs", "3",
        "--seed", "7", "--output", str(output),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    info = validate_dataset(output, env_id="CartPole-v1")
    assert info.n_transitions == 600
    assert info.attrs["expert_path"] == str(tiny_expert.model)
    assert info.attrs["expert_sha256"] == sha256_file(tiny_expert.model)
    assert info.attrs["expert_sampling"] == "stochastic policy"
    # Called as a function with the same files and seed: the same bytes.
    rollout(
        "CartPole-v1", tiny_expert.model, tiny_expert.summary, tiny_expert.config,
        tmp_path / "again.h5", 600, 3, 7,
    )  # fmt: skip
    assert (tmp_path / "again.h5").read_bytes() == output.read_bytes()
