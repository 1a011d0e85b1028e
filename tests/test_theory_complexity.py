"""The sample-complexity argument: effective dimensions, parameter counts and predicted risk."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alignfuse.errors import AlignfuseError
from alignfuse.theory.complexity import (
    dimension_ratio,
    effective_dimension,
    excess_risk,
    parameter_count,
    predicted_curves,
    samples_needed,
    samples_table,
)

CONCAT = {"hidden": [256, 128], "dropout": 0.1}
XATTN = {"tokens": 8, "dim": 288, "heads": 4, "ffn": 512, "dropout": 0.1, "token_map": "chunks"}


def test_concat_at_512_has_the_papers_296k_parameters_and_p_eff_1024():
    assert parameter_count("concat", 512, 512, CONCAT) == 295_554
    assert effective_dimension("concat", 512, 512, CONCAT) == (
        1024,
        "d_v + d_t (linear fusion projection)",
    )


def test_cross_attention_at_512_counts_its_parameters_and_a_full_bilinear_score():
    assert parameter_count("xattn_txt2img", 512, 512, XATTN) == 755_650
    assert effective_dimension("xattn_txt2img", 512, 512, XATTN) == (
        262_144,
        "d_v·d_t (full-rank bilinear score)",
    )


def test_factored_score_counts_both_projections_to_the_configured_key_width():
    p_eff, basis = effective_dimension("xattn_txt2img", 512, 512, XATTN, bilinear="factored")
    assert p_eff == 1024 * 288
    assert basis == "(d_v + d_t)·d_k (factored bilinear score, d_k = 288)"


def test_factored_score_without_dim_uses_the_head_default():
    assert effective_dimension("xattn_bidir", 512, 256, {}, bilinear="factored")[0] == 768 * 256


@pytest.mark.parametrize(
    "head", ["concat", "weighted_sum", "gated_sum", "late", "image_only", "text_only"]
)
def test_additive_heads_need_d_image_plus_d_text(head):
    assert effective_dimension(head, 384, 512)[0] == 896


def test_low_rank_bilinear_pooling_counts_rank_times_both_widths():
    p_eff, basis = effective_dimension("bilinear", 512, 512, {"rank": 64})
    assert p_eff == 1024 * 64
    assert "r = 64" in basis


def test_parameter_count_follows_the_built_head_not_a_formula():
    assert parameter_count("concat", 10, 6, {"hidden": [4]}) == (16 * 4 + 4) + (4 * 2 + 2)


def test_param_match_is_resolved_before_counting():
    count = parameter_count("bilinear", 512, 512, {"hidden": [128], "param_match": 100_000})
    assert abs(count - 100_000) <= 0.1 * 100_000


@pytest.mark.parametrize("head", ["mystery", "concat_wide"])
def test_unknown_head_is_a_user_error_naming_it(head):
    with pytest.raises(AlignfuseError, match=head):
        effective_dimension(head, 512, 512)


def test_unknown_bilinear_variant_and_bad_widths_are_user_errors():
    with pytest.raises(AlignfuseError, match="bilinear"):
        effective_dimension("xattn_txt2img", 512, 512, bilinear="diagonal")
    with pytest.raises(AlignfuseError, match="d_text"):
        effective_dimension("concat", 512, 0)
    with pytest.raises(AlignfuseError, match="d_image"):
        dimension_ratio("wide", 512)


def test_dimension_ratio_is_256_at_512_by_512():
    assert dimension_ratio(512, 512) == 256
    assert dimension_ratio(768, 256) == 768 * 256 / 1024


def test_excess_risk_forms_are_vectorised_over_n():
    n = np.array([10.0, 100.0, 1e4])
    np.testing.assert_allclose(
        excess_risk(n, 50, C=2.0, eps_approx=0.1), 0.1 + 2 * np.sqrt(50 * np.log(n) / n)
    )
    np.testing.assert_allclose(excess_risk(n, 50, 2.0, 0.1, "linear"), 0.1 + 100 / n)
    assert isinstance(excess_risk(100, 5), float)


def test_excess_risk_rejects_unknown_forms_and_sizes_below_one():
    with pytest.raises(AlignfuseError, match="form"):
        excess_risk(100, 5, form="cubic")
    with pytest.raises(AlignfuseError, match="n must be"):
        excess_risk([0.5, 10], 5)


def test_samples_needed_reaches_the_target_it_was_asked_for():
    n = samples_needed(0.05, 1024, C=1.0, eps_approx=0.01)
    assert excess_risk(n, 1024, 1.0, 0.01) == pytest.approx(0.05, rel=1e-9)


def test_samples_needed_scales_linearly_in_p_eff_for_the_linear_form():
    one = samples_needed(0.01, 1024, C=0.5, eps_approx=0.0, form="linear")
    assert one == pytest.approx(0.5 * 1024 / 0.01, rel=1e-9)
    assert samples_needed(0.01, 262_144, 0.5, 0.0, "linear") / one == pytest.approx(256, rel=1e-9)


def test_samples_needed_scales_like_p_eff_times_log_n_for_sqrt_log():
    small = samples_needed(0.05, 1024)
    large = samples_needed(0.05, 262_144)
    # at the root, n / log n = p_eff · C² / (target − ε)², so that ratio is exactly 256 ...
    assert (large / math.log(large)) / (small / math.log(small)) == pytest.approx(256, rel=1e-6)
    # ... and the log makes the ratio of samples a little more than the ratio of dimensions
    assert 256 < large / small < 256 * 2


def test_targets_at_or_below_the_approximation_error_or_beyond_reach_need_infinite_samples():
    assert samples_needed(0.1, 1024, eps_approx=0.1) == math.inf
    assert samples_needed(0.05, 1024, eps_approx=0.1) == math.inf
    assert samples_needed(1e-9, 262_144, C=10.0) == math.inf


def test_a_target_met_at_the_smallest_searched_n_returns_it():
    assert samples_needed(10.0, 4, form="linear") == 10.0


def test_predicted_curves_lay_out_every_method_over_the_grid():
    methods = {"concat": CONCAT, "xattn_txt2img": XATTN}
    grid = np.logspace(2, 7, 6)
    curves = predicted_curves(methods, 512, 512, n_grid=grid, C=0.5, eps=0.02)
    assert list(curves.columns) == [
        "method", "head", "p_eff", "basis", "params", "form", "n", "excess_risk"
    ]  # fmt: skip
    assert len(curves) == 2 * len(grid)
    concat = curves[curves["method"] == "concat"]
    assert set(concat["params"]) == {295_554}
    np.testing.assert_allclose(concat["excess_risk"], excess_risk(grid, 1024, 0.5, 0.02))
    xattn = curves[curves["method"] == "xattn_txt2img"]
    assert (xattn["excess_risk"].to_numpy() > concat["excess_risk"].to_numpy()).all()


def test_predicted_curves_show_both_score_counts_and_per_method_constants():
    curves = predicted_curves(
        ["concat", "xattn_img2txt"],
        512,
        512,
        n_grid=[1e3],
        C={"concat": 1.0, "xattn_img2txt": 2.0},
        bilinear=("full", "factored"),
    )
    assert list(curves["method"]) == ["concat", "xattn_img2txt (full)", "xattn_img2txt (factored)"]
    assert list(curves["p_eff"]) == [1024, 262_144, 1024 * 256]
    full = curves.set_index("method").loc["xattn_img2txt (full)", "excess_risk"]
    assert full == pytest.approx(2.0 * math.sqrt(262_144 * math.log(1e3) / 1e3))


def test_study_method_labels_name_their_head():
    methods = {"wide_concat": {"head": "concat", "hidden": [512], "training": {"lr": 1e-3}}}
    row = predicted_curves(methods, 512, 512, n_grid=[1e3]).iloc[0]
    assert (row["method"], row["head"], row["p_eff"]) == ("wide_concat", "concat", 1024)
    assert row["params"] == 1024 * 512 + 512 + 512 * 2 + 2


def test_a_missing_per_method_constant_is_named():
    with pytest.raises(AlignfuseError, match="'xattn_txt2img'"):
        predicted_curves(["concat", "xattn_txt2img"], 512, 512, C={"concat": 1.0})


def test_samples_table_gives_the_256_fold_ratio_for_the_linear_form():
    table = samples_table(
        {"concat": CONCAT, "xattn_txt2img": XATTN}, 512, 512, target=0.05, form="linear"
    )
    ratio = table.set_index("method")["ratio_to_reference"]
    assert ratio["concat"] == 1
    assert ratio["xattn_txt2img"] == pytest.approx(256, rel=1e-9)
    assert (table["target"] == 0.05).all()


def test_samples_table_without_the_reference_has_no_ratio():
    table = samples_table(["bilinear"], 512, 512, target=0.05)
    assert table["ratio_to_reference"].isna().all()
    assert np.isfinite(table["n_needed"]).all()
