"""The comparison table: experts against their references, scores with 95% intervals."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workflow_scripts.compare import build_comparison, comparison_markdown, confidence_interval


def test_interval_is_students_t_over_the_seeds():
    low, high = confidence_interval(50.0, 10.0, 10)
    # t(0.975, 9) = 2.262: half-width 2.262 * 10 / sqrt(10) = 7.15
    assert (low, high) == pytest.approx((42.85, 57.15), abs=0.01)
    assert all(math.isnan(value) for value in confidence_interval(50.0, math.nan, 1))


def test_rows_hold_the_experts_references_and_the_papers_numbers():
    table = pd.DataFrame(
        [
            {"env_id": "Acrobot-v1", "dm_mean": 98.0, "dm_std": 4.0, "dm_n": 10},
            {"env_id": "Taxi-v3", "dm_mean": 90.0, "dm_std": 20.0, "dm_n": 10},
            {"env_id": "Average", "dm_mean": 94.0, "dm_std": math.nan, "dm_n": 2},
        ]
    )
    summaries = {
        "Acrobot-v1": {"env_id": "Acrobot-v1", "algo": "dqn", "n_timesteps": 100000,
                       "deterministic_check": {"mean_return": -80.0}, "quality": {"status": "pass"}},
        "Taxi-v3": {"env_id": "Taxi-v3", "algo": "dqn", "n_timesteps": 400000,
                    "deterministic_check": {"mean_return": 7.0}, "quality": {"status": "below"}},
    }  # fmt: skip
    baselines = {"Acrobot-v1": {"mean_return": -499.0}, "Taxi-v3": {"mean_return": -770.0}}
    sampled = {"Acrobot-v1": -85.0, "Taxi-v3": 5.0}
    comparison = build_comparison(table, ["dm"], summaries, baselines, sampled)
    acrobot = comparison.iloc[0]
    # rl-zoo3's DQN figure -76.639: (-80 + 499) / (-76.639 + 499) = 99.2%
    assert acrobot["rl_zoo3_return"] == pytest.approx(-76.639)
    assert acrobot["expert_pct_of_rl_zoo3"] == pytest.approx(99.2, abs=0.05)
    assert acrobot["reward_threshold"] == -100.0 and acrobot["paper_dm"] == pytest.approx(101.56)
    taxi = comparison.iloc[1]
    assert math.isnan(taxi["rl_zoo3_return"]) and taxi["expert_quality"] == "below"
    average = comparison.iloc[2]
    assert average["env_id"] == "Average" and average["dm_mean"] == pytest.approx(94.0)
    # Average CI from the per-env standard errors: 1.96 * sqrt(1.6 + 40) / 2
    assert average["dm_ci_high"] - 94.0 == pytest.approx(1.96 * math.sqrt(41.6) / 2)
    markdown = comparison_markdown(comparison, ["dm"], {"dm": "DM"})
    assert "| Acrobot-v1 | DQN | 100,000 | -80.00 | -85.00 | -499.00 | -76.64 (100k) |" in markdown
    assert "| Taxi-v3 | 90.00 ± 20.00 |" in markdown
