"""The paper's quantitative claims as data, and their verdicts against our paired differences.

arXiv:2606.01207 reports concat − cross-attention in accuracy points. A claim names its condition
with our config's vocabulary by a fixed rule (backbone ``clip``, alignment ``raw``, any method whose
head is one of the cross-attention heads is cross-attention), so no study config is read: a study without that
condition gets "not in this study" rows, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PAPER = "arXiv:2606.01207"
REFERENCE = "concat"
PAPER_BACKBONE = "clip"  # our backbone of this name is the paper's aligned CLIP ViT-B/32 pair
PAPER_ALIGNMENT = "raw"
PAPER_SCALES = (2048, 4096, 8192, 16384)
CLIP_GAP = (4.1, 5.1)  # concat − cross-attention with CLIP, accuracy points, at every scale
DEGRADATION_GAP = (1.3, 2.8)  # concat's advantage as alignment degrades (method not public)
METRIC = "test_accuracy"
POINTS = 100.0

REPRODUCED = "reproduced"
SMALLER = "same sign, smaller"
LARGER = "same sign, larger"
SAME_SIGN = "same sign, outside the range"
INCONCLUSIVE = "inconclusive"
NOT_REPRODUCED = "not reproduced"
REVERSED = "reversed"
TOO_FEW_SEEDS = "too few seeds"
NOT_IN_STUDY = "not in this study"
NOT_COMPARABLE = "not comparable"

COLUMNS = [
    "claim",
    "statement",
    "dataset",
    "backbone",
    "alignment",
    "scales",
    "reference",
    "method",
    "paper_low_pts",
    "paper_high_pts",
    "ours_mean_pts",
    "ours_ci_low_pts",
    "ours_ci_high_pts",
    "n_seeds",
    "p_ttest",
    "p_ttest_holm",
    "verdict",
    "note",
]


@dataclass(frozen=True)
class Claim:
    """concat − cross-attention lies in [low, high] points at each of ``scales`` (all of them)."""

    id: str
    statement: str
    scales: tuple[int, ...]
    low: float
    high: float
    backbone: str = PAPER_BACKBONE
    alignment: str = PAPER_ALIGNMENT


GAP_CLAIMS = [
    Claim(
        f"clip_gap_n{n}",
        f"With CLIP features concat beats cross-attention by {CLIP_GAP[0]}–{CLIP_GAP[1]} points "
        f"at {n} training pairs",
        (n,),
        *CLIP_GAP,
    )
    for n in PAPER_SCALES
] + [
    Claim(
        "clip_gap_every_scale",
        f"With CLIP features concat beats cross-attention by {CLIP_GAP[0]}–{CLIP_GAP[1]} points "
        f"at every scale {PAPER_SCALES[0]}–{PAPER_SCALES[-1]}",
        PAPER_SCALES,
        *CLIP_GAP,
    )
]
DEGRADATION_CLAIM = (
    "degradation_gap_grows",
    f"concat's advantage over cross-attention grows from {DEGRADATION_GAP[0]} to "
    f"{DEGRADATION_GAP[1]} points as alignment degrades",
)


CROSS_ATTENTION_HEADS = ("xattn_txt2img", "xattn_img2txt", "xattn_bidir")


def is_cross_attention(head: str) -> bool:
    """Whether a head (registry name) is a cross-attention head."""
    return head in CROSS_ATTENTION_HEADS


def verdict(mean: float, low: float, high: float, band: tuple[float, float]) -> str:
    """Verdict on one estimate (points, with its 95% interval [low, high]) against the paper's band.

    Reproduced: significantly above zero (the interval excludes 0) and the interval meets the band.
    Significant but the interval misses the band: same sign, smaller or larger. The interval holds
    0 but meets the band: inconclusive. It holds 0 and misses the band: not reproduced. Entirely
    below 0: reversed. No interval (one seed): too few seeds.
    """
    if np.isnan(low) or np.isnan(high):
        return TOO_FEW_SEEDS
    meets_band = low <= band[1] and high >= band[0]
    if low > 0:
        if meets_band:
            return REPRODUCED
        return SMALLER if high < band[0] else LARGER
    if high < 0:
        return REVERSED
    return INCONCLUSIVE if meets_band else NOT_REPRODUCED


def combined_verdict(verdicts: list[str]) -> str:
    """A claim at every scale: it holds where every scale holds (intersection–union principle)."""
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v in (NOT_REPRODUCED, REVERSED) for v in verdicts):
        return NOT_REPRODUCED
    if all(v == TOO_FEW_SEEDS for v in verdicts):
        return TOO_FEW_SEEDS
    if any(v in (INCONCLUSIVE, TOO_FEW_SEEDS) for v in verdicts):
        return INCONCLUSIVE
    sides = {v for v in verdicts if v in (SMALLER, LARGER)}
    return sides.pop() if len(sides) == 1 else SAME_SIGN


def absent_row(claim_id: str, statement: str, dataset: str, note: str, **fields) -> dict:
    return {
        "claim": claim_id,
        "statement": statement,
        "dataset": dataset,
        "verdict": NOT_IN_STUDY,
        "note": note,
        **fields,
    }


def claim_rows(claim: Claim, dataset: str, paired: pd.DataFrame) -> list[dict]:
    """The rows of one gap claim: one per cross-attention method (or one "not in this study")."""
    scales_text = ", ".join(map(str, claim.scales))
    base = {
        "backbone": claim.backbone,
        "alignment": claim.alignment,
        "scales": scales_text,
        "reference": REFERENCE,
        "paper_low_pts": claim.low,
        "paper_high_pts": claim.high,
    }
    condition = paired[
        (paired["dataset"] == dataset)
        & (paired["backbone"] == claim.backbone)
        & (paired["alignment"] == claim.alignment)
    ]
    if condition.empty:
        note = (
            f"no {claim.backbone}@{claim.alignment} runs of both {REFERENCE} and a cross-attention "
            f"method ({', '.join(CROSS_ATTENTION_HEADS)}) in this study"
        )
        return [absent_row(claim.id, claim.statement, dataset, note, **base)]
    heads = condition.drop_duplicates("method").set_index("method")["head"]
    methods = sorted(m for m, head in heads.items() if is_cross_attention(head))
    if not methods:
        note = f"no cross-attention method ({', '.join(CROSS_ATTENTION_HEADS)}) in this study"
        return [absent_row(claim.id, claim.statement, dataset, note, **base)]
    return [claim_row(claim, dataset, condition, method, base) for method in methods]


def claim_row(claim: Claim, dataset: str, condition: pd.DataFrame, method: str, base: dict):
    rows = condition[condition["method"] == method].set_index("n_train")
    present = [n for n in claim.scales if n in rows.index]
    missing = [n for n in claim.scales if n not in rows.index]
    base = {**base, "method": method}
    if not present:
        note = f"{method} not run at {', '.join(map(str, missing))} training pairs"
        return absent_row(claim.id, claim.statement, dataset, note, **base)
    at = rows.loc[present]
    verdicts = [
        verdict(
            r.mean_diff * POINTS, r.ci_low * POINTS, r.ci_high * POINTS, (claim.low, claim.high)
        )
        for r in at.itertuples()
    ]
    weakest = at["mean_diff"].idxmin()  # for a claim at every scale, the scale that decides
    estimate = at.loc[weakest]
    notes = []
    if len(claim.scales) > 1:
        per_scale = "; ".join(f"{n}: {v}" for n, v in zip(present, verdicts, strict=True))
        notes.append(f"weakest scale {weakest} shown; {per_scale}")
    if missing:
        notes.append(f"not run at {', '.join(map(str, missing))} training pairs")
    return {
        "claim": claim.id,
        "statement": claim.statement,
        "dataset": dataset,
        **base,
        "ours_mean_pts": estimate["mean_diff"] * POINTS,
        "ours_ci_low_pts": estimate["ci_low"] * POINTS,
        "ours_ci_high_pts": estimate["ci_high"] * POINTS,
        "n_seeds": int(estimate["n_seeds"]),
        "p_ttest": estimate["p_ttest"],
        "p_ttest_holm": estimate["p_ttest_holm"],
        "verdict": combined_verdict(verdicts),
        "note": "; ".join(notes),
    }


def degradation_row(dataset: str, paired: pd.DataFrame) -> dict:
    """The alignment-degradation claim: the paper's degradation is not public, so no number."""
    claim_id, statement = DEGRADATION_CLAIM
    fields = {
        "reference": REFERENCE,
        "paper_low_pts": DEGRADATION_GAP[0],
        "paper_high_pts": DEGRADATION_GAP[1],
    }
    alignments = sorted(paired.loc[paired["dataset"] == dataset, "alignment"].unique())
    if len(alignments) < 2:
        note = "the study has one alignment; add degraded alignments to test this claim"
        return absent_row(claim_id, statement, dataset, note, **fields)
    return {
        "claim": claim_id,
        "statement": statement,
        "dataset": dataset,
        "alignment": ", ".join(alignments),
        **fields,
        "verdict": NOT_COMPARABLE,
        "note": (
            "the paper's degradation method is not public; compare concat − cross-attention "
            "across alignments in the paired table"
        ),
    }


def paper_vs_ours(paired: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """One row per paper claim (per cross-attention method) and dataset of the study.

    ``paired`` is ``statistics.paired_differences``' table; only its test-accuracy rows with the
    reference ``concat`` count. Estimates and intervals are in accuracy points (×100).
    """
    accuracy = paired[(paired["metric"] == METRIC) & (paired["reference"] == REFERENCE)]
    rows = []
    for dataset in sorted(datasets):
        for claim in GAP_CLAIMS:
            rows.extend(claim_rows(claim, dataset, accuracy))
        rows.append(degradation_row(dataset, accuracy))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["n_seeds"] = table["n_seeds"].astype("Int64")
    return table
