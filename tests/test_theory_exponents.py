"""The d-scaling analysis: samples to a target accuracy and the exponent β in n_needed ∝ d^β."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alignfuse.errors import AlignfuseError
from alignfuse.theory.exponents import fit_exponent, samples_to_target, target_accuracy

WIDTHS = np.array([16, 32, 64, 128, 256, 512], dtype=float)


def test_target_is_a_fixed_fraction_of_the_gap_above_chance():
    assert target_accuracy(0.5, 0.9, 0.75) == pytest.approx(0.8)
    assert target_accuracy(0.5, 0.7, 1.0) == pytest.approx(0.7)


@pytest.mark.parametrize(("chance", "best", "fraction"), [(0.5, 0.9, 0), (0.5, 0.9, 1.5)])
def test_target_fraction_outside_zero_one_is_refused(chance, best, fraction):
    with pytest.raises(AlignfuseError, match="fraction"):
        target_accuracy(chance, best, fraction)


def test_target_needs_a_best_above_chance():
    with pytest.raises(AlignfuseError, match="exceed chance"):
        target_accuracy(0.5, 0.5, 0.5)


def test_samples_to_target_interpolates_in_log_n():
    curve = pd.DataFrame({"n_train": [100, 1000, 10000], "accuracy": [0.6, 0.7, 0.9]})
    reached = samples_to_target(curve, 0.8)
    assert reached.n == pytest.approx(10**3.5)
    assert "n=1000 and n=10000" in reached.reason


def test_samples_to_target_on_a_measured_scale_is_that_scale():
    curve = pd.DataFrame({"n_train": [100, 1000, 10000], "accuracy": [0.6, 0.7, 0.9]})
    assert samples_to_target(curve, 0.7).n == pytest.approx(1000)


def test_samples_to_target_averages_the_seeds_of_a_scale():
    curve = pd.DataFrame({"n_train": [100, 100, 1000, 1000], "accuracy": [0.5, 0.7, 0.7, 0.9]})
    assert samples_to_target(curve, 0.7).n == pytest.approx(10**1.5 * 10**0.5 * 10**0.5)


def test_a_target_never_reached_is_nan_with_the_reason():
    curve = pd.DataFrame({"n_train": [100, 1000], "accuracy": [0.6, 0.7]})
    never = samples_to_target(curve, 0.8)
    assert math.isnan(never.n) and "never reached" in never.reason


def test_a_target_reached_at_the_smallest_n_is_nan_with_the_reason():
    curve = pd.DataFrame({"n_train": [100, 1000], "accuracy": [0.85, 0.9]})
    already = samples_to_target(curve, 0.8)
    assert math.isnan(already.n) and "smallest n" in already.reason


def test_a_curve_without_accuracy_is_a_user_error():
    with pytest.raises(AlignfuseError, match="accuracy"):
        samples_to_target(pd.DataFrame({"n_train": [1], "error": [0.3]}), 0.8)


def noisy(beta: float, noise: float, seeds: int, rng: int):
    """Per-seed n_needed = 40·d^β with log-normal noise: (d, n_needed, seed) arrays."""
    rng = np.random.default_rng(rng)
    d = np.tile(WIDTHS, seeds)
    seed = np.repeat(np.arange(seeds), WIDTHS.size)
    return d, 40 * d**beta * np.exp(rng.normal(0, noise, d.size)), seed


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_exponent_is_recovered_and_its_interval_covers_it(beta):
    d, n_needed, _ = noisy(beta, noise=0.1, seeds=5, rng=int(beta) + 2)
    fit = fit_exponent(d, n_needed)
    assert fit.beta == pytest.approx(beta, abs=0.05)
    assert fit.low <= beta <= fit.high
    assert fit.n_points == d.size and fit.dropped == 0


def test_exponent_interval_covers_the_truth_in_95_percent_of_repeated_experiments():
    fits = [fit_exponent(*noisy(2.0, noise=0.3, seeds=2, rng=r)[:2]) for r in range(400)]
    covered = np.mean([fit.low <= 2.0 <= fit.high for fit in fits])
    assert 0.92 <= covered <= 0.98


def test_exponent_interval_uses_student_t():
    d, n_needed, _ = noisy(1.0, noise=0.2, seeds=1, rng=5)
    fit = fit_exponent(d, n_needed)
    half = 2.7764451051977987 * fit.stderr  # t quantile 0.975, 4 degrees of freedom
    assert (fit.low, fit.high) == pytest.approx((fit.beta - half, fit.beta + half))


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_seed_bootstrap_interval_covers_the_exponent(beta):
    d, n_needed, seed = noisy(beta, noise=0.1, seeds=6, rng=10 + int(beta))
    fit = fit_exponent(d, n_needed, seeds=seed, resamples=300)
    assert fit.boot_low <= beta <= fit.boot_high
    assert fit.boot_failed_fraction == 0
    again = fit_exponent(d, n_needed, seeds=seed, resamples=300)
    assert (again.boot_low, again.boot_high) == (fit.boot_low, fit.boot_high)


def test_unreached_targets_are_dropped_and_counted():
    d = WIDTHS
    n_needed = 40 * d**2
    n_needed[-2:] = np.nan
    fit = fit_exponent(d, n_needed)
    assert fit.beta == pytest.approx(2.0)
    assert fit.dropped == 2 and fit.n_points == 4
    assert "dropped 2" in fit.reason


def test_too_few_reached_points_give_nan_with_the_reason():
    fit = fit_exponent([16, 32, 64], [100.0, np.nan, np.nan])
    assert math.isnan(fit.beta) and math.isnan(fit.low)
    assert "at least 3 points" in fit.reason and fit.dropped == 2


def test_mismatched_inputs_are_user_errors():
    with pytest.raises(AlignfuseError, match="one per point"):
        fit_exponent([16, 32], [100.0])
    with pytest.raises(AlignfuseError, match="seed labels"):
        fit_exponent([16, 32, 64], [1.0, 2.0, 3.0], seeds=[0, 1])
