"""The d-scaling experiment's analysis: samples needed to reach a target accuracy, n ∝ d^β.

The paper predicts β ≈ 1 for concatenation (d_v + d_t) and β ≈ 2 for a full-rank bilinear
score (d_v·d_t) when d_v = d_t = d. A target is a fixed fraction of the gap between chance and
the best accuracy the generator allows, so that "reaching it" means the same at every d. A curve
that never reaches the target, or reaches it at the smallest measured n, still says something (a
bound on n_needed): those points stay in the fit as censored observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from alignfuse.errors import AlignfuseError

CONFIDENCE = 0.95
LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
SIGMA_FLOOR = 1e-6  # residual sd of log n_needed: points on an exact line fit to this
NAN = float("nan")


class TargetCrossing(NamedTuple):
    """n at which a curve reaches the target, or the bound it is censored at, and why.

    ``censored``: "" when read off (``n`` is finite), "right" when the target is never reached
    (n_needed > ``bound``, the largest measured n), "left" when it is already reached at the
    smallest measured n (n_needed ≤ ``bound``); ``n`` is NaN for censored points.
    """

    n: float
    reason: str
    censored: str = ""
    bound: float = NAN


def target_accuracy(chance: float, best: float, fraction: float) -> float:
    """chance + fraction·(best − chance): the same share of the learnable gap at every d.

    A fixed accuracy (say 0.8) would be easy at one d and out of reach at another when the
    generator's ceiling moves with d; a fraction of the gap between chance and the best accuracy
    the generator allows (its Bayes accuracy) asks the same of every d.
    """
    if not 0 < fraction <= 1:
        raise AlignfuseError(f"target fraction {fraction!r} must be in (0, 1]")
    if not best > chance:
        raise AlignfuseError(
            f"target: best accuracy {best!r} must exceed chance {chance!r}; check both"
        )
    return float(chance + fraction * (best - chance))


def samples_to_target(curve_df: pd.DataFrame, target: float) -> TargetCrossing:
    """The n at which one (method, d) curve first reaches ``target`` accuracy.

    Log-linear interpolation between the last measured scale below the target and the first at
    or above it (accuracy is close to linear in log n between neighbouring scales). Rows of one
    n_train are averaged, so per-seed rows give the mean curve. Censored (``n`` NaN, with the
    bound) when the target is never reached (n_needed is then only above the largest n) or
    already reached at the smallest n (only at or below it).
    """
    missing = [c for c in ("n_train", "accuracy") if c not in curve_df.columns]
    if missing:
        raise AlignfuseError(
            f"samples_to_target: the curve lacks columns {missing}; pass n_train and accuracy"
        )
    curve = curve_df.groupby("n_train")["accuracy"].mean().sort_index()
    if curve.empty or curve.isna().any() or (curve.index <= 0).any():
        raise AlignfuseError(
            "samples_to_target: the curve needs positive n_train and finite accuracy in every row"
        )
    n = curve.index.to_numpy(float)
    acc = curve.to_numpy(float)
    reached = np.flatnonzero(acc >= target)
    if reached.size == 0:
        return TargetCrossing(
            NAN,
            f"never reached: best {acc.max():.4g} < target {target:.4g} up to n={n[-1]:g}",
            "right",
            float(n[-1]),
        )
    i = reached[0]
    if i == 0:
        return TargetCrossing(
            NAN, f"already reached at the smallest n ({n[0]:g})", "left", float(n[0])
        )
    share = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
    log_n = np.log(n[i - 1]) + share * (np.log(n[i]) - np.log(n[i - 1]))
    return TargetCrossing(
        float(np.exp(log_n)), f"interpolated between n={n[i - 1]:g} and n={n[i]:g}"
    )


@dataclass(frozen=True)
class ExponentFit:
    """β in n_needed ∝ d^β, fitted with its censored points, and a seed-level interval.

    ``low``/``high``: β ± t(S − 1)·sd(per-seed β)/√S over the S seeds (NaN with the reason when a
    seed's own β cannot be fitted or there is one seed). ``right_censored``/``left_censored``
    count points whose target was never reached / already reached at the smallest n.
    """

    beta: float
    low: float
    high: float
    stderr: float
    intercept: float
    sigma: float
    n_points: int
    right_censored: int
    left_censored: int
    seeds: int
    reason: str


class _Fit(NamedTuple):
    beta: float
    intercept: float
    sigma: float


def _censored_fit(log_d, log_n, censored) -> _Fit | None:
    """Maximum likelihood of log n = α + β log d + N(0, σ²) with censored points (Tobit).

    ``log_n`` holds the value of an observed point and the bound of a censored one; a
    right-censored point contributes P(log n > bound), a left-censored one P(log n ≤ bound).
    Without censoring this is least squares. None when fewer than two distinct d are observed
    (censored points alone bound β but do not fix it) or the optimiser does not converge.
    """
    observed = censored == ""
    if np.unique(log_d[observed]).size < 2 or log_d.size < 3:
        return None
    start = stats.linregress(log_d[observed], log_n[observed])
    if observed.all():
        residual = log_n - start.intercept - start.slope * log_d
        return _Fit(
            float(start.slope), float(start.intercept), float(np.sqrt(np.mean(residual**2)))
        )
    right, left = censored == "right", censored == "left"

    def negative_log_likelihood(theta):
        intercept, beta, log_sigma = theta
        z = (log_n - intercept - beta * log_d) / np.exp(log_sigma)
        return -(
            np.sum(-0.5 * z[observed] ** 2 - log_sigma - LOG_SQRT_2PI)
            + np.sum(special.log_ndtr(-z[right]))
            + np.sum(special.log_ndtr(z[left]))
        )

    spread = np.std(log_n[observed] - start.intercept - start.slope * log_d[observed])
    theta0 = [start.intercept, start.slope, np.log(max(spread, 0.05))]
    result = optimize.minimize(
        negative_log_likelihood,
        theta0,
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000},
        bounds=[(None, None), (None, None), (np.log(SIGMA_FLOOR), np.log(10.0))],
    )
    if not result.success or not np.all(np.isfinite(result.x)):
        return None
    intercept, beta, log_sigma = result.x
    return _Fit(float(beta), float(intercept), float(np.exp(log_sigma)))


def fit_exponent(d, n_needed, seeds, censored=None, bound=None, confidence: float = CONFIDENCE):
    """β of log n_needed on log d, keeping censored points as bounds, with a seed-level interval.

    One point per (d, seed). A point with NaN ``n_needed`` must be censored: ``censored`` says
    "right" (target never reached: n_needed > ``bound``) or "left" (reached at the smallest n:
    n_needed ≤ ``bound``). Dropping such points would bias β downwards exactly where a head
    needs the most samples, so β is the censored-normal maximum-likelihood slope over all points.

    The points of one seed share its data order and initialisation at every d, so they are not
    independent: the interval treats the seed as the unit, from the spread of each seed's own β
    (Student t with S − 1 degrees of freedom) around the pooled β. It is NaN, with the reason,
    when a seed's β cannot be fitted or there is only one seed; β itself is NaN when fewer than
    two distinct d have an observed n_needed.
    """
    d = np.asarray(d, dtype=float).ravel()
    n_needed = np.asarray(n_needed, dtype=float).ravel()
    seeds = np.asarray(seeds).ravel()
    censored = (
        np.full(d.size, "", dtype=object)
        if censored is None
        else np.asarray(censored, dtype=object).ravel()
    )
    bound = np.full(d.size, NAN) if bound is None else np.asarray(bound, dtype=float).ravel()
    if not (d.shape == n_needed.shape == seeds.shape == censored.shape == bound.shape):
        raise AlignfuseError(
            f"fit_exponent: {d.size} widths, {n_needed.size} n_needed, {seeds.size} seeds, "
            f"{censored.size} censoring labels and {bound.size} bounds; pass one of each per point"
        )
    if np.any(~np.isfinite(d)) or np.any(d <= 0):
        raise AlignfuseError("fit_exponent: d must be finite positive feature widths")
    if not set(censored) <= {"", "right", "left"}:
        raise AlignfuseError("fit_exponent: censored must be '', 'right' or 'left' per point")
    observed = censored == ""
    value = np.where(observed, n_needed, bound)
    if np.any(~np.isfinite(value)) or np.any(value <= 0):
        raise AlignfuseError(
            "fit_exponent: each observed n_needed and each censored point's bound must be "
            "finite and positive"
        )
    log_d, log_n = np.log(d), np.log(value)
    counts = {
        "n_points": int(d.size),
        "right_censored": int((censored == "right").sum()),
        "left_censored": int((censored == "left").sum()),
        "seeds": int(np.unique(seeds).size),
    }
    note = (
        f"; {counts['right_censored']} never reached and {counts['left_censored']} reached at "
        "the smallest n, kept as bounds"
        if counts["right_censored"] or counts["left_censored"]
        else ""
    )
    pooled = _censored_fit(log_d, log_n, censored)
    if pooled is None:
        return ExponentFit(
            NAN, NAN, NAN, NAN, NAN, NAN, **counts,
            reason=f"needs observed n_needed at 2 distinct d and 3 points in all{note}",
        )  # fmt: skip
    per_seed = [
        _censored_fit(log_d[seeds == s], log_n[seeds == s], censored[seeds == s])
        for s in np.unique(seeds)
    ]
    method = "least squares" if not note else "censored-normal maximum likelihood"
    reason = f"{method} on {d.size} points{note}"
    low = high = stderr = NAN
    if len(per_seed) < 2:
        reason += "; one seed: no interval"
    elif any(fit is None for fit in per_seed):
        reason += "; a seed's own beta cannot be fitted: no interval"
    else:
        slopes = np.array([fit.beta for fit in per_seed])
        stderr = float(slopes.std(ddof=1) / np.sqrt(slopes.size))
        t = stats.t.ppf(1 - (1 - confidence) / 2, slopes.size - 1)
        low, high = pooled.beta - t * stderr, pooled.beta + t * stderr
        reason += f"; interval over {slopes.size} seeds"
    return ExponentFit(
        pooled.beta, low, high, stderr, pooled.intercept, pooled.sigma, **counts, reason=reason
    )
