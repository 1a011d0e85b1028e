"""``alignfuse advise``: concatenation or cross-attention, for a practitioner's own features.

It measures how aligned the two feature sets are (with the alignment stage's metrics, at the
number of rows the study measured its own feature sets on, since mutual k-NN falls with n),
finds the feature set of a finished study that is most alike, and reads off that study's fitted
learning curves at the practitioner's number of training pairs: the predicted accuracy gap in each
comparison the study declared of the reference with an attention-family method, each with an
interval from the paired seed bootstrap of both fits (failed refits counted as failures) and the
test set's bootstrap. It recommends only when every such interval excludes zero on the same side.

Within the fitted scales the answer is read off the curves. Beyond the largest, it answers only
as far as the study measured how well its fits extrapolate: the theory stage refits each curve
without its largest scale and predicts that scale, so an answer up to the same ratio beyond the
largest fitted scale is labelled *extrapolated* and each interval is widened by both curves'
held-out errors. Further out, below the smallest scale, or without a held-out check, there is no
answer; where the study cannot say (curves not identified, no study) it says so.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from alignfuse.align.metrics import alignment_metrics
from alignfuse.errors import AlignfuseError
from alignfuse.fusion import ATTENTION
from alignfuse.parquet import read_embeddings, read_frame
from alignfuse.theory.complexity import effective_dimension, samples_needed
from alignfuse.theory.learning_curves import percentile_interval

# the metrics that place a feature set (each in [-1, 1] or [0, 1]); retrieval is left out because
# its scale depends on how many items are compared
PLACING = ("cosine_gap", "mutual_knn", "cka")
N_DEPENDENT = ("mutual_knn",)  # falls with the number of rows: compared at equal n only
MAX_ROWS = 2000  # rows measured without a study (a seeded sample when there are more)
MIN_ROWS = 20
CONFIDENCE = 0.95
SEED = 0
CONCAT, CROSS_ATTENTION = "concat", "cross-attention"
TOO_CLOSE, OUTSIDE = "too close to call", "outside the measured range"
FIX = "rerun the study's workflow"


def paired_features(image_path: Path, text_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Row i of the image file with row i of the text file."""
    _, V = read_embeddings(image_path)
    _, T = read_embeddings(text_path)
    if len(V) != len(T):
        raise AlignfuseError(
            f"{image_path} has {len(V)} rows but {text_path} has {len(T)}; advise pairs row i of "
            "one with row i of the other: pass files of matched image-text pairs"
        )
    if len(V) < MIN_ROWS:
        raise AlignfuseError(f"{image_path}: {len(V)} pairs are too few to measure alignment")
    return V, T


def measure(V: np.ndarray, T: np.ndarray, rows: int) -> dict[str, float]:
    """The alignment metrics on ``rows`` pairs (a seeded sample when there are more)."""
    if len(V) > rows:
        chosen = np.sort(np.random.default_rng(SEED).choice(len(V), rows, replace=False))
        V, T = V[chosen], T[chosen]
    return {r["metric"]: r["value"] for r in alignment_metrics(V, T, np.arange(len(V)))}


def study_tables(results: Path) -> dict[str, pd.DataFrame]:
    """A finished study's fits, their bootstrap refits, its paired comparisons (for the test
    set's bootstrap) and its feature sets' alignment."""
    results = Path(results)
    tables = results / "tables"
    needed = {
        "fits": tables / "theory_fits.parquet",
        "samples": tables / "theory_fit_samples.parquet",
        "paired": tables / "paired.parquet",
    }
    alignment = sorted((results / "alignment").glob("*.parquet"))
    missing = [str(p) for p in needed.values() if not p.is_file()]
    if missing or not alignment:
        raise AlignfuseError(
            f"{results}: not a finished study (missing {', '.join(missing) or 'alignment/*.parquet'}); "
            "pass results/<study> of a study whose workflow has run, or leave --results out"
        )
    out = {name: read_frame(path, FIX) for name, path in needed.items()}
    out["alignment"] = read_frame(alignment[0], FIX)
    for name, columns in (
        ("fits", {"n_min", "n_max", "identifiable", "e_inf", "b", "c", "heldout_from"}),
        ("samples", {"reference", "curve"}),
        ("alignment", {"images"}),
        ("paired", {"test_se", "family", "mixed_recipe"}),
    ):
        lacking = sorted(columns - set(out[name].columns))
        if lacking:
            raise AlignfuseError(
                f"{results}: its {name} table lacks {lacking} (written by an older version); {FIX}"
            )
    return out


def place(
    V: np.ndarray, T: np.ndarray, alignment: pd.DataFrame, fitted: set[str]
) -> tuple[str, float, dict[str, float], int, list[str]]:
    """The study's feature set (among those with fits) whose placing metrics are closest to the
    user's, each compared at the number of rows the study measured it on.

    Returns (feature set, distance, the user's metrics, rows they were measured on, metrics
    left out). A metric that falls with n (mutual k-NN) is left out when the user has fewer rows
    than the study measured: it cannot be compared at equal n.
    """
    table = alignment.assign(feature_set=alignment["backbone"] + "@" + alignment["alignment"])
    table = table[table["metric"].isin(PLACING) & table["feature_set"].isin(fitted)]
    if table.empty:
        raise AlignfuseError("the study has no feature set with both alignment metrics and fits")
    values = table.pivot(index="feature_set", columns="metric", values="value")
    rows = table.groupby("feature_set")["images"].max()
    distances, measured = {}, {}
    for study_rows in sorted(set(rows)):
        here = min(int(study_rows), len(V))
        if here not in measured:
            measured[here] = measure(V, T, here)
    left_out = set()
    for feature_set, study_rows in rows.items():
        here = min(int(study_rows), len(V))
        metrics = measured[here]
        used = [
            m
            for m in PLACING
            if m in values
            and np.isfinite(metrics.get(m, math.nan))
            and np.isfinite(values.loc[feature_set, m])
            and not (m in N_DEPENDENT and here < study_rows)
        ]
        left_out |= {m for m in N_DEPENDENT if here < study_rows}
        distances[feature_set] = math.sqrt(
            sum((values.loc[feature_set, m] - metrics[m]) ** 2 for m in used)
        )
    nearest = min(distances, key=lambda k: (distances[k], k))
    here = min(int(rows[nearest]), len(V))
    return nearest, distances[nearest], measured[here], here, sorted(left_out)


def curve(samples: pd.DataFrame, n: float) -> pd.Series:
    """Predicted error at n of every bootstrap refit, by resample (NaN where the refit failed)."""
    return (samples["e_inf"] + samples["b"] * n ** (-samples["c"])).set_axis(samples["resample"])


def predicted(fit: pd.Series, n: float) -> float:
    return float(fit["e_inf"] + fit["b"] * n ** (-fit["c"]))


def sampling_se(paired: pd.DataFrame, feature_set: str, reference: str, method: str) -> float:
    """The test-set bootstrap's standard error of reference − method accuracy at this feature
    set: the largest over its measured scales (the test set is the same at every n), NaN if
    the study has none."""
    backbone, alignment = feature_set.split("@", 1)
    rows = paired[
        (paired["backbone"] == backbone)
        & (paired["alignment"] == alignment)
        & (paired["reference"] == reference)
        & (paired["method"] == method)
        & (paired["metric"] == "test_accuracy")
    ]
    se = rows["test_se"].to_numpy(float)
    return float(np.max(se)) if se.size and np.isfinite(se).all() else math.nan


def gap(
    tables: dict, feature_set: str, reference: str, method: str, n: int, widen: float = 0.0
) -> dict:
    """Predicted error of ``method`` − of ``reference`` at n (= reference − method accuracy),
    in points, with its interval over paired seed refits plus test-set noise, widened by
    ``widen`` points on each side (an extrapolation's held-out error).

    A refit that failed in either curve counts at both extremes of the interval, and the test
    bootstrap's standard error adds a normal draw to every refit (the refits hold the seeds'
    spread, not a different test set's); an end that cannot be bounded is NaN.
    """
    fits = tables["fits"].set_index(["feature_set", "method"])
    samples = tables["samples"]
    here = samples[
        (samples["feature_set"] == feature_set)
        & (samples["reference"] == reference)
        & (samples["method"] == method)
    ]
    draws = (
        curve(here[here["curve"] == method], n) - curve(here[here["curve"] == reference], n)
    ).to_numpy(float)
    se = sampling_se(tables["paired"], feature_set, reference, method)
    noise = np.random.default_rng(SEED).standard_normal(draws.size)
    low, high = percentile_interval(draws + se * noise, CONFIDENCE)
    low, high = (100 * v if np.isfinite(v) else math.nan for v in (low, high))
    estimate = predicted(fits.loc[(feature_set, method)], n) - predicted(
        fits.loc[(feature_set, reference)], n
    )
    return {
        "method": method,
        "gap_pts": 100 * estimate,
        "low_pts": low - widen,
        "high_pts": high + widen,
        "widened_pts": widen,
        "resamples": int(draws.size),
        "failed_resamples": int(np.isnan(draws).sum()),
        "test_se_pts": 100 * se,
    }


def reach(curves: pd.DataFrame) -> tuple[float, float, float]:
    """(smallest n, largest fitted n, farthest n answered) of a set of curves: the measured
    range they share, and beyond it as far as their held-out checks reached (the ratio of the
    held-out scale to the largest scale the held-out fit saw; none without a held-out error)."""
    n_low, n_high = float(curves["n_min"].max()), float(curves["n_max"].min())
    errors = curves["heldout_error_pts"].to_numpy(float)
    if not np.isfinite(errors).all():
        return n_low, n_high, n_high
    ratio = float((curves["heldout_n"] / curves["heldout_from"]).min())
    return n_low, n_high, n_high * ratio


def verdict(gaps: list[dict]) -> str:
    """concat / cross-attention only when every head's interval excludes zero on the same side."""
    if gaps and all(g["low_pts"] > 0 for g in gaps):
        return CONCAT
    if gaps and all(g["high_pts"] < 0 for g in gaps):
        return CROSS_ATTENTION
    return TOO_CLOSE


def advise(
    image_path: Path,
    text_path: Path,
    n: int,
    results: Path | None = None,
    reference: str = "concat",
) -> dict:
    """The recommendation and what drove it (JSON-ready)."""
    if n < 2:
        raise AlignfuseError(f"--n {n}: give the number of training pairs you have (at least 2)")
    V, T = paired_features(Path(image_path), Path(text_path))
    advice = {"n": n, "reference": reference, "widths": [V.shape[1], T.shape[1]]}
    if results is None:
        rows = min(len(V), MAX_ROWS)
        return advice | {
            "alignment": measure(V, T, rows),
            "alignment_rows": rows,
            **theory_only(V.shape[1], T.shape[1]),
        }
    tables = study_tables(results)
    fits = tables["fits"]
    nearest, distance, metrics, rows, left_out = place(
        V, T, tables["alignment"], set(fits["feature_set"])
    )
    advice |= {
        "alignment": metrics,
        "alignment_rows": rows,
        "study": str(results),
        "nearest_feature_set": nearest,
        "distance": distance,
        "basis": "measured learning curves of the most alike feature set of the study",
    }
    if left_out:
        advice["note"] = (
            f"you have {rows} pairs, fewer than the study measured: {', '.join(left_out)} (which "
            "falls with n) was left out of the placing"
        )
    placed = (
        f"alignment ({', '.join(f'{m} {metrics[m]:.3f}' for m in PLACING)} on {rows} pairs) "
        f"placed these features nearest to {nearest}"
    )
    here = fits[fits["feature_set"] == nearest]
    paired = tables["paired"]
    backbone, alignment = nearest.split("@", 1)
    declared = paired[
        (paired["backbone"] == backbone)
        & (paired["alignment"] == alignment)
        & (paired["reference"] == reference)
        & (paired["family"] == ATTENTION)
    ]
    compared = sorted(set(declared["method"]) & set(here["method"]))
    mixed = set(declared.loc[declared["mixed_recipe"].astype(bool), "method"])
    if reference not in set(here["method"]) or not compared:
        return advice | {
            "recommendation": TOO_CLOSE,
            "drivers": f"{placed}, which has no declared comparison of {reference} with an "
            f"{ATTENTION}-family method whose learning curves were fitted: the study cannot say",
        }
    curves = here[here["method"].isin([reference, *compared])]
    unidentified = curves[~curves["identifiable"].astype(bool)]
    if len(unidentified):
        why = "; ".join(f"{r.method}: {r.reason}" for r in unidentified.itertuples())
        return advice | {
            "recommendation": TOO_CLOSE,
            "drivers": f"{placed}, whose learning curves are not all identified ({why}): the "
            "study cannot say",
        }
    n_low, n_high, n_far = reach(curves)
    if not n_low <= n <= n_far:
        beyond = (
            f"and its held-out checks bound an extrapolation up to {n_far:,.0f}"
            if n_far > n_high
            else "and without a held-out check of every curve (a fit without the largest scale "
            "needs one scale more) it does not extrapolate"
        )
        return advice | {
            "recommendation": OUTSIDE,
            "drivers": f"{placed}, whose curves were fitted on n = {n_low:,.0f} to "
            f"{n_high:,.0f} {beyond}; n = {n:,} is outside, where the fits do not speak",
        }
    extrapolated = n > n_high
    errors = curves.set_index("method")["heldout_error_pts"]
    gaps = [
        gap(
            tables,
            nearest,
            reference,
            method,
            n,
            float(errors[reference] + errors[method]) if extrapolated else 0.0,
        )
        | {"mixed_recipe": method in mixed}
        for method in compared
    ]
    shown = "; ".join(
        f"{difference(reference, g)} = {g['gap_pts']:.2f} points {interval_text(g)}" for g in gaps
    )
    read = (
        f"extrapolated to n = {n:,} beyond the largest fitted scale {n_high:,.0f} (each interval "
        "widened by both curves' errors in predicting their held-out largest scale)"
        if extrapolated
        else f"at n = {n:,}"
    )
    return advice | {
        "recommendation": verdict(gaps),
        "extrapolated": extrapolated,
        "predicted_gap": gaps,
        "drivers": f"{placed}; its fitted curves {read} give {shown} (a recommendation needs "
        f"every declared {reference} − {ATTENTION}-family interval on the same side of zero)",
    }


def difference(reference: str, gap: dict) -> str:
    """reference − method, saying when the study declared it across two recipes."""
    text = f"{reference} − {gap['method']}"
    return f"{text} (mixed recipe)" if gap.get("mixed_recipe") else text


def interval_text(gap: dict) -> str:
    if np.isnan(gap["test_se_pts"]):
        return "(no interval: the study has no test-set bootstrap of this comparison)"
    if np.isnan(gap["low_pts"]) or np.isnan(gap["high_pts"]):
        return f"(no interval: {gap['failed_resamples']} of {gap['resamples']} refits failed)"
    return f"[{gap['low_pts']:.2f}, {gap['high_pts']:.2f}]"


def theory_only(d_image: int, d_text: int) -> dict:
    """Without measured curves: how many more samples the theory says cross-attention needs,
    which alone cannot decide (its constants are free and it ignores what each head can learn)."""
    concat, _ = effective_dimension("concat", d_image, d_text)
    bilinear, basis = effective_dimension("xattn_txt2img", d_image, d_text)
    ratio = samples_needed(0.05, bilinear) / samples_needed(0.05, concat)
    return {
        "recommendation": TOO_CLOSE,
        "basis": "theory alone (no study given: no measured learning curves)",
        "drivers": f"cross-attention learns a {basis} = {bilinear:,}-dimensional score, concat a "
        f"{concat:,}-dimensional projection: the theory says cross-attention needs about "
        f"{ratio:,.0f} times the samples for the same excess risk, but its constants are free "
        "and it ignores which head can fit these features at all, so it cannot decide; pass "
        "--results of a study with measured curves",
        "samples_ratio": ratio,
    }


def advice_text(advice: dict) -> str:
    """The advice for people, a few lines."""
    lines = [f"recommendation: {advice['recommendation']} ({advice['basis']})"]
    how = "extrapolated" if advice.get("extrapolated") else "predicted"
    for gap in advice.get("predicted_gap", []):
        lines.append(
            f"  {how} {difference(advice['reference'], gap)} at n = {advice['n']}: "
            f"{gap['gap_pts']:.2f} points {interval_text(gap)}"
        )
    metrics = advice["alignment"]
    lines.append(
        f"  alignment of your features ({advice['alignment_rows']} pairs): "
        + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if np.isfinite(v))
    )
    lines.append(f"  why: {advice['drivers']}")
    if "note" in advice:
        lines.append(f"  note: {advice['note']}")
    return "\n".join(lines)
