import numpy as np
import pandas as pd
import pytest
from declared import alignment_study_of, paired

from alignfuse.analysis.alignment_study import (
    DECREASING,
    INCREASING,
    NO_TREND,
    TOO_FEW_LEVELS,
)
from alignfuse.analysis.claims import (
    DIVERGED,
    IMPRECISE,
    LARGER,
    NOT_REPRODUCED,
    REPRODUCED,
    REVERSED,
    SMALLER,
    Claim,
    claims_table,
)
from alignfuse.analysis.display import alignment_study_display
from alignfuse.analysis.tables import Settings


def runs_with_gaps(gaps_by_level: dict, seeds=6, noise=0.002, kind="rotation", n=4096):
    """concat leads xattn_txt2img by gaps_by_level[level] points (level 0 = raw), per seed."""
    rng = np.random.default_rng(0)
    rows = []
    for level, gap in gaps_by_level.items():
        alignment = "raw" if level == 0 else f"{kind}-{level:g}"
        base = 0.7 + rng.normal(0, 0.02, seeds)
        for method in ("concat", "xattn_txt2img"):
            lead = gap / 100 + rng.normal(0, noise, seeds) if method == "concat" else 0.0
            for seed in range(seeds):
                rows.append(
                    {
                        "dataset": "flickr8k",
                        "backbone": "clip",
                        "alignment": alignment,
                        "method": method,
                        "head": method,
                        "n_train": n,
                        "seed": seed,
                        "test_accuracy": (base + lead)[seed],
                        "test_auroc": 0.8,
                        "status": "ok",
                    }
                )
    return pd.DataFrame(rows)


def metrics_for(levels, kind="rotation"):
    rows = []
    for level in levels:
        alignment = "raw" if level == 0 else f"{kind}-{level:g}"
        for metric, value in (("cosine_gap", 0.5 * (1 - level)), ("cka", 0.6)):
            rows.append(
                {"backbone": "clip", "alignment": alignment, "metric": metric, "value": value}
            )
    return pd.DataFrame(rows)


def test_a_gap_that_grows_with_the_level_is_an_increasing_trend_beside_its_metrics():
    levels = {0: 1.3, 0.25: 1.8, 0.5: 2.3, 1.0: 2.8}
    study = alignment_study_of(runs_with_gaps(levels), metrics_for(levels), 300)
    assert list(study["level"]) == [0.0, 0.25, 0.5, 1.0]
    assert study["gap_pts"].to_numpy() == pytest.approx([1.3, 1.8, 2.3, 2.8], abs=0.2)
    assert (study["trend"] == INCREASING).all()
    assert study["spearman"].iloc[0] == pytest.approx(1.0)
    assert study["page_p"].iloc[0] < 0.01
    assert study["cosine_gap"].tolist() == pytest.approx([0.5, 0.375, 0.25, 0.0])
    assert (study["cka"] == 0.6).all()


def test_a_gap_that_falls_is_decreasing_and_a_flat_noisy_one_shows_no_trend():
    falling = alignment_study_of(runs_with_gaps({0: 3.0, 0.5: 2.0, 1.0: 1.0}), None, 300)
    assert (falling["trend"] == DECREASING).all()
    bumpy = alignment_study_of(runs_with_gaps({0: 2.0, 0.5: 2.6, 1.0: 1.9}, noise=0.005), None, 300)
    assert (bumpy["trend"] == NO_TREND).all()


def test_two_levels_are_too_few_to_tell_a_trend():
    study = alignment_study_of(runs_with_gaps({0: 1.0, 1.0: 5.0}), None, 300)
    assert (study["trend"] == TOO_FEW_LEVELS).all()


def test_a_study_of_the_reference_alone_has_no_gaps_to_study():
    runs = runs_with_gaps({0: 1.0, 0.5: 2.0})
    study = alignment_study_of(runs[runs["method"] == "concat"], None, 300)
    assert study.empty
    assert "trend" in study.columns


def trend_claim(band=(1.3, 2.8)):
    return Claim.from_config(
        {
            "id": "degradation_trend",
            "kind": "trend",
            "statement": f"concat's advantage moves from {band[0]} to {band[1]} points as "
            "alignment degrades",
            "backbone": "clip",
            "alignment": "raw",
            "reference": "concat",
            "methods": ["xattn_txt2img"],
            "scales": [4096],
            "band": list(band),
            "degradations": ["rotation", "noise"],
        }
    )


def trend_rows(gaps, band, noise=0.002):
    """The rotation rows (undegraded, most degraded, trend) of a trend claim with ``band``."""
    runs = runs_with_gaps(gaps, noise=noise, seeds=8)
    table = claims_table(
        paired(runs),
        [trend_claim(band)],
        ["flickr8k"],
        1.0,
        0.95,
        alignment_study_of(runs, None, 300),
    )
    return table[~table["alignment"].str.contains("noise")].reset_index(drop=True)


def test_a_trend_claim_judges_both_ends_and_the_trend_of_each_degradation_kind():
    runs = runs_with_gaps({0: 1.3, 0.25: 1.8, 0.5: 2.3, 1.0: 2.8}, seeds=8)
    study = alignment_study_of(runs, None, 300)
    table = claims_table(paired(runs), [trend_claim()], ["flickr8k"], 1.0, 0.95, study)
    rotation = table[table["alignment"].str.contains("rotation") | (table["alignment"] == "raw")]
    assert len(table) == 3 + 1  # rotation: undegraded, most degraded, trend; noise: not run
    assert rotation["verdict"].tolist() == [REPRODUCED, REPRODUCED, REPRODUCED]
    assert "not in this study" in table["verdict"].tolist()


def test_a_falling_gap_reverses_the_trend_claim_and_no_trend_is_imprecise_or_not_reproduced():
    falling = runs_with_gaps({0: 2.8, 0.5: 2.0, 1.0: 1.3}, seeds=8)
    table = claims_table(
        paired(falling),
        [trend_claim()],
        ["flickr8k"],
        1.0,
        0.95,
        alignment_study_of(falling, None, 300),
    )
    assert REVERSED in table["verdict"].tolist()

    def trend_verdict(gaps, noise):
        runs = runs_with_gaps(gaps, noise=noise, seeds=8)
        table = claims_table(
            paired(runs),
            [trend_claim()],
            ["flickr8k"],
            1.0,
            0.95,
            alignment_study_of(runs, None, 300),
        )
        return table[table["interval"] == "Spearman rho, seed bootstrap"]["verdict"].tolist()

    # seed noise (2 points) above the differences: the mean gaps happen to rise, Page's test
    # does not confirm it, and rho's interval holds a rise: the study cannot tell
    assert trend_verdict({0: 2.0, 0.5: 1.0, 1.0: 1.5}, noise=0.02) == [IMPRECISE]
    # up then down, precisely: no monotonic trend, and no rise left inside rho's interval
    assert trend_verdict({0: 2.0, 0.25: 3.0, 0.5: 2.5, 1.0: 1.5}, noise=0.002) == [NOT_REPRODUCED]


def test_a_fall_exactly_as_claimed_reproduces_and_a_rise_against_it_is_reversed():
    falling = trend_rows({0: 2.8, 0.5: 2.0, 1.0: 1.3}, band=(2.8, 1.3))
    assert falling["verdict"].tolist() == [REPRODUCED, REPRODUCED, REPRODUCED]
    assert "claimed fall" in falling["note"].iloc[-1]
    assert "Page p of a fall 5.95e-07" in falling["note"].iloc[-1]
    rising = trend_rows({0: 1.3, 0.25: 1.8, 0.5: 2.3, 1.0: 2.8}, band=(2.8, 1.3))
    assert rising["verdict"].iloc[-1] == REVERSED
    assert rising["verdict"].iloc[:2].tolist() == [SMALLER, LARGER]


def test_without_a_detected_trend_only_the_claimed_direction_decides_what_is_left():
    """rho's interval is [0.2, 0.2]: a rise is still possible, a fall is not."""
    gaps = {0: 1.5, 0.25: 3.0, 0.5: 2.5, 1.0: 2.0}
    assert trend_rows(gaps, band=(1.5, 2.0))["verdict"].iloc[-1] == IMPRECISE
    assert trend_rows(gaps, band=(2.0, 1.5))["verdict"].iloc[-1] == NOT_REPRODUCED


def test_a_level_whose_seeds_all_diverged_keeps_its_row_and_the_trend_claim_says_so():
    runs = runs_with_gaps({0: 1.3, 0.25: 1.8, 0.5: 2.3, 1.0: 2.8}, seeds=8)
    runs.loc[(runs["alignment"] == "rotation-1") & (runs["method"] != "concat"), "status"] = (
        "diverged"
    )
    study = alignment_study_of(runs, None, 300)
    top = study.set_index("level").loc[1.0]
    assert top["n_seeds"] == 0 and top["n_diverged"] == 8 and np.isnan(top["gap_pts"])
    table = claims_table(paired(runs), [trend_claim()], ["flickr8k"], 1.0, 0.95, study)
    rotation = table[~table["alignment"].str.contains("noise")]
    assert rotation["verdict"].tolist() == [REPRODUCED, DIVERGED, DIVERGED]
    assert "every seed diverged at rotation level(s) 1" in rotation["note"].iloc[-1]


def test_the_study_for_people_shows_diverged_levels_and_pages_test_in_both_directions():
    runs = runs_with_gaps({0: 2.8, 0.5: 2.0, 1.0: 1.3}, seeds=4)
    runs.loc[(runs["alignment"] == "rotation-1") & (runs["method"] != "concat"), "status"] = (
        "diverged"
    )
    shown = alignment_study_display(alignment_study_of(runs, None, 300), Settings()).frame
    assert shown["seeds"].tolist() == ["4", "4", "0 (4 diverged)"]
    assert shown["gap (pts) [t, seeds]"].iloc[-1] == "–"
    assert all("Page p rise" in t and ", fall " in t for t in shown["trend"])
