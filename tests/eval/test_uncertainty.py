"""Uncertainty: bootstrap intervals, IQM, stratified bootstrap, paired test, linear trend.

Expected values are worked out by hand in the comments, not taken from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from workflow_scripts.uncertainty import (
    bootstrap_ci,
    iqm,
    linear_trend,
    paired_comparison,
    stratified_bootstrap_ci,
)

# --- bootstrap_ci ----------------------------------------------------------------------


def test_single_or_constant_values_give_a_zero_width_interval():
    assert bootstrap_ci([42.5]) == (42.5, 42.5)
    assert bootstrap_ci([0.1] * 10) == (0.1, 0.1)  # exactly, no float drift from averaging


def test_two_values_interval_spans_most_of_the_possible_means():
    # Resamples of [0, 10] have means 0 (1/4), 5 (1/2) or 10 (1/4): the 2.5% and 97.5%
    # quantiles of 10,000 such means are 0 and 10.
    assert bootstrap_ci([0.0, 10.0]) == (0.0, 10.0)


def test_interval_contains_the_mean_and_shrinks_with_more_values():
    rng = np.random.default_rng(1)
    widths = []
    for n in (10, 100, 1000):
        values = rng.normal(50.0, 10.0, size=n)
        low, high = bootstrap_ci(values)
        assert low < values.mean() < high
        widths.append(high - low)
        # Close to the normal interval 2 * 1.96 * std / sqrt(n) for large n.
        if n == 1000:
            assert widths[-1] == pytest.approx(2 * 1.96 * values.std() / math.sqrt(n), rel=0.1)
    assert widths[0] > widths[1] > widths[2]


def test_interval_is_fixed_by_its_seed_and_narrower_at_lower_confidence():
    values = [3.0, 9.0, 1.0, 7.0, 4.0, 8.0]
    assert bootstrap_ci(values) == bootstrap_ci(values)
    # Few resamples, so that the quantiles of two seeds' draws differ.
    assert bootstrap_ci(values, n_resamples=50, seed=1) != bootstrap_ci(
        values, n_resamples=50, seed=2
    )
    low_95, high_95 = bootstrap_ci(values)
    low_50, high_50 = bootstrap_ci(values, confidence=0.5)
    assert low_95 < low_50 < high_50 < high_95


@pytest.mark.parametrize(
    ("values", "problem"), [([], "at least one"), ([1.0, math.nan], "NaN"), ([math.inf], "NaN")]
)
def test_bootstrap_refuses_empty_or_non_finite_values(values, problem):
    with pytest.raises(ValueError, match=problem):
        bootstrap_ci(values)


def test_bootstrap_refuses_bad_settings():
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)


# --- iqm -------------------------------------------------------------------------------


def test_iqm_of_one_to_eight_by_hand():
    # 8 values: int(0.25 * 8) = 2 cut from each end, leaving 3, 4, 5, 6: mean 4.5.
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5
    # Order does not matter; outliers in the cut quarter do not move it (cutting only
    # one value from each end would give (2 + 3 + 4 + 5 + 6 + 100) / 6 = 20).
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5
    assert iqm([1, 2, 3, 4, 5, 6, 100, 1000]) == 4.5


def test_iqm_of_ten_values_and_of_few_values():
    # 10 values: 2 cut from each end, the middle 6 are 3..8: mean 5.5 (the mean is 5.5
    # too); with 0 and 100 at the ends instead of 1, 2 and 9, 10, still 5.5.
    assert iqm(np.arange(1, 11)) == 5.5
    assert iqm([0, 0, 3, 4, 5, 6, 7, 8, 100, 100]) == 5.5
    # Fewer than 4 values: int(0.25 * n) = 0, nothing cut, the IQM is the mean.
    assert iqm([1.0, 2.0, 6.0]) == 3.0


def test_iqm_along_an_axis():
    rows = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [10, 20, 30, 40, 50, 60, 70, 80]])
    np.testing.assert_array_equal(iqm(rows, axis=1), [4.5, 45.0])
    with pytest.raises(ValueError, match="at least one"):
        iqm([])


# --- stratified_bootstrap_ci -----------------------------------------------------------


@pytest.mark.parametrize("statistic", [iqm, np.mean])
def test_stratified_bootstrap_of_constant_per_env_scores_is_a_point(statistic):
    # Every resample of a constant env is the env itself, so every pooled sample is the
    # data: pooled [0]*4 + [50]*4 + [100]*4 → mean 50; IQM cuts 3 from each end, leaving
    # 0, 50 x4, 100: mean 50.
    scores = [[0.0] * 4, [50.0] * 4, [100.0] * 4]
    assert stratified_bootstrap_ci(scores, statistic) == (50.0, 50.0, 50.0)


def test_stratified_bootstrap_point_and_interval_of_the_mean():
    # Env A: 10 and 30 (mean 20); env B constant 80. Pooled mean of the 4 runs: 50.
    # Only A varies: its resampled mean is 10 (1/4), 20 (1/2) or 30 (1/4), so the pooled
    # mean is (2 * A_mean + 160) / 4: 45, 50 or 55, and the 95% interval is (45, 55).
    point, low, high = stratified_bootstrap_ci([[10.0, 30.0], [80.0, 80.0]], np.mean)
    assert (point, low, high) == (50.0, 45.0, 55.0)


def test_stratified_bootstrap_keeps_each_env_in_every_sample():
    # Pooled and resampled without strata, [0, 0] and [100, 100] could give samples of
    # all zeros (mean 0). Stratified, every sample holds both envs' runs: always 50.
    assert stratified_bootstrap_ci([[0.0, 0.0], [100.0, 100.0]], np.mean) == (50.0, 50.0, 50.0)


def test_stratified_bootstrap_iqm_interval_contains_the_point_and_shrinks_with_runs():
    rng = np.random.default_rng(2)
    envs_few = [rng.normal(mean, 10.0, size=5) for mean in (20.0, 50.0, 80.0)]
    envs_many = [rng.normal(mean, 10.0, size=200) for mean in (20.0, 50.0, 80.0)]
    point, low, high = stratified_bootstrap_ci(envs_few, iqm)
    assert point == iqm(np.concatenate(envs_few))
    assert low < point < high
    _, low_many, high_many = stratified_bootstrap_ci(envs_many, iqm)
    assert high_many - low_many < (high - low) / 2


def test_stratified_bootstrap_is_repeatable_and_refuses_bad_input():
    scores = [[1.0, 5.0, 2.0], [7.0, 3.0]]
    assert stratified_bootstrap_ci(scores) == stratified_bootstrap_ci(scores)
    with pytest.raises(ValueError, match="at least one env"):
        stratified_bootstrap_ci([])
    with pytest.raises(ValueError, match="env 1: needs at least one value"):
        stratified_bootstrap_ci([[1.0], []])


def test_stratified_bootstrap_in_chunks_matches_its_interval(monkeypatch):
    # Many runs force several chunks; the interval stays within the data and near the
    # normal approximation of the pooled mean's spread.
    import workflow_scripts.uncertainty as uncertainty

    monkeypatch.setattr(uncertainty, "_MAX_CHUNK_VALUES", 1000)
    rng = np.random.default_rng(3)
    envs = [rng.normal(0.0, 1.0, size=100) for _ in range(4)]
    point, low, high = stratified_bootstrap_ci(envs, np.mean, n_resamples=2000)
    standard_error = math.sqrt(sum(env.var() / env.size for env in envs)) / 4
    assert high - low == pytest.approx(2 * 1.96 * standard_error, rel=0.15)


# --- paired_comparison -----------------------------------------------------------------


def test_paired_comparison_of_a_constant_shift():
    # b is a + 5 on every seed: the difference is exactly -5, with no spread; the paired
    # t statistic is infinite (p = 0) although Welch's test sees two wide samples.
    a = np.array([10.0, 40.0, 25.0, 70.0, 55.0])
    result = paired_comparison(a, a + 5.0)
    assert result.mean_difference == -5.0
    assert (result.ci_low, result.ci_high) == (-5.0, -5.0)
    assert result.p_value == 0.0


def test_paired_comparison_by_hand():
    # a - b = [2, 4, 6]: mean 4, sample std 2, t = 4 / (2 / sqrt(3)) = 3.4641 with 2 dof;
    # for 2 dof the two-sided p is 1 - t / sqrt(2 + t^2) = 1 - 3.4641 / 3.7417 = 0.07418.
    result = paired_comparison([12.0, 24.0, 36.0], [10.0, 20.0, 30.0])
    assert result.mean_difference == 4.0
    assert result.p_value == pytest.approx(0.07418, abs=1e-5)
    assert 2.0 <= result.ci_low < 4.0 < result.ci_high <= 6.0


def test_paired_comparison_undefined_cases():
    same = paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same.mean_difference == 0.0 and math.isnan(same.p_value)
    one = paired_comparison([3.0], [1.0])
    assert one.mean_difference == 2.0 and math.isnan(one.p_value)
    with pytest.raises(ValueError, match="one value per seed on both sides, got 2 and 3"):
        paired_comparison([1.0, 2.0], [1.0, 2.0, 3.0])


# --- linear_trend ----------------------------------------------------------------------


def test_exact_line_has_a_zero_width_interval():
    trend = linear_trend([1, 2, 3, 4, 5], [3, 5, 7, 9, 11])
    assert trend.slope == pytest.approx(2.0) and trend.intercept == pytest.approx(1.0)
    assert trend.ci_low == pytest.approx(2.0) and trend.ci_high == pytest.approx(2.0)
    assert trend.rising and trend.n_points == 5


def test_flat_exact_line_is_a_plateau():
    trend = linear_trend([0, 1, 2, 3], [80.0] * 4)
    assert (trend.slope, trend.ci_low, trend.ci_high) == (0.0, 0.0, 0.0)
    assert not trend.rising and math.isnan(trend.p_value)


def test_slope_interval_by_hand():
    # x = 0..3, y = 0, 2, 1, 3: slope = sum((x - 1.5)(y - 1.5)) / sum((x - 1.5)^2)
    # = (2.25 - 0.25 - 0.25 + 2.25) / 5 = 0.8; intercept 1.5 - 0.8 * 1.5 = 0.3;
    # residuals -0.3, 0.9, -0.9, 0.3: SSR = 1.8, stderr = sqrt(1.8 / 2 / 5) = 0.42426;
    # t(0.975, 2) = 4.3027: interval 0.8 ± 1.8255.
    trend = linear_trend([0, 1, 2, 3], [0.0, 2.0, 1.0, 3.0])
    assert trend.slope == pytest.approx(0.8)
    assert trend.ci_low == pytest.approx(0.8 - 1.8255, abs=1e-3)
    assert trend.ci_high == pytest.approx(0.8 + 1.8255, abs=1e-3)
    assert not trend.rising  # 4 noisy points cannot tell a rise from a plateau


def test_rising_curve_and_plateau_on_synthetic_curves():
    steps = np.arange(10) * 1000.0
    rng = np.random.default_rng(4)
    rising = linear_trend(steps, 20.0 + 0.005 * steps + rng.normal(0, 1.0, 10))
    plateau = linear_trend(steps, 80.0 + rng.normal(0, 1.0, 10))
    assert rising.rising and rising.ci_low > 0
    assert plateau.ci_low < 0 < plateau.ci_high and not plateau.rising


def test_linear_trend_with_too_few_points():
    two = linear_trend([0, 1], [0.0, 5.0])
    assert two.slope == pytest.approx(5.0)
    assert math.isnan(two.ci_low) and math.isnan(two.ci_high) and not two.rising
    for x, y in (([0], [1.0]), ([], []), ([2, 2, 2], [1.0, 2.0, 3.0])):
        trend = linear_trend(x, y)
        assert math.isnan(trend.slope) and math.isnan(trend.ci_low)
    with pytest.raises(ValueError, match="differ in length"):
        linear_trend([0, 1, 2], [0.0, 1.0])
