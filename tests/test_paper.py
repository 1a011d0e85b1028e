import numpy as np
import pandas as pd
import pytest

from alignfuse.analysis.paper import (
    COLUMNS,
    GAP_CLAIMS,
    INCONCLUSIVE,
    LARGER,
    NOT_COMPARABLE,
    NOT_IN_STUDY,
    NOT_REPRODUCED,
    PAPER_SCALES,
    REPRODUCED,
    REVERSED,
    SMALLER,
    TOO_FEW_SEEDS,
    combined_verdict,
    paper_vs_ours,
    verdict,
)
from alignfuse.analysis.statistics import paired_differences

BAND = (4.1, 5.1)


def runs_with_gap(
    gap_points,
    backbone="clip",
    methods=("xattn_txt2img",),
    scales=PAPER_SCALES,
    alignments=("raw",),
    seeds=5,
):
    """concat is ``gap_points`` (a number, or one per scale) above each method on every seed."""
    gaps = dict(zip(scales, np.broadcast_to(gap_points, len(scales)), strict=True))
    rng = np.random.default_rng(0)
    rows = []
    for alignment in alignments:
        for n in scales:
            base = 0.65 + rng.normal(0, 0.02, seeds)  # seed effects shared by the methods
            for method in ("concat", *methods):
                accuracy = base + (gaps[n] / 100 if method == "concat" else 0.0)
                for seed in range(seeds):
                    rows.append(
                        {
                            "dataset": "flickr8k",
                            "backbone": backbone,
                            "alignment": alignment,
                            "method": method,
                            "head": method,
                            "n_train": n,
                            "seed": seed,
                            "test_accuracy": accuracy[seed],
                            "test_auroc": accuracy[seed],
                        }
                    )
    return pd.DataFrame(rows)


def compared(runs):
    return paper_vs_ours(paired_differences(runs), sorted(runs["dataset"].unique()))


def gap_rows(table):
    return table[table["claim"].str.startswith("clip_gap")]


def test_five_points_on_every_seed_reproduces_every_claim():
    table = compared(runs_with_gap(5.0))
    assert list(table.columns) == COLUMNS
    rows = gap_rows(table)
    assert list(rows["claim"]) == [c.id for c in GAP_CLAIMS]
    assert (rows["verdict"] == REPRODUCED).all()
    assert rows["ours_mean_pts"].to_numpy() == pytest.approx(5.0)
    assert (rows["method"] == "xattn_txt2img").all()
    assert (rows["n_seeds"] == 5).all()
    every = rows.set_index("claim").loc["clip_gap_every_scale"]
    assert every["scales"] == "2048, 4096, 8192, 16384"
    assert "16384: reproduced" in every["note"]


def test_no_difference_is_not_reproduced():
    rows = gap_rows(compared(runs_with_gap(0.0)))
    assert (rows["verdict"] == NOT_REPRODUCED).all()
    assert rows["ours_mean_pts"].to_numpy() == pytest.approx(0.0, abs=1e-9)


def test_a_study_without_the_clip_backbone_reports_not_in_this_study():
    table = compared(runs_with_gap(5.0, backbone="aligned"))
    assert (table["verdict"] == NOT_IN_STUDY).all()
    assert gap_rows(table)["note"].str.contains("no clip@raw runs").all()
    assert table["ours_mean_pts"].isna().all()


def test_a_study_without_cross_attention_reports_not_in_this_study():
    rows = gap_rows(compared(runs_with_gap(5.0, methods=("gated_sum", "late"))))
    assert (rows["verdict"] == NOT_IN_STUDY).all()
    assert rows["note"].str.contains("no cross-attention method").all()


def test_every_cross_attention_method_gets_its_own_rows_and_others_none():
    methods = ("xattn_txt2img", "xattn_bidir", "gated_sum")
    rows = gap_rows(compared(runs_with_gap(5.0, methods=methods)))
    assert sorted(set(rows["method"])) == ["xattn_bidir", "xattn_txt2img"]
    assert len(rows) == 2 * len(GAP_CLAIMS)


def test_scales_the_study_did_not_run_are_not_in_this_study():
    rows = gap_rows(compared(runs_with_gap(5.0, scales=(2048, 4096)))).set_index("claim")
    assert rows.loc["clip_gap_n2048", "verdict"] == REPRODUCED
    assert rows.loc["clip_gap_n8192", "verdict"] == NOT_IN_STUDY
    assert rows.loc["clip_gap_n8192", "note"] == "xattn_txt2img not run at 8192 training pairs"
    every = rows.loc["clip_gap_every_scale"]
    assert every["verdict"] == REPRODUCED
    assert "not run at 8192, 16384" in every["note"]


def test_one_failing_scale_fails_the_every_scale_claim_and_the_weakest_scale_is_shown():
    rows = gap_rows(compared(runs_with_gap([5.0, 4.5, 0.0, 4.8]))).set_index("claim")
    assert rows.loc["clip_gap_n8192", "verdict"] == NOT_REPRODUCED
    every = rows.loc["clip_gap_every_scale"]
    assert every["verdict"] == NOT_REPRODUCED
    assert every["ours_mean_pts"] == pytest.approx(0.0, abs=1e-9)
    assert "weakest scale 8192" in every["note"]


def test_a_significant_gap_below_or_above_the_range_is_same_sign():
    rows = gap_rows(compared(runs_with_gap(2.0))).set_index("claim")
    assert rows.loc["clip_gap_n2048", "verdict"] == SMALLER
    assert rows.loc["clip_gap_every_scale", "verdict"] == SMALLER
    rows = gap_rows(compared(runs_with_gap(9.0))).set_index("claim")
    assert rows.loc["clip_gap_every_scale", "verdict"] == LARGER


def test_verdict_of_one_estimate_against_the_band():
    assert verdict(4.6, 4.0, 5.2, BAND) == REPRODUCED
    assert verdict(4.6, 0.5, 8.7, BAND) == REPRODUCED  # wide, but excludes 0 and meets the band
    assert verdict(2.0, 1.0, 3.0, BAND) == SMALLER
    assert verdict(7.0, 6.0, 8.0, BAND) == LARGER
    assert verdict(3.0, -1.0, 7.0, BAND) == INCONCLUSIVE
    assert verdict(0.5, -1.0, 2.0, BAND) == NOT_REPRODUCED
    assert verdict(-3.0, -4.0, -2.0, BAND) == REVERSED
    assert verdict(5.0, np.nan, np.nan, BAND) == TOO_FEW_SEEDS


def test_combined_verdict_holds_only_where_every_scale_holds():
    assert combined_verdict([REPRODUCED] * 4) == REPRODUCED
    assert combined_verdict([REPRODUCED, REVERSED]) == NOT_REPRODUCED
    assert combined_verdict([REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combined_verdict([REPRODUCED, TOO_FEW_SEEDS]) == INCONCLUSIVE
    assert combined_verdict([TOO_FEW_SEEDS] * 2) == TOO_FEW_SEEDS
    assert combined_verdict([REPRODUCED, SMALLER]) == SMALLER
    assert combined_verdict([SMALLER, LARGER]) not in (REPRODUCED, SMALLER, LARGER)


def test_one_seed_is_too_few_to_judge():
    rows = gap_rows(compared(runs_with_gap(5.0, seeds=1)))
    assert (rows["verdict"] == TOO_FEW_SEEDS).all()


def test_the_degradation_claim_needs_several_alignments_and_is_not_comparable():
    one = compared(runs_with_gap(5.0)).set_index("claim").loc["degradation_gap_grows"]
    assert one["verdict"] == NOT_IN_STUDY
    several = compared(runs_with_gap(5.0, alignments=("raw", "rot0.5")))
    row = several.set_index("claim").loc["degradation_gap_grows"]
    assert row["verdict"] == NOT_COMPARABLE
    assert row["alignment"] == "raw, rot0.5"


def test_an_empty_paired_table_gives_not_in_this_study_rows():
    runs = runs_with_gap(5.0)
    table = compared(runs[runs["method"] != "concat"])
    assert len(table) == len(GAP_CLAIMS) + 1
    assert (table["verdict"] == NOT_IN_STUDY).all()
