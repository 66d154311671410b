"""Normalized scores and the paper's significance rule.

The paper reports ``normalized = 100 * (score - random) / (expert - random)`` per env
(0% = the uniform random policy, 100% = the expert that generated the dataset), and
bolds the better model of an env when Welch's t-test over the per-seed values of the
two models gives p < 0.05.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

# The paper bolds the better model when the t-test p-value is below this.
SIGNIFICANCE_LEVEL = 0.05


class NormalizationError(ValueError):
    """Expert and random scores that cannot define a normalized scale."""


def normalized_score(score: float, random_score: float, expert_score: float) -> float:
    """``100 * (score - random) / (expert - random)``: 0 = random policy, 100 = expert.

    Raises :class:`NormalizationError` when the expert score equals the random score (the
    scale would divide by zero) or when any input is not finite.
    """
    for name, value in (("score", score), ("random", random_score), ("expert", expert_score)):
        if not math.isfinite(value):
            raise NormalizationError(f"{name} score is {value}; normalization needs finite scores")
    if expert_score == random_score:
        raise NormalizationError(
            f"expert score equals random score ({expert_score}); the normalized scale "
            "100*(score-random)/(expert-random) is undefined"
        )
    return 100.0 * (score - random_score) / (expert_score - random_score)


def welch_p_value(values_a: Sequence[float], values_b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``).

    NaN when the test is undefined: fewer than two values on a side, or both samples
    constant and equal (no spread, no difference). Two constant samples with different
    values give p = 0, as scipy computes it.
    """
    values_a = np.asarray(values_a, dtype=np.float64)
    values_b = np.asarray(values_b, dtype=np.float64)
    with warnings.catch_warnings():
        # Identical samples make scipy warn about precision loss before returning NaN;
        # NaN is the answer we handle (no bold), so the warning adds nothing to the log.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(values_a, values_b, equal_var=False)
    return float(result.pvalue)


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing two models on one env."""

    p_value: float
    # Key of the significantly better model, or None when no side is bold.
    better: str | None


def compare(
    name_a: str,
    values_a: Sequence[float],
    name_b: str,
    values_b: Sequence[float],
    level: float = SIGNIFICANCE_LEVEL,
) -> Comparison:
    """The paper's bolding rule: the model with the higher mean is bold when p < ``level``.

    A NaN p-value (identical or too few values) never bolds anything.
    """
    p_value = welch_p_value(values_a, values_b)
    better = None
    if not math.isnan(p_value) and p_value < level:
        mean_a, mean_b = float(np.mean(values_a)), float(np.mean(values_b))
        if mean_a != mean_b:
            better = name_a if mean_a > mean_b else name_b
    return Comparison(p_value=p_value, better=better)
