"""The d-scaling experiment's analysis: samples needed to reach a target accuracy, n ∝ d^β.

The paper predicts β ≈ 1 for concatenation (d_v + d_t) and β ≈ 2 for a full-rank bilinear
score (d_v·d_t) when d_v = d_t = d. A target is a fixed fraction of the gap between chance and
the best accuracy the generator allows, so that "reaching it" means the same at every d.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from alignfuse.errors import AlignfuseError

CONFIDENCE = 0.95
RESAMPLES = 2000
NAN = float("nan")


class TargetCrossing(NamedTuple):
    """n at which a curve reaches the target (NaN if it cannot be read off) and why."""

    n: float
    reason: str


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
    n_train are averaged, so per-seed rows give the mean curve. NaN when the target is never
    reached, or already reached at the smallest n (n_needed is then only an upper bound).
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
            NAN, f"never reached: best {acc.max():.4g} < target {target:.4g} up to n={n[-1]:g}"
        )
    i = reached[0]
    if i == 0:
        return TargetCrossing(NAN, f"already reached at the smallest n ({n[0]:g})")
    share = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
    log_n = np.log(n[i - 1]) + share * (np.log(n[i]) - np.log(n[i - 1]))
    return TargetCrossing(
        float(np.exp(log_n)), f"interpolated between n={n[i - 1]:g} and n={n[i]:g}"
    )


@dataclass(frozen=True)
class ExponentFit:
    """β in n_needed ∝ d^β with a Student t interval, and a seed-bootstrap interval if asked.

    ``dropped``: points without an n_needed (target unreached), left out of the fit.
    """

    beta: float
    low: float
    high: float
    stderr: float
    intercept: float
    n_points: int
    dropped: int
    reason: str
    boot_low: float = NAN
    boot_high: float = NAN
    boot_failed_fraction: float = NAN


def _slope(log_d: np.ndarray, log_n: np.ndarray):
    """linregress of log n on log d, or None when the points cannot give a slope and its error."""
    if log_d.size < 3 or np.unique(log_d).size < 2:
        return None
    return stats.linregress(log_d, log_n)


def fit_exponent(
    d,
    n_needed,
    seeds=None,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    random_state: int = 0,
) -> ExponentFit:
    """Least-squares slope of log n_needed on log d with a Student t interval.

    One point per (d, seed) or per d; NaN n_needed (target not reached) are dropped and counted.
    With ``seeds`` (a label per point) the slope is also refitted on resamples of whole seeds, a
    percentile interval that does not assume the points are independent. Needs three points
    over two distinct d; otherwise β is NaN with the reason.
    """
    d = np.asarray(d, dtype=float).ravel()
    n_needed = np.asarray(n_needed, dtype=float).ravel()
    if d.shape != n_needed.shape:
        raise AlignfuseError(
            f"fit_exponent: {d.size} widths but {n_needed.size} n_needed; pass one per point"
        )
    if np.any(~np.isfinite(d)) or np.any(d <= 0):
        raise AlignfuseError("fit_exponent: d must be finite positive feature widths")
    if np.any(n_needed <= 0):
        raise AlignfuseError("fit_exponent: n_needed must be positive (or NaN when unreached)")
    kept = np.isfinite(n_needed)
    dropped = int((~kept).sum())
    log_d, log_n = np.log(d[kept]), np.log(n_needed[kept])
    fit = _slope(log_d, log_n)
    note = f"; dropped {dropped} points whose target was not reached" if dropped else ""
    if fit is None:
        return ExponentFit(
            NAN, NAN, NAN, NAN, NAN, int(kept.sum()), dropped,
            f"needs at least 3 points over 2 distinct d, has {kept.sum()}{note}",
        )  # fmt: skip
    t = stats.t.ppf(1 - (1 - confidence) / 2, log_d.size - 2)
    result = {
        "beta": float(fit.slope),
        "low": float(fit.slope - t * fit.stderr),
        "high": float(fit.slope + t * fit.stderr),
        "stderr": float(fit.stderr),
        "intercept": float(fit.intercept),
        "n_points": int(log_d.size),
        "dropped": dropped,
        "reason": f"least squares on {log_d.size} points{note}",
    }
    if seeds is None:
        return ExponentFit(**result)
    seeds = np.asarray(seeds).ravel()
    if seeds.shape != d.shape:
        raise AlignfuseError(
            f"fit_exponent: {seeds.size} seed labels for {d.size} points; pass one per point"
        )
    seeds = seeds[kept]
    labels = np.unique(seeds)
    members = [np.flatnonzero(seeds == label) for label in labels]
    rng = np.random.default_rng(random_state)
    slopes = np.full(resamples, NAN)
    for r in range(resamples):
        rows = np.concatenate([members[j] for j in rng.integers(0, labels.size, labels.size)])
        boot = _slope(log_d[rows], log_n[rows])
        if boot is not None:
            slopes[r] = boot.slope
    ok = ~np.isnan(slopes)
    tail = (1 - confidence) / 2
    if ok.any():
        result["boot_low"], result["boot_high"] = (
            float(q) for q in np.quantile(slopes[ok], [tail, 1 - tail])
        )
    result["boot_failed_fraction"] = float(1 - ok.mean())
    return ExponentFit(**result)
