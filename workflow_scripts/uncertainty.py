"""How sure a score is: bootstrap intervals, the interquartile mean, paired comparisons and
linear trends, with numpy and scipy only.

- :func:`bootstrap_ci`: percentile bootstrap interval of a mean (one model on one env, over
  its evaluation seeds).
- :func:`iqm` and :func:`stratified_bootstrap_ci`: the aggregate over envs of Agarwal et
  al. (2021), "Deep Reinforcement Learning at the Edge of the Statistical Precipice": the
  interquartile mean of all envs' per-seed scores, its interval from a bootstrap that
  resamples seeds within each env (stratified), as their library rliable does (rliable is
  archived, so this is our own implementation of the method, not a dependency).
- :func:`paired_comparison`: two models evaluated on the same seeds, compared seed by seed.
- :func:`linear_trend`: the OLS slope of the last points of a learning curve with its
  Student's t interval, i.e. whether the curve still rises.

Every resampling draws from ``numpy.random.default_rng(seed)`` (seed 0 by default), so a
table is the same on every run. Inputs must be finite numbers; a NaN or infinity raises
ValueError rather than spreading through an interval unnoticed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
# Agarwal et al. (2021): the IQM discards the bottom and top 25% of the runs.
IQM_TRIM = 0.25
# Resampled values held in memory at once by the stratified bootstrap (float64: 16 MB).
_MAX_CHUNK_VALUES = 2_000_000


def _finite_values(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name}: needs at least one value")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: holds a NaN or infinite value ({array.tolist()})")
    return array


def _check_settings(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")


def _percentile_interval(statistics: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of the bootstrap distribution ``statistics``."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(statistics, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of the mean of ``values``.

    Draws ``n_resamples`` samples of ``len(values)`` values with replacement, takes each
    one's mean, and returns the central ``confidence`` quantiles of those means. A single
    value or constant values give ``(v, v)``: a bootstrap sees no spread it was not
    given. With few values the percentile interval is narrower than Student's t (about
    0.8 times at 10 values) and covers the true mean somewhat less often than
    ``confidence``; it assumes no normality, which suits scores bounded below by failed
    rollouts at 0%. Raises ValueError for no values, NaN/inf, or bad settings.
    """
    array = _finite_values(values)
    _check_settings(confidence, n_resamples)
    if np.all(array == array[0]):
        return float(array[0]), float(array[0])
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, array.size, size=(n_resamples, array.size))
    return _percentile_interval(array[indices].mean(axis=1), confidence)


def iqm(values: Sequence[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% of ``values`` (Agarwal et al. 2021).

    ``scipy.stats.trim_mean(values, 0.25)``: ``int(0.25 * n)`` values are cut from each
    end, so with fewer than 4 values nothing is cut and the IQM is the mean; for 8 values
    it is the mean of the 3rd to 6th smallest. ``axis=None`` pools all values (a float);
    an integer axis gives one IQM per row or column, as ``numpy.mean`` does. Raises
    ValueError for no values or NaN/inf (checked for ``axis=None``).
    """
    array = _finite_values(values) if axis is None else np.asarray(values, dtype=np.float64)
    result = stats.trim_mean(array, IQM_TRIM, axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def stratified_bootstrap_ci(
    scores_per_env: Sequence[Sequence[float] | np.ndarray],
    statistic: Callable[..., float | np.ndarray] = iqm,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, low, high)``: an aggregate over envs with a stratified bootstrap interval.

    ``scores_per_env`` holds one array per env of its runs' (seeds') scores. The point is
    ``statistic`` of all envs' scores pooled; each bootstrap sample resamples the runs of
    every env independently, with replacement and keeping each env's count, pools them and
    applies ``statistic``; the interval is the central ``confidence`` quantiles (percentile
    method), as in Agarwal et al. (2021). ``statistic`` takes an array and ``axis`` like
    ``numpy.mean`` (``np.mean`` or :func:`iqm`). Pooled, the mean weights envs by their
    number of runs: with the same seeds on every env (as in the table) it is the mean of
    the per-env means. If every env's scores are constant every resample equals the data,
    so ``low == high == point``. Raises ValueError for no envs, an env without scores,
    NaN/inf, or bad settings.
    """
    if len(scores_per_env) == 0:
        raise ValueError("scores_per_env: needs at least one env")
    envs = [_finite_values(scores, f"env {index}") for index, scores in enumerate(scores_per_env)]
    _check_settings(confidence, n_resamples)
    pooled = np.concatenate(envs)
    point = float(np.asarray(statistic(pooled[np.newaxis, :], axis=1))[0])
    if all(np.all(scores == scores[0]) for scores in envs):
        return point, point, point
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CHUNK_VALUES // pooled.size)
    resampled = []
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        sample = np.concatenate(
            [scores[rng.integers(0, scores.size, size=(rows, scores.size))] for scores in envs],
            axis=1,
        )
        resampled.append(np.asarray(statistic(sample, axis=1), dtype=np.float64))
    low, high = _percentile_interval(np.concatenate(resampled), confidence)
    return point, low, high


@dataclass(frozen=True)
class PairedComparison:
    """Two models on the same seeds: ``a - b`` seed by seed."""

    mean_difference: float
    # Percentile bootstrap interval of the mean difference.
    ci_low: float
    ci_high: float
    # Paired t-test (scipy.stats.ttest_rel), two-sided; NaN where undefined.
    p_value: float


def paired_comparison(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> PairedComparison:
    """Compare two models evaluated on the same seeds, ``values_a[i]`` and ``values_b[i]``
    from seed i: the mean of the differences ``a - b``, its bootstrap interval
    (:func:`bootstrap_ci` of the differences) and the paired t-test's p-value.

    Pairing removes what a seed does to both models (an easy or hard start), so it can
    detect a smaller difference than Welch's test of the two samples. Edge cases: the
    p-value is NaN with fewer than two pairs or when every difference is 0, and 0 when
    every difference is the same non-zero value (scipy's t is infinite); the interval of
    constant differences ``d`` is ``(d, d)``. Raises ValueError for samples of different
    lengths, no values, or NaN/inf.
    """
    a = _finite_values(values_a, "values_a")
    b = _finite_values(values_b, "values_b")
    if a.size != b.size:
        raise ValueError(
            f"a paired comparison needs one value per seed on both sides, got {a.size} and {b.size}"
        )
    differences = a - b
    low, high = bootstrap_ci(differences, confidence, n_resamples, seed)
    p_value = math.nan
    if a.size >= 2:
        with warnings.catch_warnings():
            # Constant differences make scipy warn before returning NaN or 0, both handled.
            warnings.simplefilter("ignore", RuntimeWarning)
            p_value = float(stats.ttest_rel(a, b).pvalue)
    return PairedComparison(float(differences.mean()), low, high, p_value)


@dataclass(frozen=True)
class LinearTrend:
    """An OLS line through points, with the slope's confidence interval."""

    slope: float
    intercept: float
    # Student's t interval of the slope (n - 2 degrees of freedom).
    ci_low: float
    ci_high: float
    # Two-sided p-value of slope = 0 (scipy.stats.linregress).
    p_value: float
    n_points: int

    @property
    def rising(self) -> bool:
        """The whole interval is above 0: the points still rise (False if NaN)."""
        return bool(self.ci_low > 0)


def linear_trend(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
) -> LinearTrend:
    """Least-squares slope of ``y`` against ``x`` with its Student's t interval.

    ``slope ± t(1 - (1 - confidence) / 2, n - 2) · stderr`` with ``stderr`` the slope's
    standard error from ``scipy.stats.linregress``. For a learning curve's last K points:
    ``rising`` (``ci_low > 0``) says it still improves; an interval around 0 is a plateau
    within what K points can tell. Edge cases: fewer than 3 points give a NaN interval and
    p-value (2 points define a line but no spread); fewer than 2 points, or all ``x``
    equal, give NaN throughout; points exactly on a line give a zero-width interval (a
    flat one too: slope 0, interval (0, 0), p-value NaN). Raises ValueError for ``x`` and
    ``y`` of different lengths or NaN/inf.
    """
    x_values = np.asarray(x, dtype=np.float64).reshape(-1)
    y_values = np.asarray(y, dtype=np.float64).reshape(-1)
    if x_values.size != y_values.size:
        raise ValueError(f"x and y differ in length ({x_values.size} and {y_values.size})")
    if not (np.all(np.isfinite(x_values)) and np.all(np.isfinite(y_values))):
        raise ValueError("x and y must hold finite numbers")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n_points = int(x_values.size)
    if n_points < 2 or np.all(x_values == x_values[0]):
        return LinearTrend(math.nan, math.nan, math.nan, math.nan, math.nan, n_points)
    if np.all(y_values == y_values[0]):
        # linregress's stderr is NaN here (its r is 0/0); a flat line has no error.
        flat = 0.0 if n_points >= 3 else math.nan
        return LinearTrend(0.0, float(y_values[0]), flat, flat, math.nan, n_points)
    fit = stats.linregress(x_values, y_values)
    if n_points < 3:
        return LinearTrend(float(fit.slope), float(fit.intercept), math.nan, math.nan, math.nan, 2)
    half = stats.t.ppf(0.5 + confidence / 2.0, n_points - 2) * float(fit.stderr)
    return LinearTrend(
        float(fit.slope),
        float(fit.intercept),
        float(fit.slope) - half,
        float(fit.slope) + half,
        float(fit.pvalue),
        n_points,
    )
