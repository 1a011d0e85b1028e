import math

import numpy as np
import pandas as pd
import pytest
from declared import paired
from scipy import stats

from alignfuse.analysis.claims import (
    COLUMNS,
    DECISIVE,
    DIVERGED,
    IMPRECISE,
    LARGER,
    NOT_FULLY_TESTED,
    NOT_IN_STUDY,
    NOT_REPRODUCED,
    REPRODUCED,
    REVERSED,
    SMALLER,
    TOO_FEW_SEEDS,
    Claim,
    claims_table,
    combined_verdict,
    seeds_needed,
    verdict,
)
from alignfuse.analysis.statistics import paired_differences

BAND = (4.1, 5.1)
TOLERANCE = 1.0
PAPER_SCALES = (2048, 4096, 8192, 16384)
CLAIM = Claim.from_config(
    {
        "id": "clip_gap",
        "statement": "With CLIP features concat beats cross-attention by 4.1–5.1 points",
        "source": "arXiv:2606.01207",
        "backbone": "clip",
        "alignment": "raw",
        "reference": "concat",
        "methods": ["xattn_txt2img"],
        "scales": list(PAPER_SCALES),
        "band": list(BAND),
    }
)


def runs_with_gap(
    gap_points,
    backbone="clip",
    methods=("xattn_txt2img",),
    scales=PAPER_SCALES,
    seeds=5,
    spread=0.0,
):
    """concat is ``gap_points`` (a number, or one per scale) above each method on every seed,
    plus per-seed noise of ``spread`` points on the difference."""
    gaps = dict(zip(scales, np.broadcast_to(gap_points, len(scales)), strict=True))
    rng = np.random.default_rng(0)
    rows = []
    for n in scales:
        base = 0.65 + rng.normal(0, 0.02, seeds)  # seed effects shared by the methods
        noise = rng.normal(0, spread / 100, seeds)
        for method in ("concat", *methods):
            accuracy = base + ((gaps[n] / 100 + noise) if method == "concat" else 0.0)
            for seed in range(seeds):
                rows.append(
                    {
                        "dataset": "flickr8k",
                        "backbone": backbone,
                        "alignment": "raw",
                        "method": method,
                        "head": method,
                        "n_train": n,
                        "seed": seed,
                        "test_accuracy": accuracy[seed],
                        "test_auroc": accuracy[seed],
                    }
                )
    return pd.DataFrame(rows)


def judged(runs, claim=CLAIM, tolerance=TOLERANCE):
    table = claims_table(paired(runs), [claim], ["flickr8k"], tolerance)
    return table.set_index("scales")


def test_five_points_on_every_seed_reproduces_the_claim_at_every_scale():
    table = claims_table(paired(runs_with_gap(5.0)), [CLAIM], ["flickr8k"], TOLERANCE)
    assert list(table.columns) == COLUMNS
    assert list(table["scales"]) == ["2048", "4096", "8192", "16384", "2048, 4096, 8192, 16384"]
    assert (table["verdict"] == REPRODUCED).all()
    assert table["ours_mean_pts"].to_numpy() == pytest.approx(5.0)
    assert (table["n_seeds"] == 5).all() and (table["method"] == "xattn_txt2img").all()
    assert "16384: reproduced" in table["note"].iloc[-1]


def test_no_difference_is_not_reproduced():
    rows = judged(runs_with_gap(0.0, spread=0.5))
    assert (rows["verdict"] == NOT_REPRODUCED).all()


def test_a_study_without_the_claims_backbone_reports_not_in_this_study():
    rows = judged(runs_with_gap(5.0, backbone="aligned"))
    assert (rows.drop(index="2048, 4096, 8192, 16384")["verdict"] == NOT_IN_STUDY).all()
    assert rows.loc["2048, 4096, 8192, 16384", "verdict"] == NOT_FULLY_TESTED
    assert rows["ours_mean_pts"].isna().all()


def test_methods_are_selected_by_label_not_by_name_convention():
    """A cross-attention variant under a label of its own is judged only when a claim names it."""
    runs = runs_with_gap(5.0, methods=("xattn_matched", "gated_sum"))
    claim = Claim(**{**CLAIM.__dict__, "methods": ("xattn_matched",)})
    rows = judged(runs, claim)
    assert set(rows["method"]) == {"xattn_matched"} and (rows["verdict"] == REPRODUCED).all()
    assert (judged(runs)["verdict"].isin([NOT_IN_STUDY, NOT_FULLY_TESTED])).all()


def test_a_claim_at_every_scale_judged_on_two_of_four_scales_is_not_fully_tested():
    rows = judged(runs_with_gap(5.0, scales=(2048, 4096)))
    assert rows.loc["2048", "verdict"] == REPRODUCED
    assert rows.loc["8192", "verdict"] == NOT_IN_STUDY
    every = rows.loc["2048, 4096, 8192, 16384"]
    assert every["verdict"] == NOT_FULLY_TESTED
    assert "not run at 8192, 16384" in every["note"]


def test_one_rejecting_scale_rejects_the_claim_at_every_scale_and_is_shown():
    rows = judged(runs_with_gap([5.0, 4.5, 0.0, 4.8], spread=0.3))
    assert rows.loc["8192", "verdict"] == NOT_REPRODUCED
    every = rows.loc["2048, 4096, 8192, 16384"]
    assert every["verdict"] == NOT_REPRODUCED
    assert "weakest scale 8192" in every["note"]
    assert every["shown_scale"] == 8192
    assert every["ours_mean_pts"] == rows.loc["8192", "ours_mean_pts"]


def test_a_precise_gap_outside_the_widened_band_is_smaller_or_larger():
    rows = judged(runs_with_gap(1.5, spread=0.2))
    assert rows.loc["2048", "verdict"] == SMALLER
    assert rows.loc["2048, 4096, 8192, 16384", "verdict"] == NOT_REPRODUCED
    assert judged(runs_with_gap(9.0, spread=0.2)).loc["4096", "verdict"] == LARGER


def test_verdicts_against_the_band_widened_by_the_tolerance():
    assert verdict(4.0, 5.2, BAND, TOLERANCE) == REPRODUCED
    assert verdict(3.2, 6.0, BAND, TOLERANCE) == REPRODUCED  # inside [3.1, 6.1]
    assert verdict(0.5, 8.7, BAND, TOLERANCE) == IMPRECISE  # wide: it cannot tell
    assert verdict(1.0, 3.0, BAND, TOLERANCE) == SMALLER
    assert verdict(6.5, 8.0, BAND, TOLERANCE) == LARGER
    assert verdict(-1.0, 2.0, BAND, TOLERANCE) == NOT_REPRODUCED
    assert verdict(-4.0, -2.0, BAND, TOLERANCE) == REVERSED
    assert verdict(np.nan, np.nan, BAND, TOLERANCE) == TOO_FEW_SEEDS
    assert verdict(4.0, 5.2, BAND, 0.0) == IMPRECISE  # no tolerance: 4.0 is below 4.1


def test_a_claim_that_the_reference_loses_is_judged_on_its_own_side_of_zero():
    band = (-2.8, -1.3)
    assert verdict(-2.5, -1.5, band, 0.5) == REPRODUCED
    assert verdict(1.0, 2.0, band, 0.5) == REVERSED
    assert verdict(-0.7, -0.3, band, 0.5) == SMALLER


STRENGTH = {v: 2 for v in DECISIVE} | {IMPRECISE: 1, TOO_FEW_SEEDS: 0}


@pytest.mark.parametrize("centre", [-3.0, 0.0, 1.0, 2.5, 3.0, 4.6, 5.8, 6.2, 9.0])
def test_a_wider_interval_around_the_same_estimate_never_gets_a_stronger_verdict(centre):
    widths = np.linspace(0.0, 20.0, 401)
    verdicts = [verdict(centre - w, centre + w, BAND, TOLERANCE) for w in widths]
    strengths = [STRENGTH[v] for v in verdicts]
    assert strengths == sorted(strengths, reverse=True)
    first_other = next((i for i, v in enumerate(verdicts) if v != REPRODUCED), len(verdicts))
    assert REPRODUCED not in verdicts[first_other:]


def test_combined_verdict_reproduces_only_where_every_scale_does():
    assert combined_verdict([REPRODUCED] * 4, missing=False) == REPRODUCED
    assert combined_verdict([REPRODUCED] * 2, missing=True) == NOT_FULLY_TESTED
    assert combined_verdict([REPRODUCED, REVERSED], missing=False) == NOT_REPRODUCED
    assert combined_verdict([REPRODUCED, SMALLER], missing=True) == NOT_REPRODUCED
    assert combined_verdict([REPRODUCED, IMPRECISE], missing=False) == IMPRECISE
    assert combined_verdict([REPRODUCED, TOO_FEW_SEEDS], missing=False) == TOO_FEW_SEEDS


def test_one_seed_is_too_few_to_judge():
    rows = judged(runs_with_gap(5.0, seeds=1))
    assert (rows["verdict"] == TOO_FEW_SEEDS).all()


def test_seeds_needed_is_the_first_count_whose_interval_fits():
    # estimate 4.6 in [3.1, 6.1]: decisive once the half-width is below 1.5
    needed = seeds_needed(4.6, 2.0, np.nan, BAND, TOLERANCE)
    half = [stats.t.ppf(0.975, n - 1) * 2.0 / math.sqrt(n) for n in range(2, 40)]
    assert needed == next(n for n, h in zip(range(2, 40), half, strict=False) if h < 1.5)
    assert seeds_needed(4.6, 2.0, 0.8, BAND, TOLERANCE) == math.inf  # 1.96 x 0.8 > 1.5
    assert seeds_needed(4.6, 2.0, 0.3, BAND, TOLERANCE) > needed  # the test part adds
    assert np.isnan(seeds_needed(4.6, np.nan, np.nan, BAND, TOLERANCE))


def test_every_row_reports_the_seeds_a_decisive_interval_would_need():
    rows = judged(runs_with_gap(4.6, spread=2.0))
    assert (rows["seeds_needed"] >= 2).all()
    every = rows.loc["2048, 4096, 8192, 16384", "seeds_needed"]
    assert every == rows.drop(index="2048, 4096, 8192, 16384")["seeds_needed"].max()


def test_diverged_seeds_are_left_out_and_said():
    runs = runs_with_gap(5.0)
    runs["status"] = "ok"
    runs.loc[(runs["method"] == "xattn_txt2img") & (runs["seed"] == 4), "status"] = "diverged"
    rows = judged(runs)
    assert (rows.drop(index="2048, 4096, 8192, 16384")["n_seeds"] == 4).all()
    assert rows.loc["2048", "diverged_seeds"] == 1
    assert "1 diverged seed(s) left out" in rows.loc["2048", "note"]


def test_an_empty_paired_table_gives_not_in_this_study_rows():
    runs = runs_with_gap(5.0)
    table = claims_table(
        paired_differences(runs[runs["method"] != "concat"], []), [CLAIM], ["flickr8k"], TOLERANCE
    )
    assert len(table) == len(PAPER_SCALES) + 1
    assert set(table["verdict"]) == {NOT_IN_STUDY, NOT_FULLY_TESTED}


def test_a_scale_whose_reference_seeds_all_diverged_reads_runs_diverged_not_absent():
    runs = runs_with_gap(5.0)
    runs["status"] = np.where(
        (runs["method"] == "concat") & (runs["n_train"] == 8192), "diverged", "ok"
    )
    rows = judged(runs)
    assert rows.loc["8192", "verdict"] == DIVERGED
    assert rows.loc["8192", "n_seeds"] == 0 and rows.loc["8192", "diverged_seeds"] == 5
    assert rows.loc["2048", "verdict"] == REPRODUCED
    every = rows.loc["2048, 4096, 8192, 16384"]
    assert every["verdict"] == DIVERGED
    assert every["ours_mean_pts"] == pytest.approx(5.0)  # the weakest scale with an estimate
    assert "8192: runs diverged" in every["note"]


def test_a_band_around_zero_is_an_equivalence_claim():
    band = (-1.0, 1.0)
    assert verdict(-0.5, 0.8, band, 0.5) == REPRODUCED  # inside the widened band: equivalent
    assert verdict(2.0, 3.0, band, 0.5) == NOT_REPRODUCED  # wholly outside it
    assert verdict(-3.0, -2.0, band, 0.5) == NOT_REPRODUCED
    assert verdict(0.5, 2.5, band, 0.5) == IMPRECISE  # overlapping it
    assert verdict(-4.0, 4.0, band, 0.5) == IMPRECISE  # wider than it
    assert verdict(np.nan, np.nan, band, 0.5) == TOO_FEW_SEEDS
    # read as "the reference ahead", a precise zero would have been "not reproduced"
    assert verdict(-0.2, 0.2, band, 0.0) == REPRODUCED


def test_an_equivalence_claim_is_judged_at_every_scale_on_its_worst_estimate():
    claim = Claim(**{**CLAIM.__dict__, "band": (-2.0, 2.0)})
    table = judged(runs_with_gap([0.0, 0.2, 0.4, 1.0], spread=0.05), claim)
    assert (table["verdict"] == REPRODUCED).all()
    every = table.loc["2048, 4096, 8192, 16384"]
    assert every["shown_scale"] == 16384  # the estimate farthest from no difference
    assert "equivalence claim" in table.loc["2048", "note"]


def test_no_verdict_improves_as_the_interval_widens_on_thousands_of_random_cases():
    """Equivalence and one-sided bands alike: widening an interval around its estimate only
    moves a verdict from decisive towards imprecise, and never back to reproduced."""
    rng = np.random.default_rng(7)
    for _ in range(4000):
        low, high = np.sort(rng.uniform(-6, 6, 2))
        if rng.random() < 0.4:  # a band holding zero inside
            low, high = -rng.uniform(0.1, 3), rng.uniform(0.1, 3)
        tolerance = rng.choice([0.0, 0.5, 1.0])
        centre = rng.uniform(-8, 8)
        widths = np.sort(rng.uniform(0, 10, 6))
        verdicts = [verdict(centre - w, centre + w, (low, high), tolerance) for w in widths]
        strengths = [STRENGTH[v] for v in verdicts]
        assert strengths == sorted(strengths, reverse=True), (low, high, centre, verdicts)
        first_other = next((i for i, v in enumerate(verdicts) if v != REPRODUCED), len(verdicts))
        assert REPRODUCED not in verdicts[first_other:], (low, high, centre, verdicts)
