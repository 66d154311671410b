"""Dataset collection: exact row count, per-env contiguous streams, autoreset, determinism."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from workflow_scripts.dataset import validate_dataset
from workflow_scripts.envs import make_env
from workflow_scripts.rollout import collect_dataset


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
    # Each env copy's block replays exactly in a fresh env with the same seed and actions:
    # contiguous rows, autoreset after each done row.
    for rank, start in enumerate(range(0, 1001, 251)):
        stop = min(start + 251, 1001)
        env = make_env("CartPole-v1")
        observation, _ = env.reset(seed=11 + rank)
        for row in range(start, stop):
            np.testing.assert_allclose(observations[row], observation, rtol=0, atol=0)
            observation, reward, term, trunc, _ = env.step(int(actions[row]))
            assert rewards[row] == reward and terminated[row] == term
            if row < stop - 1:
                assert truncated[row] == trunc
            if term or trunc:
                observation, _ = env.reset()
        assert truncated[stop - 1]  # the stream is cut at the block's end


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


def test_deterministic_expert_samples_with_its_training_noise(tmp_path):
    """TD3 has nothing to sample from: the rollout adds its training noise, scaled actions."""
    from stable_baselines3 import TD3

    from workflow_scripts.hyperparams import resolve_hyperparams, write_hyperparams
    from workflow_scripts.rollout import ExpertSampler, training_noise_std

    model = TD3("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs={"net_arch": [8]})
    observations = np.random.default_rng(0).uniform(-1, 1, (4000, 3)).astype(np.float32)
    deterministic, _ = model.predict(observations, deterministic=True)
    plain = ExpertSampler(model, seed=1)(observations)
    np.testing.assert_allclose(plain, deterministic, atol=1e-6)
    noisy = ExpertSampler(model, seed=1, action_noise_std=0.1)(observations)
    assert np.all(np.abs(noisy) <= 2.0)
    # Pendulum's torque is [-2, 2]: 0.1 in the scaled space is 0.2 Nm, clipped at the bounds.
    inside = np.abs(deterministic) < 1.0
    assert np.std((noisy - deterministic)[inside]) == pytest.approx(0.2, rel=0.1)
    # The noise comes from the recipe the expert was trained with (rl-zoo3's: normal, 0.1).
    document = resolve_hyperparams("Pendulum-v1", "td3", 20000, source="rl-zoo3")
    write_hyperparams(document, tmp_path / "config.yml")
    assert training_noise_std(tmp_path) == 0.1
    write_hyperparams(resolve_hyperparams("Pendulum-v1", "td3", 1000), tmp_path / "config.yml")
    assert training_noise_std(tmp_path) is None
