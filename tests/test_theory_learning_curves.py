"""Learning-curve fits: recovery of known curves, honest refusals, seed bootstrap and crossovers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alignfuse.errors import AlignfuseError
from alignfuse.theory.learning_curves import (
    BootstrapFit,
    PowerLawFit,
    bootstrap_fit,
    crossover,
    fit_power_law,
    holdout_check,
    percentile_interval,
)

SCALES = (256, 512, 1024, 2048, 4096, 8192, 16384)
TRUTH = {"e_inf": 0.1, "b": 3.0, "c": 0.5}
RESAMPLES = 60  # enough for the synthetic checks, and fast


def synthetic_runs(e_inf=0.1, b=3.0, c=0.5, scales=SCALES, seeds=5, noise=0.002, rng=0):
    """Per-seed errors drawn from the model with Gaussian noise: columns n_train, seed, error."""
    rng = np.random.default_rng(rng)
    rows = [
        {"n_train": n, "seed": s, "error": e_inf + b * n ** (-c) + rng.normal(0, noise)}
        for s in range(seeds)
        for n in scales
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def runs():
    return synthetic_runs()


def test_fit_recovers_known_parameters_from_seven_scales_and_five_seeds(runs):
    fit = fit_power_law(runs["n_train"], runs["error"])
    assert fit.identifiable, fit.reason
    assert fit.e_inf == pytest.approx(0.1, abs=0.01)
    assert fit.b == pytest.approx(3.0, rel=0.2)
    assert fit.c == pytest.approx(0.5, abs=0.05)
    assert fit.n_scales == 7 and (fit.n_min, fit.n_max) == (256, 16384)
    np.testing.assert_allclose(fit.residuals, runs["error"] - fit.predict(runs["n_train"]))
    assert all(se > 0 for se in fit.stderr)


def test_fit_is_exact_on_noise_free_data():
    n = np.array(SCALES, dtype=float)
    fit = fit_power_law(n, 0.05 + 2.0 * n**-0.3)
    assert fit.identifiable, fit.reason
    assert (fit.e_inf, fit.b, fit.c) == pytest.approx((0.05, 2.0, 0.3), rel=1e-4)


def test_four_scales_are_not_identifiable_and_give_nans_with_the_reason():
    runs = synthetic_runs(scales=(2048, 4096, 8192, 16384))
    fit = fit_power_law(runs["n_train"], runs["error"])
    assert not fit.identifiable
    assert "4 distinct" in fit.reason and "at least 5" in fit.reason
    assert math.isnan(fit.e_inf) and math.isnan(fit.b) and math.isnan(fit.c)
    assert np.isnan(fit.residuals).all()
    assert math.isnan(fit.predict(1e5))


@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_flat_data_are_not_identifiable(noise):
    runs = synthetic_runs(b=0.0, noise=noise)
    fit = fit_power_law(runs["n_train"], runs["error"])
    assert not fit.identifiable
    assert fit.reason
    assert math.isnan(fit.c)


def test_errors_outside_zero_one_or_mismatched_lengths_are_user_errors():
    with pytest.raises(AlignfuseError, match="1 − accuracy"):
        fit_power_law(SCALES, [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 1.5])
    with pytest.raises(AlignfuseError, match="one error per n"):
        fit_power_law(SCALES, [0.5, 0.4])


def test_bootstrap_is_deterministic_for_a_seed_and_covers_the_truth():
    runs = synthetic_runs(seeds=8, rng=3)
    first = bootstrap_fit(runs, n_predict=[1e5], resamples=RESAMPLES, seed=7)
    again = bootstrap_fit(runs, n_predict=[1e5], resamples=RESAMPLES, seed=7)
    pd.testing.assert_frame_equal(first.samples, again.samples)
    pd.testing.assert_frame_equal(first.intervals, again.intervals)
    assert first.failed_fraction == 0
    intervals = first.intervals.set_index("quantity")
    for name, value in TRUTH.items():
        assert intervals.loc[name, "low"] <= value <= intervals.loc[name, "high"], name
    error = intervals.loc["error"]
    truth_at = TRUTH["e_inf"] + TRUTH["b"] * 1e5 ** -TRUTH["c"]
    assert error["n"] == 1e5 and error["low"] <= truth_at <= error["high"]


def test_bootstrap_resamples_whole_seeds():
    runs = synthetic_runs(seeds=3)
    boot = bootstrap_fit(runs, resamples=5, seed=1)
    assert len(boot.draws) == 5
    assert all(len(drawn) == 3 and set(drawn) <= {0, 1, 2} for drawn in boot.draws)
    assert boot.draws != bootstrap_fit(runs, resamples=5, seed=2).draws


def test_bootstrap_reports_the_fraction_of_failed_refits():
    flat = synthetic_runs(b=0.0, noise=0.003)
    boot = bootstrap_fit(flat, resamples=10)
    assert boot.failed_fraction > 0.5
    assert not boot.point.identifiable


def test_a_floor_pulled_below_zero_is_on_bound_not_identified():
    """err = 2 n^-0.3 − 0.05: least squares wants e_inf = −0.05 and stops on the bound 0,
    where the asymptotic standard errors do not hold."""
    n = np.array(SCALES, dtype=float)
    fit = fit_power_law(n, 2.0 * n**-0.3 - 0.05)
    assert not fit.identifiable
    assert "e_inf ran to its bound" in fit.reason
    assert math.isnan(fit.e_inf) and math.isnan(fit.predict(1e5))


def noisy_unidentified_runs():
    """Noise sd 0.02 on five large scales: the point fit is not identified and most seed
    resamples fail, but the few that succeed would give a c interval [0.51, 0.82] (truth 0.5)."""
    return synthetic_runs(noise=0.02, scales=(2048, 4096, 8192, 16384, 32768), rng=1)


def test_an_unidentified_fit_gets_no_interval_from_its_surviving_refits():
    boot = bootstrap_fit(noisy_unidentified_runs(), n_predict=[1e5], resamples=100)
    assert not boot.point.identifiable
    assert boot.failed_fraction > 0.5
    assert boot.samples["c"].notna().any()  # some refits survive ...
    assert boot.intervals[["low", "high"]].isna().all(axis=None)  # ... and print nothing


def test_failed_refits_sit_at_both_extremes_and_only_widen_the_interval():
    values = np.arange(100.0)
    assert percentile_interval(values, 0.9) == (4.0, 94.0)
    values[50:53] = np.nan  # 3 failures: the 5% tails hold 5 draws, so the ends move outwards
    assert percentile_interval(values, 0.9) == (1.0, 97.0)
    values[53:56] = np.nan  # 6 failures: more than a tail holds, so neither end is finite
    assert percentile_interval(values, 0.9) == (-math.inf, math.inf)


def test_an_identified_fit_whose_refits_fail_past_the_tail_has_no_interval():
    runs = synthetic_runs(b=1.0, noise=0.02, seeds=3, scales=(128, 256, 512, 1024, 2048, 4096))
    boot = bootstrap_fit(runs, resamples=100)
    assert boot.point.identifiable and 0.025 < boot.failed_fraction < 0.5
    c = boot.intervals.set_index("quantity").loc["c"]
    assert c["estimate"] == boot.point.c and math.isnan(c["low"]) and math.isnan(c["high"])


def test_bootstrap_needs_the_run_columns():
    with pytest.raises(AlignfuseError, match="error = 1 − test_accuracy"):
        bootstrap_fit(pd.DataFrame({"n_train": [1], "seed": [0], "test_accuracy": [0.5]}))


def test_holdout_predicts_the_largest_scale_from_the_others():
    runs = synthetic_runs(scales=(128, *SCALES))
    check = holdout_check(runs)
    assert check.n_heldout == 16384
    measured = runs.loc[runs["n_train"] == 16384, "error"].mean()
    assert check.measured == pytest.approx(measured)
    assert check.fit.n_max == 8192
    assert check.abs_error_points == pytest.approx(100 * abs(check.predicted - measured))
    assert check.abs_error_points < 0.5


def test_holdout_with_too_few_remaining_scales_is_nan_with_the_reason():
    check = holdout_check(synthetic_runs(scales=(1024, 2048, 4096, 8192, 16384)))
    assert math.isnan(check.predicted) and math.isnan(check.abs_error_points)
    assert "4 distinct" in check.fit.reason


def curve(e_inf, b, c, n_min=100.0):
    return PowerLawFit(e_inf, b, c, n_min=n_min, n_max=1e4, n_scales=7)


def test_crossover_of_curves_that_cross_is_the_analytic_crossing():
    # 0.2 + n^-0.5 = 0.1 + 11 n^-0.5 at n^-0.5 = 0.01, i.e. n = 10⁴
    result = crossover(curve(0.2, 1.0, 0.5), curve(0.1, 11.0, 0.5))
    assert result.n_star == pytest.approx(1e4, rel=1e-8)


def test_crossover_with_different_exponents_solves_the_gap_equation():
    a, b = curve(0.15, 0.5, 0.2), curve(0.05, 20.0, 0.6)
    result = crossover(a, b)
    assert a.predict(result.n_star) == pytest.approx(b.predict(result.n_star), abs=1e-10)
    assert b.predict(result.n_star * 1.01) < a.predict(result.n_star * 1.01)


def test_curves_that_never_cross_have_no_crossover_within_n_max():
    result = crossover(curve(0.1, 1.0, 0.5), curve(0.2, 5.0, 0.5), n_max=1e7)
    assert result.n_star == math.inf
    assert "never" in result.reason


def test_a_curve_already_below_at_the_smallest_n_crosses_there():
    assert crossover(curve(0.2, 5.0, 0.5), curve(0.1, 1.0, 0.5)).n_star == 100.0


def test_crossover_of_an_unidentified_fit_is_nan_with_its_reason():
    unknown = fit_power_law([1, 2, 3, 4], [0.5, 0.4, 0.35, 0.3])
    result = crossover(curve(0.2, 1.0, 0.5), PowerLawFit(**{**unknown.__dict__, "n_min": 100.0}))
    assert math.isnan(result.n_star) and "distinct" in result.reason


def test_paired_bootstrap_gives_an_interval_around_the_crossing():
    concat = synthetic_runs(e_inf=0.2, b=1.0, c=0.5, rng=1)
    xattn = synthetic_runs(e_inf=0.1, b=11.0, c=0.5, rng=2)
    result = crossover(
        bootstrap_fit(concat, resamples=RESAMPLES), bootstrap_fit(xattn, resamples=RESAMPLES)
    )
    assert result.n_star == pytest.approx(1e4, rel=0.3)
    assert result.low <= 1e4 <= result.high
    assert result.no_crossover_fraction == 0 and result.failed_fraction == 0


def test_paired_bootstrap_of_curves_that_never_cross_reports_it():
    concat = synthetic_runs(e_inf=0.1, b=1.0, c=0.5, scales=SCALES[:5], rng=1)
    xattn = synthetic_runs(e_inf=0.2, b=5.0, c=0.5, scales=SCALES[:5], rng=2)
    result = crossover(bootstrap_fit(concat, resamples=20), bootstrap_fit(xattn, resamples=20))
    assert result.n_star == math.inf
    assert result.no_crossover_fraction == 1 and result.high == math.inf


def test_no_crossover_interval_without_an_identified_crossing():
    unknown = bootstrap_fit(noisy_unidentified_runs(), resamples=40)
    known = bootstrap_fit(synthetic_runs(e_inf=0.05, b=8.0, c=0.5, rng=4), resamples=40)
    result = crossover(unknown, known)
    assert math.isnan(result.n_star)
    assert math.isnan(result.low) and math.isnan(result.high)
    assert result.failed_fraction > 0.5


def test_unpaired_bootstrap_fits_are_refused():
    runs = synthetic_runs(scales=SCALES[:5])
    a, b = bootstrap_fit(runs, resamples=3, seed=0), bootstrap_fit(runs, resamples=3, seed=1)
    with pytest.raises(AlignfuseError, match="not paired"):
        crossover(a, b)
    with pytest.raises(AlignfuseError, match="two PowerLawFit or two BootstrapFit"):
        crossover(a, b.point)
    assert isinstance(a, BootstrapFit)
