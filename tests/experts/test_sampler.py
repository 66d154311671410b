"""The expert sampler: deterministic-policy experts sample with their training noise."""

import numpy as np
import pytest
from stable_baselines3 import PPO, TD3

from workflow_scripts.experts.sampler import ExpertSampler, training_noise_std
from workflow_scripts.hyperparams import resolve_hyperparams, write_hyperparams


def test_deterministic_expert_samples_with_its_training_noise(tmp_path):
    """TD3 has nothing to sample from: the rollout adds its training noise, scaled actions."""
    model = TD3("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs={"net_arch": [8]})
    observations = np.random.default_rng(0).uniform(-1, 1, (4000, 3)).astype(np.float32)
    deterministic, _ = model.predict(observations, deterministic=True)
    plain = ExpertSampler(model, seed=1)
    np.testing.assert_allclose(plain(observations), deterministic, atol=1e-6)
    assert plain.sampling == "deterministic policy (no training action noise in its recipe)"
    noisy = ExpertSampler(model, seed=1, action_noise_std=0.1)
    noisy_actions = noisy(observations)
    assert noisy.sampling == "deterministic policy + its training noise N(0, 0.1)"
    assert np.all(np.abs(noisy_actions) <= 2.0)
    # Pendulum's torque is [-2, 2]: 0.1 in the scaled space is 0.2 Nm, clipped at the bounds.
    inside = np.abs(deterministic) < 1.0
    assert np.std((noisy_actions - deterministic)[inside]) == pytest.approx(0.2, rel=0.1)
    # The noise comes from the recipe the expert was trained with (rl-zoo3's: normal, 0.1).
    config = tmp_path / "config.yml"
    write_hyperparams(resolve_hyperparams("Pendulum-v1", "td3", 20000, source="rl-zoo3"), config)
    assert training_noise_std(config) == 0.1
    write_hyperparams(resolve_hyperparams("Pendulum-v1", "td3", 1000), config)
    assert training_noise_std(config) is None


def test_same_seed_same_actions():
    model = PPO("MlpPolicy", "CartPole-v1", seed=0, policy_kwargs={"net_arch": [8]})
    observations = np.random.default_rng(0).uniform(-0.1, 0.1, (64, 4)).astype(np.float32)
    first, second = ExpertSampler(model, seed=3), ExpertSampler(model, seed=3)
    assert first.sampling == "stochastic policy" and first.head == "categorical"
    np.testing.assert_array_equal(first(observations), second(observations))
