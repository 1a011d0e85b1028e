"""``alignfuse advise``: concatenation or cross-attention, for a practitioner's own features.

It measures how aligned the two feature sets are (with the alignment stage's metrics), finds the
feature set of a finished study that is most alike, and reads off that study's fitted learning
curves at the practitioner's number of training pairs: the predicted accuracy gap, with an
interval from the seed bootstrap of both fits. Without a study it falls back on the theory alone
(the samples each head needs at these widths) and says so.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from alignfuse.align.metrics import alignment_metrics
from alignfuse.errors import AlignfuseError
from alignfuse.fusion import CROSS_ATTENTION_HEADS
from alignfuse.parquet import read_embeddings, read_frame
from alignfuse.theory.complexity import effective_dimension, samples_needed

# the metrics that place a feature set (each in [-1, 1] or [0, 1]); retrieval is left out because
# its scale depends on how many items are compared
PLACING = ("cosine_gap", "mutual_knn", "cka")
MAX_ROWS = 2000  # rows measured (a seeded sample when there are more)
CONFIDENCE = 0.95
CONCAT, CROSS_ATTENTION, TOO_CLOSE = "concat", "cross-attention", "too close to call"


def paired_features(image_path: Path, text_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Row i of the image file with row i of the text file (at most MAX_ROWS, seeded)."""
    _, V = read_embeddings(image_path)
    _, T = read_embeddings(text_path)
    if len(V) != len(T):
        raise AlignfuseError(
            f"{image_path} has {len(V)} rows but {text_path} has {len(T)}; advise pairs row i of "
            "one with row i of the other: pass files of matched image-text pairs"
        )
    if len(V) < 20:
        raise AlignfuseError(f"{image_path}: {len(V)} pairs are too few to measure alignment")
    if len(V) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(V), MAX_ROWS, replace=False))
        V, T = V[rows], T[rows]
    return V, T


def measure(V: np.ndarray, T: np.ndarray) -> dict[str, float]:
    rows = alignment_metrics(V, T, np.arange(len(V)))
    return {r["metric"]: r["value"] for r in rows}


def study_tables(results: Path) -> dict[str, pd.DataFrame]:
    """A finished study's fits, their bootstrap samples and its feature sets' alignment."""
    results = Path(results)
    needed = {
        "fits": results / "tables" / "theory_fits.parquet",
        "samples": results / "tables" / "theory_fit_samples.parquet",
    }
    alignment = sorted((results / "alignment").glob("*.parquet"))
    missing = [str(p) for p in needed.values() if not p.is_file()]
    if missing or not alignment:
        raise AlignfuseError(
            f"{results}: not a finished study (missing {', '.join(missing) or 'alignment/*.parquet'}); "
            "pass results/<study> of a study whose workflow has run, or leave --results out"
        )
    tables = {name: read_frame(path, "rerun the study") for name, path in needed.items()}
    tables["alignment"] = read_frame(alignment[0], "rerun the study")
    return tables


def nearest_feature_set(
    metrics: dict, alignment: pd.DataFrame, fitted: set[str]
) -> tuple[str, float]:
    """The study's feature set (among those with fitted curves) whose placing metrics are closest."""
    table = alignment.assign(feature_set=alignment["backbone"] + "@" + alignment["alignment"])
    table = table[table["metric"].isin(PLACING)].pivot(
        index="feature_set", columns="metric", values="value"
    )
    table = table[table.index.isin(fitted)]
    if table.empty:
        raise AlignfuseError("the study has no feature set with both alignment metrics and fits")
    used = [m for m in PLACING if np.isfinite(metrics.get(m, np.nan)) and m in table]
    distance = np.sqrt(sum((table[m] - metrics[m]) ** 2 for m in used))
    return str(distance.idxmin()), float(distance.min())


def curve(samples: pd.DataFrame, n: float) -> pd.Series:
    """Predicted error at n of every bootstrap refit, by resample."""
    return (samples["e_inf"] + samples["b"] * n ** (-samples["c"])).set_axis(samples["resample"])


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
    metrics = measure(V, T)
    advice = {"n": n, "widths": [V.shape[1], T.shape[1]], "alignment": metrics}
    if results is None:
        return advice | theory_only(V.shape[1], T.shape[1])
    tables = study_tables(results)
    fits, samples = tables["fits"], tables["samples"]
    identified = fits[fits["identifiable"].astype(bool)]
    fitted = set(identified["feature_set"])
    nearest, distance = nearest_feature_set(metrics, tables["alignment"], fitted)
    here = identified[identified["feature_set"] == nearest]
    if reference not in set(here["method"]):
        return (
            advice
            | theory_only(V.shape[1], T.shape[1])
            | {"note": f"{nearest} has no identified learning curve of {reference}"}
        )
    ref = curve(samples[(samples["feature_set"] == nearest) & (samples["method"] == reference)], n)
    gaps = []
    for method in here.loc[here["head"].isin(CROSS_ATTENTION_HEADS), "method"]:
        other = curve(
            samples[(samples["feature_set"] == nearest) & (samples["method"] == method)], n
        )
        paired = (other - ref).dropna()  # error of cross-attention − of the reference = acc gap
        tail = 50 * (1 - CONFIDENCE)
        low, high = np.percentile(paired, [tail, 100 - tail]) if len(paired) else (math.nan,) * 2
        gaps.append(
            {
                "method": method,
                "gap_pts": 100 * float(paired.mean()),
                "low_pts": 100 * float(low),
                "high_pts": 100 * float(high),
                "resamples": int(len(paired)),
            }
        )
    if not gaps:
        return (
            advice
            | theory_only(V.shape[1], T.shape[1])
            | {"note": f"{nearest} has no identified cross-attention learning curve"}
        )
    best = max(gaps, key=lambda g: -g["gap_pts"])  # the cross-attention head closest to winning
    if best["low_pts"] > 0:
        verdict = CONCAT
    elif best["high_pts"] < 0:
        verdict = CROSS_ATTENTION
    else:
        verdict = TOO_CLOSE
    return advice | {
        "recommendation": verdict,
        "basis": "measured learning curves of the most alike feature set of the study",
        "study": str(results),
        "nearest_feature_set": nearest,
        "distance": distance,
        "predicted_gap": gaps,
        "drivers": f"alignment ({', '.join(f'{m} {metrics[m]:.3f}' for m in PLACING)}) placed "
        f"these features nearest to {nearest}; its fitted curves at n = {n} give "
        f"{reference} − {best['method']} = {best['gap_pts']:.2f} points "
        f"[{best['low_pts']:.2f}, {best['high_pts']:.2f}]",
    }


def theory_only(d_image: int, d_text: int) -> dict:
    """Without measured curves: how many more samples the theory says cross-attention needs."""
    concat, _ = effective_dimension("concat", d_image, d_text)
    bilinear, basis = effective_dimension("xattn_txt2img", d_image, d_text)
    ratio = samples_needed(0.05, bilinear) / samples_needed(0.05, concat)
    return {
        "recommendation": CONCAT,
        "basis": "theory alone (no study given: no measured learning curves)",
        "drivers": f"cross-attention learns a {basis} = {bilinear:,}-dimensional score, concat a "
        f"{concat:,}-dimensional projection: the theory says cross-attention needs about "
        f"{ratio:,.0f} times the samples for the same excess risk",
        "samples_ratio": ratio,
    }


def advice_text(advice: dict) -> str:
    """The advice for people, a few lines."""
    lines = [f"recommendation: {advice['recommendation']} ({advice['basis']})"]
    for gap in advice.get("predicted_gap", []):
        lines.append(
            f"  predicted concat − {gap['method']} at n = {advice['n']}: {gap['gap_pts']:.2f} "
            f"points [{gap['low_pts']:.2f}, {gap['high_pts']:.2f}]"
        )
    metrics = advice["alignment"]
    lines.append(
        "  alignment of your features: "
        + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if np.isfinite(v))
    )
    lines.append(f"  why: {advice['drivers']}")
    if "note" in advice:
        lines.append(f"  note: {advice['note']}")
    return "\n".join(lines)
