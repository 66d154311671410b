"""The evaluation policy: cached = uncached actions, FIFO context, valid actions, bad inputs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tests.support.tiny_models import tiny_dm_config
from workflow_scripts.dm.modeling_dm import DecisionModel
from workflow_scripts.dm.policy import DecisionModelPolicy, load_policy
from workflow_scripts.dm.tokenizer import TokenizerError


@pytest.fixture
def sharp_model() -> DecisionModel:
    """Random weights with a large init scale: confident, well separated logits."""
    torch.manual_seed(1)
    return DecisionModel(tiny_dm_config(initializer_range=0.3)).eval()


def run_pendulum(policy: DecisionModelPolicy, steps: int = 300, seed: int = 4):
    env = gym.make("Pendulum-v1", max_episode_steps=steps)
    observation, _ = env.reset(seed=seed)
    reward = terminated = None
    actions, context_sizes = [], []
    policy.reset()
    for _ in range(steps):
        action = policy.act(observation, reward, terminated)
        actions.append(action.copy())
        context_sizes.append(len(policy.window))
        observation, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()
    return np.array(actions), context_sizes


@pytest.mark.parametrize("slide", [1, 5])
def test_cached_and_uncached_agree_over_a_300_step_episode(sharp_model, slide):
    """Context of 16 transitions, episode of 300: the window slides many times."""
    cached = DecisionModelPolicy(
        sharp_model, "Pendulum-v1", use_cache=True, slide_transitions=slide
    )
    uncached = DecisionModelPolicy(
        sharp_model, "Pendulum-v1", use_cache=False, slide_transitions=slide
    )
    actions_cached, sizes = run_pendulum(cached)
    actions_uncached, _ = run_pendulum(uncached)
    assert len(actions_cached) == 300
    assert np.array_equal(actions_cached, actions_uncached)
    assert len(np.unique(actions_cached)) > 5  # the model does act on what it sees
    limit = sharp_model.config.context_transitions
    assert max(sizes) == limit and min(sizes[limit:]) == limit - slide + 1


def test_cached_and_uncached_agree_on_discrete_spaces(sharp_model):
    rng = np.random.default_rng(0)
    for env_id, make_observation in (
        ("CartPole-v1", lambda: rng.normal(size=4).astype(np.float32)),
        ("FrozenLake-v1", lambda: int(rng.integers(16))),
    ):
        policies = [
            DecisionModelPolicy(sharp_model, env_id, use_cache=use_cache, slide_transitions=3)
            for use_cache in (True, False)
        ]
        stream = [make_observation() for _ in range(300)]
        chosen = []
        for policy in policies:
            reward = done = None
            actions = []
            for observation in stream:
                actions.append(policy.act(observation, reward, done))
                reward, done = 1.0, False
            chosen.append(actions)
        assert chosen[0] == chosen[1]
        assert all(isinstance(action, int) for action in chosen[0])
        n = 2 if env_id == "CartPole-v1" else 4
        assert set(chosen[0]) <= set(range(n))


def test_reset_starts_a_fresh_context(sharp_model):
    policy = DecisionModelPolicy(sharp_model, "Pendulum-v1")
    first, _ = run_pendulum(policy, steps=40)
    again, _ = run_pendulum(policy, steps=40)
    assert np.array_equal(first, again)


def test_actions_are_valid_for_every_space(sharp_model, tmp_path):
    sharp_model.save_pretrained(tmp_path / "model")
    for env_id in ("CartPole-v1", "Pendulum-v1", "FrozenLake-v1"):
        policy = load_policy(tmp_path / "model", env_id, device="cpu")
        env = gym.make(env_id)
        observation, _ = env.reset(seed=0)
        reward = terminated = None
        for _ in range(30):
            action = policy.act(observation, reward, terminated)
            assert env.action_space.contains(action), (env_id, action)
            observation, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break


def test_bad_observations_and_envs_are_named(sharp_model, tmp_path):
    policy = DecisionModelPolicy(sharp_model, "Pendulum-v1")
    with pytest.raises(
        TokenizerError, match="Pendulum-v1: observation contains a non-finite value"
    ):
        policy.act(np.array([0.1, np.nan, 0.0], np.float32), None, None)
    with pytest.raises(ValueError, match="Pendulum-v1: observation has 4 values"):
        policy.act(np.zeros(4, np.float32), None, None)
    with pytest.raises(TokenizerError, match="Pendulum-v1: previous reward"):
        policy.act(np.zeros(3, np.float32), float("nan"), False)
    with pytest.raises(ValueError, match="FrozenLake-v1: observation 16 is outside"):
        DecisionModelPolicy(sharp_model, "FrozenLake-v1").act(16, None, None)
    with pytest.raises(KeyError, match="not on 'Hopper-v4'"):
        DecisionModelPolicy(sharp_model, "Hopper-v4")
    with pytest.raises(FileNotFoundError, match="not a Decision Model folder"):
        load_policy(tmp_path, "Pendulum-v1")
