"""Gato tokenization of observations, rewards and actions for the Decision Model.

Continuous values become one of ``N_BINS`` integer bins (Reed et al., 2022, "A generalist
agent"): observations and rewards are μ-law encoded (``MU``, ``M``), clipped to [-1, 1] and
binned uniformly. Continuous *actions* are bounded by their space, so they are rescaled
linearly from ``[low, high]`` to [-1, 1] before binning instead of μ-law encoded: μ-law on
Pendulum's ±2 torque would leave half of the bins unused. Discrete values are not binned;
the model embeds them directly.

Out-of-range values are deliberate: observations beyond ±``M`` saturate in the end bins
(μ-law already compresses them to near ±1), actions outside their bounds saturate in the
end bins. Non-finite values are an error that names the env (:func:`check_finite`).

Every function works on torch tensors so the same code runs in the data loader, on the
GPU during training, and in the evaluation policy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Gato's constants: μ-law parameters and the number of uniform bins over [-1, 1].
MU = 100.0
M = 256.0
N_BINS = 1024
_MU_LAW_SCALE = math.log1p(M * MU)  # log(M·μ + 1): μ-law maps |x| = M to exactly 1


class TokenizerError(ValueError):
    """A value cannot be tokenized (NaN or inf); the message names the env and what it was."""


def check_finite(values: np.ndarray | torch.Tensor | float, env_id: str, what: str) -> None:
    """Raise :class:`TokenizerError` naming ``env_id`` if ``values`` holds NaN or inf."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    array = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        bad = array[~finite].ravel()[0]
        raise TokenizerError(
            f"{env_id}: {what} contains a non-finite value ({bad}); the Decision Model cannot tokenize it"
        )


def mu_law_encode(values: torch.Tensor) -> torch.Tensor:
    """μ-law companding: sign(x)·log(|x|·μ + 1) / log(M·μ + 1); ±M maps to ±1."""
    values = values.float()
    return torch.sign(values) * torch.log1p(values.abs() * MU) / _MU_LAW_SCALE


def mu_law_decode(encoded: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`mu_law_encode` on [-1, 1]."""
    encoded = encoded.float()
    return torch.sign(encoded) * torch.expm1(encoded.abs() * _MU_LAW_SCALE) / MU


def unit_to_bins(unit_values: torch.Tensor) -> torch.Tensor:
    """Values in [-1, 1] (clipped first) → bin indices 0..N_BINS-1 (int64), uniform bins."""
    clipped = unit_values.float().clamp(-1.0, 1.0)
    return ((clipped + 1.0) * (N_BINS / 2.0)).floor().long().clamp(0, N_BINS - 1)


def bins_to_unit(bins: torch.Tensor) -> torch.Tensor:
    """Bin indices → the centre of each bin in [-1, 1]."""
    return (bins.float() + 0.5) * (2.0 / N_BINS) - 1.0


def continuous_to_bins(values: torch.Tensor) -> torch.Tensor:
    """Observations and rewards: μ-law, clip to [-1, 1], 1024 uniform bins."""
    return unit_to_bins(mu_law_encode(values))


def bins_to_continuous(bins: torch.Tensor) -> torch.Tensor:
    """The value a μ-law bin stands for (its centre, decoded): the inverse of :func:`continuous_to_bins`."""
    return mu_law_decode(bins_to_unit(bins))


def action_to_bins(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Bounded continuous actions: rescale [low, high] → [-1, 1] linearly, clip, bin."""
    unit = 2.0 * (actions.float() - low) / (high - low) - 1.0
    return unit_to_bins(unit)


def bins_to_action(bins: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`action_to_bins`: the bin centre mapped back into [low, high]."""
    unit = bins_to_unit(bins)
    return (low + (unit + 1.0) * 0.5 * (high - low)).clamp(min=low, max=high)


def max_action_error(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Worst-case |decoded - original| of an in-bounds action: half a bin, scaled to the bounds."""
    return (np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)) / (2 * N_BINS)
