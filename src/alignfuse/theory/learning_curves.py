"""Fits of measured learning curves, err(n) = e_inf + b·n^(−c), and where two curves cross.

Three parameters through four training-set sizes leave one degree of freedom, so every fit says
whether the data identify it and returns NaNs with the reason when they do not. Uncertainty comes
from resampling whole seeds (each seed's curve kept intact), and a fit is judged by how well it
predicts a held-out largest scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq, least_squares

from alignfuse.errors import AlignfuseError

MIN_SCALES = 5  # e_inf, b, c and at least two degrees of freedom between distinct scales
C_BOUNDS = (1e-3, 3.0)  # learning-curve exponents; a fit that ends on either bound is rejected
A_BOUNDS = (1e-10, 10.0)  # b·n0^(−c), the decaying part at the reference scale n0
BOUND_TOLERANCE = 1e-3  # |c − bound| (and relative, for a) under which the fit sits on a bound
E_INF_TOLERANCE = 1e-6  # e_inf this close to 0 or 1 sits on its bound
RANK_TOLERANCE = 1e-8  # smallest / largest singular value of the Jacobian
START_EXPONENTS = np.geomspace(0.02, 2.5, 30)  # profile over c for the starting points
STARTS = 3
CONFIDENCE = 0.95
RESAMPLES = 1000
N_MAX = 1e7
CROSSING_GRID = 4001
RUN_COLUMNS = ("n_train", "seed", "error")
NAN = float("nan")


@dataclass(frozen=True)
class PowerLawFit:
    """e_inf + b·n^(−c) fitted to one method's curve; NaN parameters when not identifiable.

    ``residuals`` are data minus fit in input order; ``stderr`` holds the asymptotic standard
    errors of (e_inf, b, c); ``n_min`` / ``n_max`` the measured range (crossovers start at n_min).
    """

    e_inf: float
    b: float
    c: float
    identifiable: bool = True
    reason: str = ""
    residuals: np.ndarray = field(default_factory=lambda: np.empty(0))
    stderr: tuple[float, float, float] = (NAN, NAN, NAN)
    n_min: float = NAN
    n_max: float = NAN
    n_scales: int = 0

    def predict(self, n):
        """Predicted error at ``n`` (array or scalar); NaN for an unidentified fit."""
        return _curve((self.e_inf, self.b, self.c), n)


def _curve(params, n):
    e_inf, b, c = params
    values = e_inf + b * np.asarray(n, dtype=float) ** (-c)
    return float(values) if np.ndim(values) == 0 else values


def _points(n, err) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n, dtype=float).ravel()
    err = np.asarray(err, dtype=float).ravel()
    if n.shape != err.shape:
        raise AlignfuseError(
            f"learning curve: {n.size} sizes but {err.size} errors; pass one error per n"
        )
    if not (np.all(np.isfinite(n)) and np.all(n > 0)):
        raise AlignfuseError("learning curve: n must be finite, positive training-set sizes")
    if not (np.all(np.isfinite(err)) and np.all((err >= 0) & (err <= 1))):
        raise AlignfuseError(
            "learning curve: errors must be finite and in [0, 1] (error = 1 − accuracy); "
            "drop runs without a result"
        )
    return n, err


def _unidentified(reason: str, n: np.ndarray) -> PowerLawFit:
    return PowerLawFit(
        NAN,
        NAN,
        NAN,
        identifiable=False,
        reason=reason,
        residuals=np.full(n.size, NAN),
        n_min=float(n.min()) if n.size else NAN,
        n_max=float(n.max()) if n.size else NAN,
        n_scales=int(np.unique(n).size),
    )


def _starts(x: np.ndarray, err: np.ndarray) -> list[np.ndarray]:
    """Starting points (e_inf, log a, c): the best c on a grid, each with its linear LS e_inf, a.

    For a fixed c the curve is linear in e_inf and a, so a profile over c is cheap and lands
    near the optimum; the fit then refines from the few best grid exponents.
    """
    decay = x[:, None] ** (-START_EXPONENTS[None, :])  # one column per grid exponent
    centred = decay - decay.mean(axis=0)
    a = centred.T @ (err - err.mean()) / np.maximum(np.sum(centred**2, axis=0), 1e-300)
    e_inf = err.mean() - a * decay.mean(axis=0)
    e_inf = np.clip(e_inf, 1e-6, 1 - 1e-6)
    a = np.clip(a, A_BOUNDS[0] * 10, A_BOUNDS[1] / 10)
    rss = np.sum((e_inf + a * decay - err[:, None]) ** 2, axis=0)
    best = np.argsort(rss, kind="stable")[:STARTS]
    return [np.array([e_inf[i], np.log(a[i]), START_EXPONENTS[i]]) for i in best]


def fit_power_law(n, err, min_scales: int = MIN_SCALES) -> PowerLawFit:
    """Least-squares fit of err(n) = e_inf + b·n^(−c) with b > 0, c > 0, 0 ≤ e_inf ≤ 1.

    ``n``/``err`` may repeat n (one point per seed). Not identifiable, with NaN parameters and
    the reason, when there are fewer than ``min_scales`` distinct n, when the exponent, b or
    e_inf runs to a bound (on-bound: the asymptotic standard errors do not hold there), when the Jacobian is rank-deficient, or when the parameter covariance is
    degenerate or leaves c undetermined (standard error ≥ c).
    """
    n, err = _points(n, err)
    scales = np.unique(n)
    if scales.size < min_scales:
        return _unidentified(
            f"{scales.size} distinct training-set sizes; e_inf + b·n^(−c) has 3 parameters and "
            f"needs at least {min_scales} distinct scales to be identified",
            n,
        )
    n0 = float(np.exp(np.mean(np.log(scales))))  # reference scale: keeps the fit well scaled
    x = n / n0
    log_x = np.log(x)

    def residual(theta):
        e_inf, log_a, c = theta
        return e_inf + np.exp(log_a) * x ** (-c) - err

    def jacobian(theta):
        _, log_a, c = theta
        decay = np.exp(log_a) * x ** (-c)
        return np.column_stack([np.ones_like(x), decay, -decay * log_x])

    bounds = ([0.0, np.log(A_BOUNDS[0]), C_BOUNDS[0]], [1.0, np.log(A_BOUNDS[1]), C_BOUNDS[1]])
    fits = [
        least_squares(residual, start, jac=jacobian, bounds=bounds, x_scale="jac")
        for start in _starts(x, err)
    ]
    best = min(fits, key=lambda fit: fit.cost)
    e_inf, log_a, c = (float(v) for v in best.x)

    def rejected(reason: str) -> PowerLawFit:
        return _unidentified(reason, n)

    if c - C_BOUNDS[0] < BOUND_TOLERANCE or C_BOUNDS[1] - c < BOUND_TOLERANCE:
        return rejected(f"the exponent c ran to its bound ({c:.3g}); the data do not fix it")
    if log_a - np.log(A_BOUNDS[0]) < BOUND_TOLERANCE:
        return rejected("b ran to zero: the error does not decrease with n")
    if best.active_mask[0] != 0 or min(e_inf, 1 - e_inf) < E_INF_TOLERANCE:
        return rejected(
            f"e_inf ran to its bound ({e_inf:.3g}): the data pull the floor past [0, 1], and a "
            "standard error at a bound is not valid"
        )
    jac = jacobian(best.x)
    singular = np.linalg.svd(jac, compute_uv=False)
    if singular[-1] <= RANK_TOLERANCE * singular[0]:
        return rejected(
            "the fit's Jacobian is rank-deficient: these scales cannot separate e_inf, b and c"
        )
    dof = n.size - 3
    variance = 2 * best.cost / dof
    try:
        cov = variance * np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        return rejected("the parameter covariance is degenerate (JᵀJ is singular)")
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) < 0):
        return rejected("the parameter covariance is degenerate (not finite or not positive)")
    se_e, _, se_c = np.sqrt(np.diag(cov))
    if se_c >= c:
        return rejected(
            f"c is not determined: its standard error ({se_c:.3g}) is at least c ({c:.3g})"
        )
    log_n0 = np.log(n0)
    b = float(np.exp(log_a + c * log_n0))
    var_log_b = cov[1, 1] + log_n0**2 * cov[2, 2] + 2 * log_n0 * cov[1, 2]
    se_b = b * float(np.sqrt(max(var_log_b, 0.0)))
    return PowerLawFit(
        e_inf,
        b,
        c,
        identifiable=True,
        reason=f"fitted at {scales.size} scales, {dof} degrees of freedom",
        residuals=-best.fun,
        stderr=(float(se_e), se_b, float(se_c)),
        n_min=float(scales[0]),
        n_max=float(scales[-1]),
        n_scales=int(scales.size),
    )


def _runs(runs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise AlignfuseError(
            f"learning-curve runs lack columns {missing}; pass one row per (n_train, seed) "
            "with error = 1 − test_accuracy"
        )
    if runs.empty:
        raise AlignfuseError("learning-curve runs are empty; pass the runs of one method")
    return runs.loc[:, list(RUN_COLUMNS)]


@dataclass(frozen=True)
class BootstrapFit:
    """A fit on all seeds and its refits on seed resamples, with percentile intervals.

    ``samples``: one row per resample (resample, e_inf, b, c; NaN where the refit failed).
    ``draws``: the seeds drawn in each resample (two methods bootstrapped with the same seed
    labels and ``seed`` draw the same, which pairs them). ``intervals``: quantity, n,
    estimate, low, high for e_inf, b, c and the predicted error at each requested n.
    """

    point: PowerLawFit
    samples: pd.DataFrame
    draws: tuple[tuple, ...]
    intervals: pd.DataFrame
    failed_fraction: float
    confidence: float


def percentile_interval(
    values, confidence: float, extremes: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[float, float]:
    """Percentile interval over every resample, a failed one (NaN) counted at both extremes.

    A failed refit is a draw the data could not pin down, not a missing draw: it goes to
    ``extremes[0]`` for the lower end and ``extremes[1]`` for the upper, so failures only ever
    widen the interval. With the default extremes an end whose tail holds more failures than its
    share (1 − confidence)/2 of the resamples is infinite: not reported (NaN) by the callers.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return NAN, NAN
    failed = np.isnan(values)
    tail = (1 - confidence) / 2
    low = np.quantile(np.where(failed, extremes[0], values), tail, method="inverted_cdf")
    high = np.quantile(np.where(failed, extremes[1], values), 1 - tail, method="inverted_cdf")
    return float(low), float(high)


def _quantiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """A parameter's interval (NaN ends where failed refits reach into the tail)."""
    return tuple(v if np.isfinite(v) else NAN for v in percentile_interval(values, confidence))


def bootstrap_fit(
    runs: pd.DataFrame,
    n_predict=(),
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    min_scales: int = MIN_SCALES,
) -> BootstrapFit:
    """Percentile intervals of e_inf, b, c and of the error at ``n_predict``, resampling seeds.

    Seeds, not points, are drawn with replacement: a seed fixes the data order and
    initialisation of every scale, so its points are correlated and move together. Refits that
    are not identifiable count as failed (``failed_fraction``) and sit at both extremes of every
    interval (:func:`percentile_interval`): an end is NaN when failures exceed its tail. Every
    interval is NaN when the point fit is not identified: no interval around an estimate that
    does not exist. Deterministic for a given ``seed``.
    """
    runs = _runs(runs)
    if resamples < 1:
        raise AlignfuseError(f"bootstrap: resamples={resamples} must be at least 1")
    point = fit_power_law(runs["n_train"], runs["error"], min_scales)
    labels = sorted(runs["seed"].unique())
    curves = {
        label: (group["n_train"].to_numpy(float), group["error"].to_numpy(float))
        for label, group in runs.groupby("seed")
    }
    rng = np.random.default_rng(seed)
    draws, rows = [], []
    for i in range(resamples):
        drawn = tuple(labels[j] for j in rng.integers(0, len(labels), size=len(labels)))
        fit = fit_power_law(
            np.concatenate([curves[s][0] for s in drawn]),
            np.concatenate([curves[s][1] for s in drawn]),
            min_scales,
        )
        draws.append(drawn)
        rows.append({"resample": i, "e_inf": fit.e_inf, "b": fit.b, "c": fit.c})
    samples = pd.DataFrame(rows, columns=["resample", "e_inf", "b", "c"])
    ok = samples["c"].notna().to_numpy()
    # the refits an interval is read from: none when the point estimate itself is not identified
    params = samples[["e_inf", "b", "c"]].to_numpy(float)
    if not point.identifiable:
        params = np.full_like(params, NAN)
    intervals = []
    for column, name in enumerate(("e_inf", "b", "c")):
        low, high = _quantiles(params[:, column], confidence)
        estimate = getattr(point, name)
        intervals.append(
            {"quantity": name, "n": NAN, "estimate": estimate, "low": low, "high": high}
        )
    for n in np.atleast_1d(np.asarray(n_predict, dtype=float)):
        predicted = params[:, 0] + params[:, 1] * n ** (-params[:, 2])
        low, high = _quantiles(predicted, confidence)
        intervals.append(
            {
                "quantity": "error",
                "n": float(n),
                "estimate": point.predict(n),
                "low": low,
                "high": high,
            }
        )
    return BootstrapFit(
        point=point,
        samples=samples,
        draws=tuple(draws),
        intervals=pd.DataFrame(intervals, columns=["quantity", "n", "estimate", "low", "high"]),
        failed_fraction=float(1 - ok.mean()),
        confidence=confidence,
    )


@dataclass(frozen=True)
class HoldoutCheck:
    """A fit without the largest scale, and how far its prediction there is from the measurement."""

    n_heldout: float
    predicted: float
    measured: float
    abs_error_points: float
    fit: PowerLawFit


def holdout_check(runs: pd.DataFrame, min_scales: int = MIN_SCALES) -> HoldoutCheck:
    """Fit on every scale but the largest and predict it; the error is in accuracy points.

    The measured value is the mean error over seeds at the largest scale. An unidentified fit
    gives NaN prediction and error; its reason is in ``fit.reason``.
    """
    runs = _runs(runs)
    largest = float(runs["n_train"].max())
    if runs["n_train"].nunique() < 2:
        raise AlignfuseError(
            f"holdout check: every run has n_train = {largest:g}; it needs several scales"
        )
    kept = runs[runs["n_train"] < largest]
    fit = fit_power_law(kept["n_train"], kept["error"], min_scales)
    measured = float(runs.loc[runs["n_train"] == largest, "error"].mean())
    predicted = fit.predict(largest)
    return HoldoutCheck(largest, predicted, measured, 100 * abs(predicted - measured), fit)


@dataclass(frozen=True)
class Crossover:
    """Where curve b first drops below curve a, and why.

    ``n_star``: inf when never within n_max, NaN when a fit was not identified. With bootstrap
    fits and an identified ``n_star``, ``low``/``high`` are a percentile interval (inf when too
    many resamples never cross; a resample where either fit failed counts as crossing at the
    smallest n for ``low`` and never for ``high``), ``no_crossover_fraction`` is over the
    resamples where both fits succeeded, and ``failed_fraction`` counts those where either failed.
    """

    n_star: float
    reason: str
    low: float = NAN
    high: float = NAN
    no_crossover_fraction: float = NAN
    failed_fraction: float = NAN


def _crossing(params_a, params_b, n_lo: float, n_max: float) -> tuple[float, str]:
    """The first n in [n_lo, n_max] with err_b(n) < err_a(n).

    The gap of two power laws is a sum of three exponentials in log n, so it has at most two
    roots: a fine log grid brackets the first, and brentq refines it.
    """

    def difference(log_n):  # > 0: b is below a
        n = np.exp(log_n)
        return _curve(params_a, n) - _curve(params_b, n)

    log_grid = np.linspace(np.log(n_lo), np.log(n_max), CROSSING_GRID)
    gap = difference(log_grid)
    if gap[0] > 0:
        return n_lo, f"b is already below a at the smallest measured n ({n_lo:g})"
    above = np.flatnonzero(gap > 0)
    if above.size == 0:
        return float("inf"), f"b never drops below a within n ≤ {n_max:g}"
    i = above[0]
    n_star = float(np.exp(brentq(difference, log_grid[i - 1], log_grid[i], xtol=1e-12)))
    return n_star, f"b drops below a at n ≈ {n_star:.4g}"


def _params(fit: PowerLawFit) -> tuple[float, float, float]:
    return fit.e_inf, fit.b, fit.c


def crossover(fit_a, fit_b, n_max: float = N_MAX, n_min: float | None = None) -> Crossover:
    """The n* ≥ the smallest measured n where b (e.g. cross-attention) overtakes a (concat).

    ``fit_a``/``fit_b``: two :class:`PowerLawFit` (a point answer) or two :class:`BootstrapFit`
    from the same seeds and bootstrap seed (also a percentile interval over the paired
    resamples). ``n_min`` overrides the start (default: the larger of the fits' smallest n).
    """
    boot = isinstance(fit_a, BootstrapFit), isinstance(fit_b, BootstrapFit)
    if boot[0] != boot[1]:
        raise AlignfuseError("crossover: pass two PowerLawFit or two BootstrapFit, not one of each")
    point_a, point_b = (fit_a.point, fit_b.point) if boot[0] else (fit_a, fit_b)
    n_lo = max(point_a.n_min, point_b.n_min) if n_min is None else float(n_min)
    if not np.isfinite(n_lo) or n_lo <= 0:
        raise AlignfuseError(
            "crossover: the fits carry no measured range; pass n_min (the smallest measured n)"
        )
    if n_lo >= n_max:
        raise AlignfuseError(f"crossover: n_max {n_max:g} must exceed the smallest n {n_lo:g}")
    if not (point_a.identifiable and point_b.identifiable):
        why = point_a.reason if not point_a.identifiable else point_b.reason
        n_star, reason = NAN, f"no crossover: a fit is not identified ({why})"
    else:
        n_star, reason = _crossing(_params(point_a), _params(point_b), n_lo, n_max)
    if not boot[0]:
        return Crossover(n_star, reason)
    if fit_a.draws != fit_b.draws:
        raise AlignfuseError(
            "crossover: the bootstrap fits are not paired; bootstrap both methods over the same "
            "seeds with the same seed and number of resamples"
        )
    a = fit_a.samples[["e_inf", "b", "c"]].to_numpy(float)
    b = fit_b.samples[["e_inf", "b", "c"]].to_numpy(float)
    ok = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
    failed = float(1 - ok.mean())
    if np.isnan(n_star) or not ok.any():
        return Crossover(n_star, reason, failed_fraction=failed)
    crossings = np.full(ok.size, NAN)
    crossings[ok] = [_crossing(pa, pb, n_lo, n_max)[0] for pa, pb in zip(a[ok], b[ok], strict=True)]
    # a failed resample could have crossed anywhere: at the first measured n or never
    low, high = percentile_interval(crossings, fit_a.confidence, extremes=(n_lo, np.inf))
    return Crossover(
        n_star,
        reason,
        low=low,
        high=high,
        no_crossover_fraction=float(np.mean(np.isinf(crossings[ok]))),
        failed_fraction=failed,
    )
