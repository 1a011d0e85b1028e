"""The alignment study: how the reference's lead over each method moves as alignment degrades.

For every degradation kind applied to a backbone's base feature set (raw or contrastive), the
gap reference − method is paired on seed at each level (level 0 is the base itself), set beside
the measured alignment metrics of that feature set, and tested for a monotonic trend: Spearman's
rho between level and mean gap with a bootstrap interval over seeds, and Page's trend test with
seeds as blocks (scipy).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from alignfuse.align.names import parse_alignment
from alignfuse.analysis.statistics import diverged_runs, seed_halfwidth

POINTS = 100.0
METRIC = "test_accuracy"
INCREASING, DECREASING, NO_TREND = "increasing", "decreasing", "no trend detected"
TOO_FEW_LEVELS = "too few levels"
MIN_LEVELS = 3  # with two levels any two means are "monotonic": no trend can be told
SHOWN_METRICS = ("cosine_gap", "text_to_image_R@1", "mutual_knn", "cka")
COLUMNS = [
    "dataset",
    "backbone",
    "base",
    "degradation",
    "level",
    "alignment",
    "reference",
    "method",
    "head",
    "mixed_recipe",
    "n_train",
    "n_seeds",
    "n_diverged",
    "gap_pts",
    "gap_low_pts",
    "gap_high_pts",
    *SHOWN_METRICS,
    *(f"{m}_chance" for m in SHOWN_METRICS),
    "spearman",
    "spearman_low",
    "spearman_high",
    "page_l",
    "page_p",
    "page_p_fall",
    "trend",
]


def seed_gaps(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per condition and seed, reference − method test accuracy, matched on seed; the gap is NaN
    (and ``usable`` False) where either run diverged, so such seeds are counted, not used."""
    runs = runs.assign(usable=~diverged_runs(runs))
    keys = ["dataset", "backbone", "alignment", "n_train", "seed"]
    ref = runs.loc[runs["method"] == reference, [*keys, METRIC, "usable"]]
    others = runs[runs["method"] != reference]
    gaps = others.merge(
        ref.rename(columns={METRIC: "reference_value", "usable": "reference_usable"}),
        on=keys,
        how="inner",
        validate="m:1",
    )
    gaps["usable"] = gaps["usable"] & gaps["reference_usable"]
    gaps["gap"] = (gaps["reference_value"] - gaps[METRIC]).where(gaps["usable"])
    recipes = gaps["alignment"].map(parse_alignment)
    gaps["base"] = [r.base for r in recipes]
    gaps["degradation"] = [r.kind for r in recipes]
    gaps["level"] = [r.level for r in recipes]
    return gaps


def trend(levels: np.ndarray, gaps: np.ndarray, resamples: int, seed: int, confidence: float):
    """Spearman's rho of level vs mean gap with a seed-bootstrap interval, and Page's L test.

    ``gaps`` is [seeds, levels] (levels ascending, complete blocks). A trend is called
    increasing (decreasing) only with at least three levels, the rho interval above (below) 0
    and Page's one-sided test in that direction significant; anything less is no trend detected.
    ``page_p`` is the one-sided p of a rising gap, ``page_p_fall`` that of a falling one, so a
    claim of either direction reads its own test.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(levels, gaps.mean(axis=0)).statistic
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(resamples):
            sample = gaps[rng.integers(0, len(gaps), len(gaps))].mean(axis=0)
            draws.append(stats.spearmanr(levels, sample).statistic)
        draws = np.asarray(draws, dtype=float)
        draws = draws[~np.isnan(draws)]
        tail = 50 * (1 - confidence)
        low, high = np.percentile(draws, [tail, 100 - tail]) if len(draws) else (np.nan, np.nan)
        testable = len(gaps) >= 2 and gaps.shape[1] >= MIN_LEVELS
        page = stats.page_trend_test(gaps) if testable else None
        down = stats.page_trend_test(gaps[:, ::-1]) if testable else None
    alpha = 1 - confidence
    if not testable:
        verdict = TOO_FEW_LEVELS
    elif low > 0 and page.pvalue < alpha:
        verdict = INCREASING
    elif high < 0 and down.pvalue < alpha:
        verdict = DECREASING
    else:
        verdict = NO_TREND
    return {
        "spearman": float(rho),
        "spearman_low": float(low),
        "spearman_high": float(high),
        "page_l": np.nan if page is None else float(page.statistic),
        "page_p": np.nan if page is None else float(page.pvalue),
        "page_p_fall": np.nan if down is None else float(down.pvalue),
        "trend": verdict,
    }


def alignment_study(
    runs: pd.DataFrame,
    metrics: pd.DataFrame | None,
    comparisons: list,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per declared (backbone, base, degradation kind, reference, method, scale, level)
    with the gap in points, its seed interval, the feature set's alignment metrics and the
    kind's trend test (over the levels with usable seeds; a level whose seeds all diverged keeps
    its row with ``n_seeds`` 0). A level is in the study where ``comparisons``
    (``comparisons.declare``) pair its reference and method there."""
    declared = {
        (c.backbone, c.alignment, c.reference, c.method, n) for c in comparisons for n in c.scales
    }
    mixed = {(c.reference, c.method): c.mixed_recipe for c in comparisons}
    frames = []
    for reference in sorted({c.reference for c in comparisons}):
        gaps = seed_gaps(runs, reference).assign(reference=reference)
        keys = zip(
            gaps["backbone"], gaps["alignment"], gaps["method"], gaps["n_train"], strict=True
        )
        keep = [(b, a, reference, m, int(n)) in declared for b, a, m, n in keys]
        frames.append(gaps[keep])
    gaps = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if gaps.empty:
        return pd.DataFrame(columns=COLUMNS)
    degraded = gaps[gaps["degradation"].notna()]
    groups = ["dataset", "backbone", "base", "reference", "method", "n_train"]
    rows = []
    for keys, frame in degraded.groupby(groups + ["degradation"], sort=True):
        condition = dict(zip(groups + ["degradation"], keys, strict=True))
        base = gaps[
            (gaps[groups] == pd.Series(keys[:-1], index=groups)).all(axis=1)
            & gaps["degradation"].isna()
        ]
        levels = pd.concat([base.assign(level=0.0), frame])
        table = levels.pivot_table(index="seed", columns="level", values="gap", aggfunc="first")
        table = table.dropna()  # seeds present at every level (complete blocks)
        summary = trend(
            table.columns.to_numpy(float), table.to_numpy(float), resamples, seed, confidence
        )
        for level, at in levels.groupby("level"):
            values = at["gap"].dropna().to_numpy(float)
            half = seed_halfwidth(values.std(ddof=1) if len(values) > 1 else np.nan, len(values))
            mean = values.mean() if len(values) else np.nan
            alignment = at["alignment"].iloc[0]
            rows.append(
                {
                    **condition,
                    "level": level,
                    "alignment": alignment,
                    "head": at["head"].iloc[0],
                    "mixed_recipe": mixed[condition["reference"], condition["method"]],
                    "n_seeds": len(values),
                    "n_diverged": int((~at["usable"]).sum()),
                    "gap_pts": mean * POINTS,
                    "gap_low_pts": (mean - half) * POINTS,
                    "gap_high_pts": (mean + half) * POINTS,
                    **measured(metrics, condition["backbone"], alignment),
                    **summary,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def measured(metrics: pd.DataFrame | None, backbone: str, alignment: str) -> dict:
    """The shown alignment metrics of one feature set and their chance levels (NaN where not
    measured)."""
    names = [*SHOWN_METRICS, *(f"{m}_chance" for m in SHOWN_METRICS)]
    if metrics is None or metrics.empty:
        return dict.fromkeys(names, np.nan)
    rows = metrics[(metrics["backbone"] == backbone) & (metrics["alignment"] == alignment)]
    rows = rows.set_index("metric")
    values = {m: float(rows["value"].get(m, np.nan)) for m in SHOWN_METRICS}
    if "chance" in rows:
        values |= {f"{m}_chance": float(rows["chance"].get(m, np.nan)) for m in SHOWN_METRICS}
    return {name: values.get(name, np.nan) for name in names}
