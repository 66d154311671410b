"""Normalization and the paper's t-test bolding rule, on values with known answers."""

import math

import numpy as np
import pytest
from scipy import stats

from workflow_scripts.scores import (
    NormalizationError,
    compare,
    normalized_score,
    welch_p_value,
)


@pytest.mark.parametrize(
    ("score", "expected"),
    [(22.0, 0.0), (500.0, 100.0), (261.0, 50.0), (0.0, -100.0 * 22 / 478), (739.0, 150.0)],
)
def test_normalized_score_formula(score, expected):
    assert normalized_score(score, random_score=22.0, expert_score=500.0) == pytest.approx(expected)


def test_normalized_score_with_negative_returns():
    # Pendulum-like: random -1200, expert -150; halfway is -675.
    assert normalized_score(-675.0, -1200.0, -150.0) == pytest.approx(50.0)
    assert normalized_score(-1500.0, -1200.0, -150.0) < 0


def test_expert_equal_to_random_is_a_clear_error():
    with pytest.raises(NormalizationError, match="expert score equals random score"):
        normalized_score(5.0, random_score=3.0, expert_score=3.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_scores_are_refused(bad):
    with pytest.raises(NormalizationError, match="finite"):
        normalized_score(bad, 0.0, 1.0)
    with pytest.raises(NormalizationError, match="expert"):
        normalized_score(0.5, 0.0, bad)


def test_p_value_is_scipys_welch_test():
    rng = np.random.default_rng(1)
    qwen, dm = rng.normal(50, 20, size=10), rng.normal(70, 5, size=10)
    expected = stats.ttest_ind(qwen, dm, equal_var=False).pvalue
    assert welch_p_value(qwen, dm) == expected
    # Welch differs from Student's t-test on unequal variances: the test is the right one.
    assert welch_p_value(qwen, dm) != stats.ttest_ind(qwen, dm, equal_var=True).pvalue


def test_equal_samples_bold_nothing():
    same = [100.0] * 10
    comparison = compare("qwen", same, "dm", same)
    assert math.isnan(comparison.p_value)
    assert comparison.better is None


def test_clearly_different_samples_bold_the_better_on_either_side():
    low = [10.0, 12.0, 9.0, 11.0, 10.5, 9.5, 10.0, 11.5, 8.5, 10.0]
    high = [90.0, 92.0, 88.0, 91.0, 89.5, 90.5, 90.0, 87.5, 92.5, 90.0]
    expected_p = stats.ttest_ind(low, high, equal_var=False).pvalue
    first = compare("qwen", low, "dm", high)
    second = compare("qwen", high, "dm", low)
    assert first.better == "dm" and second.better == "qwen"
    assert first.p_value == expected_p and expected_p < 1e-10


def test_overlapping_samples_are_not_bold():
    a = [50.0, 60.0, 40.0, 55.0, 45.0]
    b = [52.0, 58.0, 42.0, 57.0, 47.0]
    comparison = compare("qwen", a, "dm", b)
    assert comparison.p_value > 0.05
    assert comparison.better is None


def test_significance_threshold_is_strict():
    a, b = [1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.5]
    p_value = welch_p_value(a, b)
    assert compare("qwen", a, "dm", b, level=p_value).better is None
    assert compare("qwen", a, "dm", b, level=p_value * 1.0001).better == "dm"


def test_constant_but_different_samples_bold_the_better():
    # Every Qwen rollout failed (0%), every DM rollout reached the cap (100%).
    comparison = compare("qwen", [0.0] * 10, "dm", [100.0] * 10)
    assert comparison.p_value == 0.0
    assert comparison.better == "dm"


def test_one_value_per_side_bolds_nothing():
    comparison = compare("qwen", [10.0], "dm", [90.0])
    assert math.isnan(comparison.p_value) and comparison.better is None
