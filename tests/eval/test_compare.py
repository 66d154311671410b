"""The comparison table: experts against their references, scores with 95% intervals."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workflow_scripts.compare import build_comparison, comparison_markdown

# table.csv's columns as aggregate writes them (the intervals are its bootstrap intervals).
TABLE = pd.DataFrame(
    [
        {"env_id": "Acrobot-v1", "dm_mean": 98.0, "dm_std": 4.0, "dm_n": 10,
         "dm_ci_low": 95.6, "dm_ci_high": 100.3},
        {"env_id": "Taxi-v3", "dm_mean": 90.0, "dm_std": 20.0, "dm_n": 10,
         "dm_ci_low": 77.1, "dm_ci_high": 101.2},
        {"env_id": "Average", "dm_mean": 94.0, "dm_std": math.nan, "dm_n": 2,
         "dm_ci_low": 87.5, "dm_ci_high": 100.4},
    ]
)  # fmt: skip


def test_rows_hold_the_experts_references_and_the_papers_numbers():
    summaries = {
        "Acrobot-v1": {"env_id": "Acrobot-v1", "algo": "dqn", "n_timesteps": 100000,
                       "deterministic_check": {"mean_return": -80.0}, "quality": {"status": "pass"}},
        "Taxi-v3": {"env_id": "Taxi-v3", "algo": "dqn", "n_timesteps": 400000,
                    "deterministic_check": {"mean_return": 7.0}, "quality": {"status": "below"}},
    }  # fmt: skip
    baselines = {"Acrobot-v1": {"mean_return": -499.0}, "Taxi-v3": {"mean_return": -770.0}}
    sampled = {"Acrobot-v1": -85.0, "Taxi-v3": 5.0}
    comparison = build_comparison(TABLE, ["dm"], summaries, baselines, sampled)
    acrobot = comparison.iloc[0]
    # rl-zoo3's DQN figure -76.639: (-80 + 499) / (-76.639 + 499) = 99.2%
    assert acrobot["rl_zoo3_return"] == pytest.approx(-76.639)
    assert acrobot["expert_pct_of_rl_zoo3"] == pytest.approx(99.2, abs=0.05)
    assert acrobot["reward_threshold"] == -100.0 and acrobot["paper_dm"] == pytest.approx(101.56)
    taxi = comparison.iloc[1]
    assert math.isnan(taxi["rl_zoo3_return"]) and taxi["expert_quality"] == "below"
    average = comparison.iloc[2]
    assert average["env_id"] == "Average" and average["dm_mean"] == pytest.approx(94.0)
    # The intervals are table.csv's, not recomputed: one interval per mean in all reports.
    assert (acrobot["dm_ci_low"], acrobot["dm_ci_high"]) == (95.6, 100.3)
    assert (average["dm_ci_low"], average["dm_ci_high"]) == (87.5, 100.4)
    markdown = comparison_markdown(comparison, ["dm"], {"dm": "DM"})
    assert "| Acrobot-v1 | DQN | 100,000 | -80.00 | -85.00 | -499.00 | -76.64 (100k) |" in markdown
    assert "| Taxi-v3 | 90.00 ± 20.00 | [77.10, 101.20] |" in markdown
    assert "| Average | 94.00 | [87.50, 100.40] |" in markdown
    assert "percentile bootstrap" in markdown


def test_table_without_intervals_is_refused_naming_the_columns():
    old_table = TABLE.drop(columns=["dm_ci_low", "dm_ci_high"])
    with pytest.raises(ValueError, match="lacks column.s. dm_ci_low, dm_ci_high; remake it"):
        build_comparison(old_table, ["dm"], {}, {}, {})
