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


def test_a_target_never_reached_is_right_censored_at_the_largest_n():
    curve = pd.DataFrame({"n_train": [100, 1000], "accuracy": [0.6, 0.7]})
    never = samples_to_target(curve, 0.8)
    assert math.isnan(never.n) and "never reached" in never.reason
    assert (never.censored, never.bound) == ("right", 1000)


def test_a_target_reached_at_the_smallest_n_is_left_censored_there():
    curve = pd.DataFrame({"n_train": [100, 1000], "accuracy": [0.85, 0.9]})
    already = samples_to_target(curve, 0.8)
    assert math.isnan(already.n) and "smallest n" in already.reason
    assert (already.censored, already.bound) == ("left", 100)


def test_a_curve_without_accuracy_is_a_user_error():
    with pytest.raises(AlignfuseError, match="accuracy"):
        samples_to_target(pd.DataFrame({"n_train": [1], "error": [0.3]}), 0.8)


def noisy(beta: float, noise: float, seeds: int, rng: int, seed_sd: float = 0.0):
    """Per-seed n_needed = 40·d^(β + u_seed) with log-normal noise, u_seed ~ N(0, seed_sd): a
    seed's points share its deviation, as a seed's data order shapes every d. (d, n, seed)."""
    rng = np.random.default_rng(rng)
    d = np.tile(WIDTHS, seeds)
    seed = np.repeat(np.arange(seeds), WIDTHS.size)
    slope = beta + rng.normal(0, seed_sd, seeds)[seed]
    return d, 40 * d**slope * np.exp(rng.normal(0, noise, d.size)), seed


def censor(d, n_needed, below: float, above: float):
    """The points a study would see: n_needed, censoring label and bound per point."""
    label = np.where(n_needed > above, "right", np.where(n_needed <= below, "left", ""))
    bound = np.where(label == "right", above, np.where(label == "left", below, np.nan))
    return np.where(label == "", n_needed, np.nan), label, bound


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_exponent_is_recovered_and_its_interval_covers_it(beta):
    d, n_needed, seed = noisy(beta, noise=0.1, seeds=5, rng=int(beta) + 2)
    fit = fit_exponent(d, n_needed, seed)
    assert fit.beta == pytest.approx(beta, abs=0.05)
    assert fit.low <= beta <= fit.high
    assert fit.n_points == d.size and fit.right_censored == fit.left_censored == 0


def test_the_interval_takes_the_seed_as_the_unit():
    """Three seeds on exact lines of slope 1.9, 2.0 and 2.1: β = 2 and the interval is
    2 ± t(0.975, 2)·0.1/√3, whatever the number of points per seed."""
    d = np.tile(WIDTHS, 3)
    seed = np.repeat([0, 1, 2], WIDTHS.size)
    fit = fit_exponent(d, 40 * d ** np.array([1.9, 2.0, 2.1])[seed], seed)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert fit.beta == pytest.approx(2.0)
    assert (fit.low, fit.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert fit.seeds == 3


def test_interval_covers_the_truth_in_95_percent_of_experiments_with_seed_effects():
    fits = [fit_exponent(*noisy(2.0, noise=0.05, seeds=3, rng=r, seed_sd=0.3)) for r in range(400)]
    covered = np.mean([fit.low <= 2.0 <= fit.high for fit in fits])
    assert 0.92 <= covered <= 0.98


def test_censored_points_are_kept_as_bounds_and_do_not_bias_beta():
    """Dropping the wide d's unreached targets (and the narrow d's already reached ones) pulls
    the slope of the rest well below 2 over repeated experiments; the censored fit keeps them
    as bounds and is unbiased."""
    censored_fits, dropped_slopes = [], []
    for rng in range(20):
        d, n_needed, seed = noisy(2.0, noise=0.3, seeds=8, rng=rng)
        shown, label, bound = censor(d, n_needed, below=40 * 32.0**2, above=40 * 128.0**2)
        censored_fits.append(fit_exponent(d, shown, seed, label, bound))
        kept = label == ""
        dropped_slopes.append(np.polyfit(np.log(d[kept]), np.log(shown[kept]), 1)[0])
    assert np.mean(dropped_slopes) < 1.75
    assert np.mean([fit.beta for fit in censored_fits]) == pytest.approx(2.0, abs=0.06)
    fit = censored_fits[0]
    assert fit.right_censored > 0 and fit.left_censored > 0
    assert "kept as bounds" in fit.reason


def test_a_seed_whose_own_beta_is_censored_away_leaves_no_interval():
    d = np.tile(WIDTHS[:3], 2)
    seed = np.repeat([0, 1], 3)
    n_needed = 40 * d**2.0
    label = np.array(["", "", "", "", "right", "right"], dtype=object)
    bound = np.where(label == "right", 40 * 16.0**2, np.nan)
    fit = fit_exponent(d, np.where(label == "", n_needed, np.nan), seed, label, bound)
    assert fit.beta == pytest.approx(2.0, abs=0.01)
    assert math.isnan(fit.low) and math.isnan(fit.high)
    assert "cannot be fitted: no interval" in fit.reason


def test_too_few_observed_widths_give_nan_with_the_reason():
    fit = fit_exponent(
        [16, 32, 64], [100.0, np.nan, np.nan], [0, 0, 0], ["", "right", "right"], [0, 99, 99]
    )
    assert math.isnan(fit.beta) and math.isnan(fit.low)
    assert "2 distinct d" in fit.reason and fit.right_censored == 2


def test_mismatched_inputs_are_user_errors():
    with pytest.raises(AlignfuseError, match="one of each per point"):
        fit_exponent([16, 32], [100.0], [0, 0])
    with pytest.raises(AlignfuseError, match="one of each per point"):
        fit_exponent([16, 32, 64], [1.0, 2.0, 3.0], seeds=[0, 1])
    with pytest.raises(AlignfuseError, match="bound must be"):
        fit_exponent([16, 32, 64], [1.0, np.nan, 3.0], [0, 0, 0])
