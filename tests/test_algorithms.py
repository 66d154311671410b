"""What the algorithms' constructors accept: the snapshot the parse reads, and the kinds."""

from __future__ import annotations

import json

import pytest

from workflow_scripts import algorithms


def test_snapshot_matches_the_installed_classes():
    """Stale after an SB3 / sb3-contrib upgrade: python -m workflow_scripts.algorithms --write."""
    snapshot = json.loads(algorithms.SNAPSHOT.read_text())
    assert snapshot["versions"] == algorithms.installed_versions()
    assert snapshot["algorithms"] == json.loads(json.dumps(algorithms.live_signatures()))


def test_other_versions_fall_back_to_the_classes(monkeypatch):
    monkeypatch.setattr(algorithms, "installed_versions", lambda: {"stable-baselines3": "0"})
    algorithms.signatures.cache_clear()
    try:
        assert "n_steps" in algorithms.accepted_hyperparameters("ppo")
    finally:
        algorithms.signatures.cache_clear()


@pytest.mark.parametrize(
    "algo, name, kinds",
    [
        ("ppo", "learning_rate", ["float", "schedule"]),
        ("ppo", "clip_range_vf", ["null", "float", "schedule"]),
        ("dqn", "train_freq", ["int", "list"]),
        ("sac", "ent_coef", ["float", "str"]),
        ("sac", "action_noise", ["any"]),  # a class YAML cannot spell: left to SB3
        ("ars", "delta_std", ["float", "schedule"]),
    ],
)
def test_annotations_become_the_yaml_values_they_admit(algo, name, kinds):
    assert algorithms.accepted_kinds(algo, name) == kinds


@pytest.mark.parametrize(
    "value, problem",
    [("lin_0.001", False), ("lin_1e-3", False), (0.001, False), (1, False), ("fast", True),
     ("lin_", True), ("lin_inf", True), (True, True), (None, True)],
)  # fmt: skip
def test_learning_rate_is_a_number_or_rl_zoo3_linear_schedule(value, problem):
    assert bool(algorithms.override_problem("ppo", "learning_rate", value)) is problem
