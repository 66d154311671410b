"""Random-policy baselines: seeded, capped, and the CLI."""

from __future__ import annotations

import json

from workflow_scripts.baseline import compute_baseline, main, random_policy_returns


def test_seeded_returns_repeat_exactly():
    first = random_policy_returns("CartPole-v1", 5, seed=3)
    second = random_policy_returns("CartPole-v1", 5, seed=3)
    other = random_policy_returns("CartPole-v1", 5, seed=4)
    assert first == second
    assert first != other


def test_cliffwalking_cap_bounds_episodes():
    returns, lengths = random_policy_returns("CliffWalking-v0", 5, seed=0, max_episode_steps=50)
    assert max(lengths) <= 50
    assert all(r < 0 for r in returns)


def test_document_has_what_normalization_needs(tmp_path):
    document = compute_baseline("FrozenLake-v1", 20, seed=0)
    assert document["max_episode_steps"] == 100
    assert 0.0 <= document["mean_return"] <= 1.0
    assert document["stderr_return"] >= 0 and len(document["returns"]) == 20
    output = tmp_path / "b.json"
    main(["--env", "Pendulum-v1", "--n-episodes", "3", "--seed", "1", "--output", str(output)])
    written = json.loads(output.read_text())
    assert written["env_id"] == "Pendulum-v1" and written["n_episodes"] == 3
    assert written["mean_return"] < -500  # random torques on Pendulum score far below zero
