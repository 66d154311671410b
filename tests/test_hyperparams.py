"""Hyperparameter resolution: SB3 defaults, rl-zoo3 lookups, overrides and provenance."""

from __future__ import annotations

import pytest
import yaml

from workflow_scripts.config import ConfigError
from workflow_scripts.hyperparams import (
    constructor_kwargs,
    main,
    normalize_kwargs,
    resolve_hyperparams,
)

# The paper's appendix row for MountainCarContinuous-v0, typed (the paper prints strings).
APPENDIX_MOUNTAIN_CAR_CONTINUOUS = {
    "batch_size": 256,
    "clip_range": 0.1,
    "ent_coef": 0.00429,
    "gae_lambda": 0.9,
    "gamma": 0.9999,
    "learning_rate": 7.77e-05,
    "max_grad_norm": 5,
    "n_steps": 8,
    "use_sde": True,
}


def test_rl_zoo3_lookup_gives_the_appendix_values_and_the_whole_entry():
    document = resolve_hyperparams("MountainCarContinuous-v0", "ppo", 20000, source="rl-zoo3")
    for key, value in APPENDIX_MOUNTAIN_CAR_CONTINUOUS.items():
        assert document["hyperparams"][key] == value, key
        assert type(document["hyperparams"][key]) is type(value), key
        assert document["provenance"][key].startswith("rl-zoo3 2.3.0 hyperparams/ppo.yml")
    # More than the appendix lists: taken whole, with its origin recorded.
    assert document["normalize"] is True
    assert document["hyperparams"]["n_epochs"] == 10
    assert document["hyperparams"]["policy_kwargs"] == "dict(log_std_init=-3.29, ortho_init=False)"
    assert document["provenance"]["normalize"].startswith("rl-zoo3")
    assert document["source"] == "rl-zoo3"
    assert normalize_kwargs(document) == {}


def test_env_rl_zoo3_lacks_falls_back_with_a_note():
    document = resolve_hyperparams("FrozenLake-v1", "ppo", 1000, source="rl-zoo3")
    assert document["hyperparams"] == {}
    assert document["source"] == "sb3-defaults (rl-zoo3 fallback)"
    assert any("rl-zoo3 has no ppo entry for FrozenLake-v1" in note for note in document["notes"])


def test_env_rl_zoo3_lacks_is_an_error_when_configured():
    with pytest.raises(ConfigError, match="rl-zoo3 has no sac entry for Pusher-v4"):
        resolve_hyperparams("Pusher-v4", "sac", 1000, source="rl-zoo3", rl_zoo3_missing="error")


def test_sb3_defaults_with_override_records_provenance():
    document = resolve_hyperparams(
        "MountainCar-v0", "dqn", 5_000_000, overrides={"exploration_fraction": 0.02}
    )
    assert document["hyperparams"] == {"exploration_fraction": 0.02}
    assert document["provenance"]["exploration_fraction"] == "config override"
    assert document["normalize"] is False and normalize_kwargs(document) is None


def test_override_the_algorithm_rejects():
    with pytest.raises(ConfigError, match="exploration_fractoin"):
        resolve_hyperparams("MountainCar-v0", "dqn", 10, overrides={"exploration_fractoin": 0.02})


def test_constructor_kwargs_turns_rl_zoo3_spellings_into_objects():
    document = resolve_hyperparams("CartPole-v1", "ppo", 1000, source="rl-zoo3")
    kwargs = constructor_kwargs(document)
    assert callable(kwargs["learning_rate"]) and kwargs["learning_rate"](1.0) == pytest.approx(
        0.001
    )
    assert kwargs["learning_rate"](0.5) == pytest.approx(0.0005)
    assert document["n_envs"] == 8
    zoo_pendulum = resolve_hyperparams("Pendulum-v1", "td3", 1000, source="rl-zoo3")
    from gymnasium.spaces import Box

    kwargs = constructor_kwargs(zoo_pendulum, Box(-2, 2, (1,)))
    assert kwargs["policy_kwargs"] == {"net_arch": [400, 300]}
    assert kwargs["action_noise"] is not None


def test_cli_writes_typed_yaml(tmp_path, capsys):
    output = tmp_path / "hp.yml"
    main(
        [
            "--env", "MountainCar-v0", "--algo", "dqn", "--n-timesteps", "5000000",
            "--overrides", '{"exploration_fraction": 0.02}', "--output", str(output),
        ]
    )  # fmt: skip
    document = yaml.safe_load(output.read_text())
    assert document["hyperparams"]["exploration_fraction"] == 0.02
    assert document["n_timesteps"] == 5_000_000
    assert "versions" in document


def test_cli_rejects_bad_overrides_json(tmp_path):
    with pytest.raises(SystemExit, match="--overrides is not valid JSON"):
        main(
            [
                "--env",
                "CartPole-v1",
                "--algo",
                "ppo",
                "--n-timesteps",
                "10",
                "--overrides",
                "{x",
                "--output",
                str(tmp_path / "o.yml"),
            ]
        )
