"""Paired comparisons of fusion methods: a reference minus every other method, matched on seed.

Within a condition (dataset, backbone, alignment, training pairs) a seed fixes the training pairs,
the data order and the initial random stream for every method, so two methods' runs of one seed
are a matched pair and their difference removes the seed's share of the variance. Beside the
spread across seeds, the test set's own sampling variance comes from a bootstrap over test images
(:mod:`alignfuse.analysis.bootstrap`); the interval that verdicts use combines the two. All
statistics come from scipy and statsmodels; this module pairs the runs and lays the results out.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from alignfuse.analysis.bootstrap import ImageBootstrap, percentile_interval
from alignfuse.analysis.recipes import run_recipe
from alignfuse.errors import AlignfuseError

if TYPE_CHECKING:
    from alignfuse.analysis.comparisons import Comparison

PAIR_KEYS = ["dataset", "backbone", "alignment", "n_train"]
METRICS = ["test_accuracy", "test_auroc"]
CONFIDENCE = 0.95
WILCOXON_MIN_PAIRS = 6  # below this the signed-rank test cannot reach p < 0.05 (two-sided)
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
HOLM_ALPHA = 0.05
PAIRED_COLUMNS = [
    *PAIR_KEYS,
    "metric",
    "reference",
    "method",
    "head",
    "family",
    "comparison",
    "mixed_recipe",
    "reference_recipe",
    "method_recipe",
    "n_seeds",
    "unmatched_seeds",
    "diverged_seeds",
    "reference_mean",
    "method_mean",
    "mean_diff",
    "std_diff",
    "ci_low",
    "ci_high",
    "t_stat",
    "p_ttest",
    "wilcoxon_stat",
    "p_wilcoxon",
    "boot_low",
    "boot_high",
    "test_se",
    "test_low",
    "test_high",
    "low",
    "high",
    "interval",
    "p_ttest_holm",
    "p_wilcoxon_holm",
]
SEEDS_ONLY = "seeds"
SEEDS_AND_TEST = "seeds + test images"


class Predictions(dict):
    """Test-pair probabilities by condition: (dataset, backbone, alignment, method, n_train) ->
    {seed: probabilities [N] in test.parquet's order}."""

    def stack(self, key: tuple, seeds) -> np.ndarray:
        """The probabilities [S, N] of the given seeds of one condition."""
        return np.stack([self[key][seed] for seed in seeds])


def seed_halfwidth(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student t interval of a mean over ``n`` seeds (NaN below two)."""
    if n < 2 or np.isnan(std):
        return np.nan
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n))


def combined_halfwidth(std: float, n: int, test_se: float, confidence: float = CONFIDENCE) -> float:
    """Half-width covering both sources of variance of a mean over seeds on one test set.

    Seeds are independent given the test set, so their spread estimates the training variance
    (t interval); the image bootstrap estimates the test set's. The two add as variances:
    sqrt(h_seeds^2 + (z se_test)^2). NaN when either part is unknown.
    """
    z = stats.norm.ppf(0.5 + confidence / 2)
    return float(np.hypot(seed_halfwidth(std, n, confidence), z * test_se))


def test_interval(
    draws: np.ndarray, estimate: float, std: float, n: int, confidence: float
) -> dict:
    """The test bootstrap's standard error and percentile interval, and the combined interval."""
    if draws is None:
        return {
            "test_se": np.nan,
            "test_low": np.nan,
            "test_high": np.nan,
            **bounds(estimate, seed_halfwidth(std, n, confidence), SEEDS_ONLY),
        }
    se = float(np.std(draws, ddof=1))
    low, high = percentile_interval(draws, confidence)
    return {
        "test_se": se,
        "test_low": low,
        "test_high": high,
        **bounds(estimate, combined_halfwidth(std, n, se, confidence), SEEDS_AND_TEST),
    }


def bounds(estimate: float, halfwidth: float, covers: str) -> dict:
    return {"low": estimate - halfwidth, "high": estimate + halfwidth, "interval": covers}


def t_test(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Paired t test (scipy ``ttest_rel``) of reference − other and its 95% Student t interval.

    With one pair every value is NaN. With differences that are all equal the interval is that
    value, and the t statistic is ±inf (p 0) or, for differences all zero, NaN.
    """
    if len(reference) < 2:
        return dict.fromkeys(["t_stat", "p_ttest", "ci_low", "ci_high"], np.nan)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(reference, other)
        interval = result.confidence_interval(CONFIDENCE)
    return {
        "t_stat": float(result.statistic),
        "p_ttest": float(result.pvalue),
        "ci_low": float(interval.low),
        "ci_high": float(interval.high),
    }


def wilcoxon_test(differences: np.ndarray) -> dict[str, float]:
    """Wilcoxon signed-rank test of the differences; NaN below WILCOXON_MIN_PAIRS pairs."""
    if len(differences) < WILCOXON_MIN_PAIRS:
        return {"wilcoxon_stat": np.nan, "p_wilcoxon": np.nan}
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.wilcoxon(differences)
    return {"wilcoxon_stat": float(result.statistic), "p_wilcoxon": float(result.pvalue)}


def bootstrap_ci(differences: np.ndarray, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean difference, resampling matched pairs.

    Resampling the per-seed differences is resampling the pairs: both methods' runs of a seed stay
    together. The generator is seeded per call, so an interval does not depend on the table's other
    rows. NaN with fewer than two pairs.
    """
    if len(differences) < 2:
        return np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(
            (np.asarray(differences, dtype=float),),
            np.mean,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=seed,
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm(pvalues: pd.Series) -> pd.Series:
    """Holm-adjusted p-values (statsmodels ``multipletests``); NaN entries stay NaN and don't count."""
    adjusted = pd.Series(np.nan, index=pvalues.index, dtype=float)
    present = pvalues.notna()
    if present.any():
        adjusted[present] = multipletests(pvalues[present], alpha=HOLM_ALPHA, method="holm")[1]
    return adjusted


def diverged_runs(runs: pd.DataFrame) -> pd.Series:
    """Which runs diverged (their seed is left out of every statistic)."""
    if "status" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["status"] != "ok"


def prediction_key(condition: dict, method: str) -> tuple:
    """The key of a condition's predictions (see :class:`Predictions`)."""
    return (
        condition["dataset"],
        condition["backbone"],
        condition["alignment"],
        method,
        condition["n_train"],
    )


def compare(reference: pd.Series, other: pd.Series) -> dict[str, float]:
    """Every statistic of one paired comparison; both series are indexed by seed and aligned."""
    ref, oth = reference.to_numpy(float), other.to_numpy(float)
    differences = ref - oth
    low, high = bootstrap_ci(differences)
    return {
        "n_seeds": len(differences),
        "reference_mean": ref.mean(),
        "method_mean": oth.mean(),
        "mean_diff": differences.mean(),
        "std_diff": differences.std(ddof=1) if len(differences) > 1 else np.nan,
        **t_test(ref, oth),
        **wilcoxon_test(differences),
        "boot_low": low,
        "boot_high": high,
    }


def pairs_of(comparisons: list[Comparison]) -> dict[tuple[str, str, int], dict]:
    """(backbone, alignment, n) -> {(reference, method): comparison}: what to pair in each
    condition."""
    wanted: dict = defaultdict(dict)
    for c in comparisons:
        for n in c.scales:
            wanted[c.backbone, c.alignment, n][c.reference, c.method] = c
    return wanted


def recipe_of(runs: pd.DataFrame) -> str:
    """One condition's recipe as its runs record it (see ``recipes.run_recipe``)."""
    if runs.empty or "training" not in runs:
        return "–"
    first = runs.iloc[0]
    return run_recipe(first["training"], first.get("tuned"), first.get("tuned_values"))


def paired_differences(
    runs: pd.DataFrame,
    comparisons: list[Comparison],
    metrics: list[str] = METRICS,
    predictions: Predictions | None = None,
    bootstrap: ImageBootstrap | None = None,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """One row per declared comparison, scale and metric with runs of both sides: reference −
    method (``comparisons.declare``; nothing else is paired).

    With ``predictions`` and an image ``bootstrap``, each row also has the test bootstrap of the
    seeds' mean difference (``test_se``, ``test_low``, ``test_high``: the same image draws for
    both methods, so the difference stays paired) and ``low``/``high``, the interval combining
    seeds and test images; without them ``low``/``high`` is the seed interval alone, and
    ``interval`` says which. Seeds that diverged (``status``) in either method are left out of
    both methods' comparison and counted in ``diverged_seeds``; where every seed diverged the
    row stays, with ``n_seeds`` 0 and no estimate.

    ``method`` is the compared method's label, ``head`` its head's registry name and ``family``
    its family; ``comparison`` names what declared it, ``mixed_recipe`` whether the two sides'
    recipes differ, and ``reference_recipe``/``method_recipe`` how each was trained (from the
    runs). Runs are matched on seed within (dataset, backbone, alignment, n_train); a seed that
    only one of the two methods has is left out and counted in ``unmatched_seeds``. Differences
    are in the metric's own units (accuracy as a fraction). Holm's correction runs over the
    comparisons of one reference and one metric (each its own family); ``p_ttest_holm`` corrects
    the t test, ``p_wilcoxon_holm`` the signed-rank test where it was run.
    """
    duplicated = runs.duplicated([*PAIR_KEYS, "method", "seed"])
    if duplicated.any():
        first = runs[duplicated].iloc[0]
        raise AlignfuseError(
            f"runs of {first['backbone']}@{first['alignment']} {first['method']} "
            f"n{first['n_train']} seed {first['seed']} appear more than once; "
            "pass each run file once (see analysis.collect_runs)"
        )
    wanted = pairs_of(comparisons)
    rows = []
    for keys, condition in runs.groupby(PAIR_KEYS, sort=True, dropna=False):
        declared = wanted.get((keys[1], keys[2], int(keys[3])))
        if not declared:
            continue
        diverged = condition[diverged_runs(condition)]
        heads = condition.groupby("method")["head"].first()
        usable = condition[~diverged_runs(condition)]
        by_method = {m: usable[usable["method"] == m].set_index("seed") for m in heads.index}
        labels = dict(zip(PAIR_KEYS, keys, strict=True))
        for (reference, method), comparison in sorted(declared.items()):
            if reference not in by_method or method not in by_method:
                continue
            ref_runs = by_method[reference]
            seeds = ref_runs.index.intersection(by_method[method].index).sort_values()
            lost = diverged.loc[diverged["method"].isin([reference, method]), "seed"].nunique()
            if seeds.empty and not lost:
                continue
            unmatched = ref_runs.index.symmetric_difference(by_method[method].index)
            described = {
                **labels,
                "reference": reference,
                "method": method,
                "head": heads[method],
                "family": comparison.family,
                "comparison": ", ".join(comparison.sources),
                "mixed_recipe": comparison.mixed_recipe,
                "reference_recipe": recipe_of(condition[condition["method"] == reference]),
                "method_recipe": recipe_of(condition[condition["method"] == method]),
                "unmatched_seeds": len(unmatched),
                "diverged_seeds": lost,
            }
            for metric in metrics:
                if seeds.empty:  # every seed diverged: a row that says so, with no estimate
                    rows.append({**described, "metric": metric, "n_seeds": 0})
                    continue
                row = compare(ref_runs.loc[seeds, metric], by_method[method].loc[seeds, metric])
                draws = None
                if predictions is not None and bootstrap is not None:
                    draws = bootstrap.draws(
                        metric, predictions.stack(prediction_key(labels, reference), seeds)
                    ) - bootstrap.draws(
                        metric, predictions.stack(prediction_key(labels, method), seeds)
                    )
                interval = test_interval(
                    draws, row["mean_diff"], row["std_diff"], row["n_seeds"], confidence
                )
                rows.append({**described, "metric": metric, **row, **interval})
    paired = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    for column, source in (("p_ttest_holm", "p_ttest"), ("p_wilcoxon_holm", "p_wilcoxon")):
        paired[column] = np.nan
        for _, family in paired.groupby(["reference", "metric"]):
            paired.loc[family.index, column] = holm(family[source].astype(float))
    paired["mixed_recipe"] = paired["mixed_recipe"].astype(bool)
    order = [*PAIR_KEYS[:3], "metric", "reference", "method", "n_train"]
    return paired.sort_values(order, kind="stable").reset_index(drop=True)
