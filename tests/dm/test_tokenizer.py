"""Gato tokenization: μ-law round trips, bin error bounds, action rescaling, bad values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workflow_scripts.dm.tokenizer import (
    N_BINS,
    M,
    TokenizerError,
    action_to_bins,
    bins_to_action,
    bins_to_continuous,
    bins_to_unit,
    check_finite,
    continuous_to_bins,
    max_action_error,
    mu_law_decode,
    mu_law_encode,
    unit_to_bins,
)


def test_mu_law_is_inverted_exactly_within_range():
    values = torch.linspace(-M, M, 10_001, dtype=torch.float64).float()
    decoded = mu_law_decode(mu_law_encode(values))
    assert torch.allclose(decoded, values, rtol=1e-4, atol=1e-5)
    assert mu_law_encode(torch.tensor([M, -M])).tolist() == pytest.approx([1.0, -1.0])


def test_observation_bins_contain_the_value():
    """Each value lies between the decoded edges of its bin: the round-trip error is at most one bin."""
    values = torch.cat((torch.linspace(-300, 300, 20_001), torch.logspace(-6, 2, 2_000)))
    bins = continuous_to_bins(values)
    edges_low = mu_law_decode(bins.float() * (2.0 / N_BINS) - 1.0)
    edges_high = mu_law_decode((bins.float() + 1.0) * (2.0 / N_BINS) - 1.0)
    inside = values.clamp(-M, M)
    tolerance = 1e-5 * (1 + inside.abs())
    assert bool(((inside >= edges_low - tolerance) & (inside <= edges_high + tolerance)).all())
    error = (bins_to_continuous(bins) - inside).abs()
    assert bool((error <= (edges_high - edges_low) + tolerance).all())
    # μ-law spends its resolution near zero: 0.01 is recovered to within 2%.
    small = torch.tensor([0.01, -0.01])
    assert torch.allclose(bins_to_continuous(continuous_to_bins(small)), small, rtol=0.02)


def test_bins_are_monotonic_and_saturate_out_of_range():
    values = torch.linspace(-1000, 1000, 50_001)
    bins = continuous_to_bins(values)
    assert bool((bins[1:] >= bins[:-1]).all())
    assert bins.min().item() == 0 and bins.max().item() == N_BINS - 1
    assert continuous_to_bins(torch.tensor([1e9, -1e9])).tolist() == [N_BINS - 1, 0]
    assert unit_to_bins(torch.tensor([1.0, -1.0, 0.0])).tolist() == [N_BINS - 1, 0, N_BINS // 2]
    centres = bins_to_unit(torch.arange(N_BINS))
    assert unit_to_bins(centres).tolist() == list(range(N_BINS))


@pytest.mark.parametrize("bound", [0.4, 1.0, 2.0, 3.0])
def test_action_round_trip_is_within_half_a_bin(bound):
    low = torch.full((3,), -bound)
    high = torch.full((3,), bound)
    actions = torch.rand(20_000, 3) * 2 * bound - bound
    decoded = bins_to_action(action_to_bins(actions, low, high), low, high)
    bound_error = torch.as_tensor(max_action_error(low.numpy(), high.numpy()), dtype=torch.float32)
    assert bool(((decoded - actions).abs() <= bound_error + 1e-6).all())
    assert bool(((decoded >= low) & (decoded <= high)).all())


def test_actions_use_every_bin_whatever_the_bounds():
    """Linear rescaling from the bounds: Pendulum's ±2 torque reaches all 1024 bins."""
    low, high = torch.tensor([-2.0]), torch.tensor([2.0])
    actions = torch.linspace(-2, 2, 100_000)[:, None]
    bins = action_to_bins(actions, low, high)
    assert len(torch.unique(bins)) == N_BINS
    # Out-of-bounds actions saturate in the end bins and decode inside the bounds.
    outside = action_to_bins(torch.tensor([[5.0], [-5.0]]), low, high)
    assert outside.flatten().tolist() == [N_BINS - 1, 0]
    assert bins_to_action(outside, low, high).abs().max().item() <= 2.0


def test_asymmetric_bounds_round_trip():
    low, high = torch.tensor([0.0, -3.0]), torch.tensor([1.0, 7.0])
    actions = torch.stack((torch.rand(5000), torch.rand(5000) * 10 - 3), dim=1)
    decoded = bins_to_action(action_to_bins(actions, low, high), low, high)
    assert bool(((decoded - actions).abs() <= torch.tensor([1 / 2048, 10 / 2048]) + 1e-6).all())


def test_non_finite_values_name_the_env():
    check_finite(np.array([0.0, 1.0]), "CartPole-v1", "observation")
    with pytest.raises(TokenizerError, match="HalfCheetah-v4: observation .*nan"):
        check_finite(np.array([0.0, np.nan]), "HalfCheetah-v4", "observation")
    with pytest.raises(TokenizerError, match="Pendulum-v1: previous reward"):
        check_finite(float("inf"), "Pendulum-v1", "previous reward")
