"""Claims as data, and verdicts on them that never grow more favourable as evidence weakens.

A claim (the study config's ``claims``) names the conditions it is about by explicit selectors:
backbone, alignment, reference and compared method labels, scales and metric, and the band of
the difference (reference − method, in points) that its source reported. Each is judged on the
paired table's interval, the one that covers seeds and test images, against that band widened by
a tolerance: reproduced only when the whole interval lies inside; "consistent but imprecise" when
it overlaps without fitting; larger, smaller, reversed or not reproduced when it excludes the
widened band. A band that holds zero inside it (``[-1, 1]``: no difference) is an equivalence
claim: reproduced when the whole interval lies inside the widened band, not reproduced when it lies
wholly outside, else imprecise. A wider interval around the same estimate can only move a verdict
from decisive towards imprecise, never the other way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from alignfuse.analysis.alignment_study import DECREASING, INCREASING
from alignfuse.errors import AlignfuseError

POINTS = 100.0
MAX_SEEDS = 10_000

REPRODUCED = "reproduced"
LARGER = "same sign, larger"
SMALLER = "same sign, smaller"
NOT_REPRODUCED = "not reproduced"
REVERSED = "reversed"
IMPRECISE = "consistent but imprecise"
TOO_FEW_SEEDS = "too few seeds"
NOT_IN_STUDY = "not in this study"
NOT_FULLY_TESTED = "not fully tested"
DIVERGED = "runs diverged"
DECISIVE = (REPRODUCED, LARGER, SMALLER, NOT_REPRODUCED, REVERSED)
REJECTIONS = (LARGER, SMALLER, NOT_REPRODUCED, REVERSED)

COLUMNS = [
    "claim",
    "statement",
    "source",
    "dataset",
    "backbone",
    "alignment",
    "reference",
    "method",
    "scales",
    "shown_scale",
    "metric",
    "paper_low_pts",
    "paper_high_pts",
    "tolerance_pts",
    "ours_mean_pts",
    "ours_low_pts",
    "ours_high_pts",
    "interval",
    "seed_low_pts",
    "seed_high_pts",
    "test_se_pts",
    "n_seeds",
    "diverged_seeds",
    "seeds_needed",
    "reference_recipe",
    "method_recipe",
    "mixed_recipe",
    "verdict",
    "note",
]


@dataclass(frozen=True)
class Claim:
    """A ``gap`` claim: reference − each of ``methods`` lies in ``band`` points at each of
    ``scales`` (all) on ``backbone``@``alignment``. A ``trend`` claim: as the text side of
    ``backbone``@``alignment`` is degraded (each of ``degradations``), the gap moves from
    ``band[0]`` (undegraded) to ``band[1]`` points (most degraded) at each of ``scales``: a rise
    when band[1] > band[0], a fall when it is below."""

    id: str
    statement: str
    backbone: str
    alignment: str
    reference: str
    methods: tuple[str, ...]
    scales: tuple[int, ...]
    band: tuple[float, float]
    metric: str = "test_accuracy"
    source: str = ""
    kind: str = "gap"
    degradations: tuple[str, ...] = ("rotation", "noise", "shuffle")
    mixed_recipe: bool = False

    @property
    def equivalence(self) -> bool:
        """A gap claim of no difference: its band holds zero strictly inside."""
        return self.kind == "gap" and is_equivalence(self.band)

    @classmethod
    def from_config(cls, entry: dict, key: str = "claims") -> Claim:
        """The claim of one ``claims`` entry (defaults filled), its band checked to read as its
        kind says; ``key`` names the entry in errors."""
        low, high = (float(b) for b in entry["band"])
        kind = entry.get("kind", "gap")
        if kind == "gap" and low > high:
            raise AlignfuseError(
                f"config key '{key}.band': [{low:g}, {high:g}] is written high to low; a gap "
                f"claim's band is [low, high]: write [{high:g}, {low:g}]"
            )
        if kind == "trend" and low == high:
            raise AlignfuseError(
                f"config key '{key}.band': a trend claim's band runs from the undegraded gap to "
                f"the most degraded one, but both are {low:g}: no rise or fall is claimed"
            )
        if entry["reference"] in entry["methods"]:
            raise AlignfuseError(
                f"config key '{key}.methods': it names the reference '{entry['reference']}', "
                "which a claim compares every method with; leave it out"
            )
        return cls(
            id=entry["id"],
            statement=entry["statement"],
            backbone=entry["backbone"],
            alignment=entry.get("alignment", "raw"),
            reference=entry["reference"],
            methods=tuple(entry["methods"]),
            scales=tuple(entry["scales"]),
            band=(float(entry["band"][0]), float(entry["band"][1])),
            metric=entry.get("metric", "test_accuracy"),
            source=entry.get("source", ""),
            kind=entry.get("kind", "gap"),
            degradations=tuple(entry.get("degradations", ("rotation", "noise", "shuffle"))),
            mixed_recipe=bool(entry.get("mixed_recipe", False)),
        )


def is_equivalence(band: tuple[float, float]) -> bool:
    """A band of no difference: zero strictly inside it."""
    return band[0] < 0 < band[1]


def widened(band: tuple[float, float], tolerance: float) -> tuple[float, float]:
    return band[0] - tolerance, band[1] + tolerance


def direction(band: tuple[float, float]) -> float:
    """+1 when the claim is that the reference is ahead, −1 when it is behind (a band that holds
    zero inside claims neither: see :func:`equivalence_verdict`)."""
    return -1.0 if sum(band) < 0 else 1.0


def weakness(band: tuple[float, float], mean: float) -> float:
    """How far an estimate is from supporting the claim, to pick a claim's weakest scale: the
    lead against the claimed side, or for an equivalence claim the distance from zero."""
    return abs(mean) if is_equivalence(band) else -direction(band) * mean


def trend_verdict(trend: str, rho_low: float, rho_high: float, band: tuple[float, float]) -> str:
    """The verdict on a measured trend against the claimed one, band[0] -> band[1].

    Reproduced: a trend in the claimed direction (see ``alignment_study.trend``); reversed: one
    against it. Without a detected trend, not reproduced when rho's interval holds nothing in the
    claimed direction, else consistent but imprecise.
    """
    rises = band[1] > band[0]
    if trend == INCREASING:
        return REPRODUCED if rises else REVERSED
    if trend == DECREASING:
        return REVERSED if rises else REPRODUCED
    if (rho_high <= 0) if rises else (rho_low >= 0):
        return NOT_REPRODUCED
    return IMPRECISE


def verdict(low: float, high: float, band: tuple[float, float], tolerance: float) -> str:
    """The verdict on one interval [low, high] (points) against the claimed band.

    Reproduced: the interval lies inside the band widened by ``tolerance`` on each side. Larger
    or smaller: it lies wholly beyond or short of the widened band, on the claim's side of 0;
    reversed: wholly on the other side of 0; not reproduced: short of the band but holding 0.
    Consistent but imprecise: it overlaps the widened band without fitting inside. No interval
    (one seed): too few seeds.
    """
    if np.isnan(low) or np.isnan(high):
        return TOO_FEW_SEEDS
    if is_equivalence(band):
        return equivalence_verdict(low, high, band, tolerance)
    sign = direction(band)
    lo, hi = sorted((sign * low, sign * high))
    band_lo, band_hi = sorted(sign * b for b in widened(band, tolerance))
    if band_lo <= lo and hi <= band_hi:
        return REPRODUCED
    if lo > band_hi:
        return LARGER
    if hi < band_lo:
        if hi < 0:
            return REVERSED
        return SMALLER if lo > 0 else NOT_REPRODUCED
    return IMPRECISE


def equivalence_verdict(
    low: float, high: float, band: tuple[float, float], tolerance: float
) -> str:
    """The verdict on a claim of no difference (a band around zero): reproduced when the whole
    interval lies inside the widened band (equivalent), not reproduced when it lies wholly
    outside it, else consistent but imprecise. No interval: too few seeds."""
    if np.isnan(low) or np.isnan(high):
        return TOO_FEW_SEEDS
    band_lo, band_hi = widened(band, tolerance)
    if band_lo <= low and high <= band_hi:
        return REPRODUCED
    if high < band_lo or low > band_hi:
        return NOT_REPRODUCED
    return IMPRECISE


def combined_verdict(verdicts: list[str], missing: bool) -> str:
    """A claim at every scale: reproduced only if every scale is, and all were run.

    A scale that rejects the claim rejects it (not reproduced); otherwise a scale whose every
    seed diverged leaves it at runs diverged, missing scales leave it not fully tested, a scale
    without an interval leaves too few seeds, and an imprecise scale leaves it consistent but
    imprecise.
    """
    if any(v in REJECTIONS for v in verdicts):
        return NOT_REPRODUCED
    if DIVERGED in verdicts:
        return DIVERGED
    if missing or not verdicts:
        return NOT_FULLY_TESTED
    if TOO_FEW_SEEDS in verdicts:
        return TOO_FEW_SEEDS
    if IMPRECISE in verdicts:
        return IMPRECISE
    return REPRODUCED


def needed_halfwidth(mean: float, band: tuple[float, float], tolerance: float) -> float:
    """How narrow the interval must be for the verdict to be decisive at this estimate: the
    distance from the estimate to the nearest edge of the widened band."""
    band_lo, band_hi = widened(band, tolerance)
    return min(abs(mean - band_lo), abs(mean - band_hi))


def seeds_needed(
    mean: float,
    std: float,
    test_se: float,
    band: tuple[float, float],
    tolerance: float,
    confidence: float = 0.95,
) -> float:
    """The fewest seeds for a decisive interval at the observed estimate and spread (points).

    The interval's half-width is sqrt((t_{S-1} std / sqrt(S))^2 + (z test_se)^2): the test-set
    part does not shrink with seeds, so when it alone is as wide as the distance to the band's
    edge no number of seeds decides (inf; a larger test set would). NaN without a spread.
    """
    if np.isnan(mean) or np.isnan(std):
        return np.nan
    target = needed_halfwidth(mean, band, tolerance)
    z_part = stats.norm.ppf(0.5 + confidence / 2) * (0.0 if np.isnan(test_se) else test_se)
    if z_part >= target:
        return math.inf
    for n in range(2, MAX_SEEDS + 1):
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
        if math.hypot(half, z_part) < target:
            return float(n)
    return math.inf


def claims_table(
    paired: pd.DataFrame,
    claims: list[Claim],
    datasets: list[str],
    tolerance: float,
    confidence: float = 0.95,
    study: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Rows per claim, compared method and dataset: for a gap claim one per scale and one for
    all its scales; for a trend claim, per degradation kind and scale, the undegraded and the
    most degraded gap and the trend.

    ``paired`` is ``statistics.paired_differences``' table and ``study`` the alignment study's
    (``alignment_study.alignment_study``); estimates are in points.
    """
    rows = []
    for dataset in sorted(datasets):
        for claim in claims:
            for method in claim.methods:
                if claim.kind == "trend":
                    rows.extend(
                        trend_rows(claim, method, dataset, paired, study, tolerance, confidence)
                    )
                else:
                    rows.extend(method_rows(claim, method, dataset, paired, tolerance, confidence))
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("shown_scale", "n_seeds", "diverged_seeds"):
        table[column] = table[column].astype("Int64")
    table["mixed_recipe"] = table["mixed_recipe"].astype("boolean")
    return table


def claim_pairs(
    paired: pd.DataFrame, claim: Claim, method: str, dataset: str, alignment: str
) -> pd.DataFrame:
    """The paired rows of the claim's reference − ``method`` in its metric on one feature set of
    its backbone."""
    return paired[
        (paired["dataset"] == dataset)
        & (paired["backbone"] == claim.backbone)
        & (paired["alignment"] == alignment)
        & (paired["reference"] == claim.reference)
        & (paired["method"] == method)
        & (paired["metric"] == claim.metric)
    ]


def method_rows(
    claim: Claim,
    method: str,
    dataset: str,
    paired: pd.DataFrame,
    tolerance: float,
    confidence: float,
) -> list[dict]:
    base = {
        "claim": claim.id,
        "statement": claim.statement,
        "source": claim.source,
        "dataset": dataset,
        "backbone": claim.backbone,
        "alignment": claim.alignment,
        "reference": claim.reference,
        "method": method,
        "metric": claim.metric,
        "paper_low_pts": claim.band[0],
        "paper_high_pts": claim.band[1],
        "tolerance_pts": tolerance,
    }
    found = claim_pairs(paired, claim, method, dataset, claim.alignment).set_index("n_train")
    if len(found):
        base.update(recipes(found.iloc[0]))
    rows, verdicts = [], []
    for n in claim.scales:
        row = {**base, "scales": str(n), "shown_scale": n}
        if n not in found.index:
            rows.append(
                {
                    **row,
                    "verdict": NOT_IN_STUDY,
                    "note": f"no paired runs of {claim.reference} and {method} on "
                    f"{claim.backbone}@{claim.alignment} at {n} training pairs in this study",
                }
            )
            continue
        estimate = scale_row(found.loc[n], claim, tolerance, confidence)
        verdicts.append(estimate["verdict"])
        rows.append({**row, **estimate})
    if len(claim.scales) > 1:
        rows.append(every_scale_row(claim, base, found, verdicts, tolerance, confidence))
    return rows


MIXED_NOTE = "mixed recipe: {reference} {reference_recipe}, {method} {method_recipe}"


def recipes(paired_row: pd.Series) -> dict:
    """Each side's recipe as its runs record it, and whether they differ."""
    return {
        "reference_recipe": paired_row["reference_recipe"],
        "method_recipe": paired_row["method_recipe"],
        "mixed_recipe": bool(paired_row["mixed_recipe"]),
    }


def scale_row(paired_row: pd.Series, claim: Claim, tolerance: float, confidence: float) -> dict:
    """Our estimate at one scale, its intervals and verdict, in points (runs diverged, with no
    estimate, when no seed of the pair is left)."""
    if paired_row["n_seeds"] == 0:
        return {
            **recipes(paired_row),
            "n_seeds": 0,
            "diverged_seeds": int(paired_row["diverged_seeds"]),
            "seeds_needed": np.nan,
            "verdict": DIVERGED,
            "note": f"all {paired_row['diverged_seeds']} seed(s) diverged in "
            f"{paired_row['reference']} or {paired_row['method']}: no estimate",
        }
    p = {k: paired_row[k] * POINTS for k in ("mean_diff", "low", "high", "ci_low", "ci_high")}
    std, test_se = paired_row["std_diff"] * POINTS, paired_row["test_se"] * POINTS
    judged = verdict(p["low"], p["high"], claim.band, tolerance)
    notes = []
    if paired_row["mixed_recipe"]:
        notes.append(MIXED_NOTE.format(**paired_row))
    if claim.equivalence:
        notes.append("equivalence claim: reproduced when the whole interval lies in the band")
    if paired_row["diverged_seeds"]:
        notes.append(f"{paired_row['diverged_seeds']} diverged seed(s) left out")
    return {
        **recipes(paired_row),
        "ours_mean_pts": p["mean_diff"],
        "ours_low_pts": p["low"],
        "ours_high_pts": p["high"],
        "interval": paired_row["interval"],
        "seed_low_pts": p["ci_low"],
        "seed_high_pts": p["ci_high"],
        "test_se_pts": test_se,
        "n_seeds": int(paired_row["n_seeds"]),
        "diverged_seeds": int(paired_row["diverged_seeds"]),
        "seeds_needed": seeds_needed(
            p["mean_diff"], std, test_se, claim.band, tolerance, confidence
        ),
        "verdict": judged,
        "note": "; ".join(notes),
    }


def every_scale_row(
    claim: Claim,
    base: dict,
    found: pd.DataFrame,
    verdicts: list[str],
    tolerance: float,
    confidence: float,
) -> dict:
    """The claim at all its scales (intersection–union): the weakest scale's estimate shown."""
    present = [n for n in claim.scales if n in found.index]
    missing = [n for n in claim.scales if n not in found.index]
    row = {**base, "scales": ", ".join(map(str, claim.scales))}
    notes = []
    if base.get("mixed_recipe"):
        notes.append(MIXED_NOTE.format(**base))
    if missing:
        notes.append(f"not run at {', '.join(map(str, missing))} training pairs")
    if present:
        estimated = [n for n in present if found.loc[n, "n_seeds"] > 0] or present
        weakest = max(estimated, key=lambda n: weakness(claim.band, found.loc[n, "mean_diff"]))
        row.update(scale_row(found.loc[weakest], claim, tolerance, confidence))
        row["shown_scale"] = weakest
        needed = [
            scale_row(found.loc[n], claim, tolerance, confidence)["seeds_needed"] for n in estimated
        ]
        row["seeds_needed"] = max(needed)
        per_scale = "; ".join(f"{n}: {v}" for n, v in zip(present, verdicts, strict=True))
        notes.insert(0, f"weakest scale {weakest} shown; {per_scale}")
    row["verdict"] = combined_verdict(verdicts, bool(missing))
    row["note"] = "; ".join(notes)
    return row


def trend_rows(
    claim: Claim,
    method: str,
    dataset: str,
    paired: pd.DataFrame,
    study: pd.DataFrame | None,
    tolerance: float,
    confidence: float,
) -> list[dict]:
    """A trend claim's rows for one method: per degradation kind and scale, the gap at the
    undegraded feature set against band[0], at the most degraded level against band[1], and the
    trend of the gap over the levels (Spearman with a seed-bootstrap interval, Page's test)."""
    rows = []
    undegraded = claim_pairs(paired, claim, method, dataset, claim.alignment)
    pair = recipes(undegraded.iloc[0]) if len(undegraded) else {}
    for kind in claim.degradations:
        for n in claim.scales:
            levels = pd.DataFrame()
            if study is not None and not study.empty:
                levels = study[
                    (study["dataset"] == dataset)
                    & (study["backbone"] == claim.backbone)
                    & (study["base"] == claim.alignment)
                    & (study["degradation"] == kind)
                    & (study["method"] == method)
                    & (study["reference"] == claim.reference)
                    & (study["n_train"] == n)
                ].sort_values("level")
            base = {
                "claim": claim.id,
                "statement": claim.statement,
                "source": claim.source,
                "dataset": dataset,
                "backbone": claim.backbone,
                "reference": claim.reference,
                "method": method,
                "metric": claim.metric,
                "scales": str(n),
                "shown_scale": n,
                "tolerance_pts": tolerance,
                **pair,
            }
            if len(levels) < 2:
                rows.append(
                    {
                        **base,
                        "alignment": f"{claim.alignment}, {kind} degraded",
                        "paper_low_pts": claim.band[0],
                        "paper_high_pts": claim.band[1],
                        "verdict": NOT_IN_STUDY,
                        "note": f"no {kind} levels of {claim.backbone}@{claim.alignment} with "
                        f"{claim.reference} and {method} at {n} pairs in this study",
                    }
                )
                continue
            ends = {"undegraded": levels.iloc[0], "most degraded": levels.iloc[-1]}
            for (label, level_row), band_end in zip(ends.items(), claim.band, strict=True):
                found = claim_pairs(paired, claim, method, dataset, level_row["alignment"])
                found = found[found["n_train"] == n]
                point = (band_end, band_end)
                row = {
                    **base,
                    "alignment": level_row["alignment"],
                    "paper_low_pts": band_end,
                    "paper_high_pts": band_end,
                }
                if found.empty:
                    rows.append({**row, "verdict": NOT_IN_STUDY, "note": f"{label}: no runs"})
                    continue
                judged = scale_row(
                    found.iloc[0], Claim(**{**claim.__dict__, "band": point}), tolerance, confidence
                )
                judged["note"] = f"{label} ({kind} level {level_row['level']:g})" + (
                    f"; {judged['note']}" if judged["note"] else ""
                )
                rows.append({**row, **judged})
            summary = levels.iloc[0]
            rises = claim.band[1] > claim.band[0]
            judged = trend_verdict(
                summary["trend"], summary["spearman_low"], summary["spearman_high"], claim.band
            )
            claimed = "rise" if rises else "fall"
            notes = [
                f"claimed {claimed}; trend over {len(levels)} {kind} levels: {summary['trend']} "
                f"(Spearman rho {summary['spearman']:.2f}, Page p of a {claimed} "
                f"{summary['page_p' if rises else 'page_p_fall']:.3g}); the paper's "
                f"degradation is not public, ours is {kind}"
            ]
            if pair.get("mixed_recipe"):
                notes.insert(0, MIXED_NOTE.format(**{**base, **pair}))
            lost = levels.loc[levels["n_seeds"] == 0, "level"]
            if len(lost):  # a level without a usable seed: the claimed trend cannot be judged
                judged = DIVERGED
                lost = ", ".join(f"{x:g}" for x in lost)
                notes.insert(0, f"every seed diverged at {kind} level(s) {lost}")
            rows.append(
                {
                    **base,
                    "alignment": f"{claim.alignment} .. {levels['alignment'].iloc[-1]}",
                    "paper_low_pts": claim.band[0],
                    "paper_high_pts": claim.band[1],
                    "ours_mean_pts": summary["spearman"],
                    "ours_low_pts": summary["spearman_low"],
                    "ours_high_pts": summary["spearman_high"],
                    "interval": "Spearman rho, seed bootstrap",
                    "n_seeds": int(levels["n_seeds"].min()),
                    "verdict": judged,
                    "note": "; ".join(notes),
                }
            )
    return rows
