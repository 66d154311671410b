"""The model: causality, save/load, mixed-env batches, parameter count, config errors."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
import torch

from tests.support.tiny_models import tiny_dm_config
from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
from workflow_scripts.dm.layout import FLAG_CONTINUING
from workflow_scripts.dm.modeling_dm import DecisionModel, parameter_count


def random_batch(model: DecisionModel, env_index: list[int], steps: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    layout = model.layout
    batch = len(env_index)
    obs_n = [env.observation.n for env in layout]
    discrete_obs_n = max(1, min(n for n in obs_n if n) if any(obs_n) else 1)
    return {
        "env_index": torch.tensor(env_index),
        "observations": torch.randn(batch, steps, layout.max_obs_dim, generator=generator),
        "discrete_observations": torch.randint(
            0, discrete_obs_n, (batch, steps), generator=generator
        ),
        "prev_rewards": torch.randn(batch, steps, generator=generator),
        "prev_flags": torch.full((batch, steps), FLAG_CONTINUING),
        "actions": torch.rand(batch, steps, layout.max_act_dim, generator=generator) * 4 - 2,
        "discrete_actions": torch.randint(0, 2, (batch, steps), generator=generator),
    }


def all_logits(model: DecisionModel, batch: dict) -> list[torch.Tensor]:
    hidden = model.observation_hidden_states(**batch)
    return [
        model.action_logits(hidden[row], int(env))
        for row, env in enumerate(batch["env_index"].tolist())
    ]


@torch.no_grad()
def test_prediction_at_t_ignores_later_positions_and_its_own_action(tiny_model):
    """Changing a_t, o_{t+1}, a_{t+1}, … never changes the action logits at o_1..o_t."""
    steps, cut = 12, 5
    batch = random_batch(tiny_model, [0, 1, 2], steps)
    before = all_logits(tiny_model, batch)
    changed = {key: value.clone() for key, value in batch.items()}
    changed["actions"][:, cut:] += 1.5  # a_cut onwards (0-based: the action chosen at o_cut)
    changed["discrete_actions"][:, cut:] = 1 - changed["discrete_actions"][:, cut:]
    changed["observations"][:, cut + 1 :] *= -3
    changed["discrete_observations"][:, cut + 1 :] = (
        changed["discrete_observations"][:, cut + 1 :] + 5
    ) % 16
    changed["prev_rewards"][:, cut + 1 :] += 10
    after = all_logits(tiny_model, changed)
    for old, new in zip(before, after, strict=True):
        assert torch.equal(old[: cut + 1], new[: cut + 1])
        assert not torch.allclose(old[cut + 1 :], new[cut + 1 :])  # the change is visible later


@torch.no_grad()
def test_mixed_env_batch_equals_single_env_batches(tiny_model):
    """Padding and per-env tables: a window's loss does not depend on its batch neighbours."""
    batch = random_batch(tiny_model, [0, 1, 2, 1], 10)
    mixed = tiny_model(**batch).sample_losses
    for row in range(4):
        alone = {key: value[row : row + 1] for key, value in batch.items()}
        assert torch.allclose(tiny_model(**alone).sample_losses[0], mixed[row], atol=1e-6)


@torch.no_grad()
def test_save_and_load_give_identical_logits(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert [env["env_id"] for env in config["envs"]] == [
        "CartPole-v1",
        "Pendulum-v1",
        "FrozenLake-v1",
    ]
    assert config["envs"][1]["action_space"] == {
        "type": "Box",
        "shape": [1],
        "low": [-2.0],
        "high": [2.0],
        "dtype": "float32",
    }
    loaded = DecisionModel.from_pretrained(tmp_path / "model").eval()
    batch = random_batch(tiny_model, [0, 1, 2], 8)
    for old, new in zip(all_logits(tiny_model, batch), all_logits(loaded, batch), strict=True):
        assert torch.equal(old, new)


def test_paper_settings_have_about_12m_parameters():
    """4 layers, hidden 512, 8 heads, MLP 1088, 1024 positions, over spaces as large as the paper's."""
    envs = [
        env_entry(env_id, space_obs, space_act)
        for env_id, space_obs, space_act in (
            ("Humanoid-v4", gym.spaces.Box(-1, 1, (376,)), gym.spaces.Box(-0.4, 0.4, (17,))),
            ("Taxi-v3", gym.spaces.Discrete(500), gym.spaces.Discrete(6)),
            ("CartPole-v1", gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2)),
        )
    ]
    config = DecisionModelConfig(envs=envs)  # defaults are the paper's settings
    with torch.device("meta"):
        model = DecisionModel(config)
    assert 11_500_000 < parameter_count(model) < 13_000_000
    assert parameter_count(model.backbone) == 4 * (4 * 512 * 512 + 3 * 512 * 1088 + 2 * 512) + 512


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        tiny_dm_config(hidden_size=30)
    with pytest.raises(ValueError, match="one transition"):
        tiny_dm_config(sequence_length=1)
    unbounded = env_entry(
        "X-v0", gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-float("inf"), float("inf"), (1,))
    )
    with pytest.raises(ValueError, match="X-v0: continuous action space must be bounded"):
        DecisionModelConfig(envs=[unbounded])
    with pytest.raises(KeyError, match="not on 'Hopper-v4'"):
        tiny_dm_config().env_index("Hopper-v4")
