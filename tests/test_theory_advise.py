"""alignfuse advise: placing a practitioner's features on a study's fitted curves."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alignfuse.align.metrics import alignment_metrics
from alignfuse.cli import main
from alignfuse.errors import AlignfuseError
from alignfuse.fusion import HEAD_FAMILIES
from alignfuse.parquet import read_embeddings, write_embeddings, write_frame
from alignfuse.rotation import haar_frame
from alignfuse.theory.advise import (
    CONCAT,
    CROSS_ATTENTION,
    OUTSIDE,
    TOO_CLOSE,
    advice_text,
    advise,
)

N, D = 400, 32
RESAMPLES = 400
SCALES = (128, 4096)  # the fitted range; held-out checks reach 2x beyond it, to 8192


def pair(tmp_path, name, rotate: bool, rows: int = N, noise: float = 0.3, rng: int = 1):
    rng = np.random.default_rng(rng)
    v = rng.standard_normal((rows, D))
    t = v + noise * rng.standard_normal((rows, D))
    if rotate:
        t = t @ haar_frame(D, D, np.random.default_rng(2))
    ids = [f"r{i}" for i in range(rows)]
    write_embeddings(tmp_path / f"{name}_image.parquet", "image_id", ids, v.astype(np.float32))
    write_embeddings(tmp_path / f"{name}_text.parquet", "caption_id", ids, t.astype(np.float32))
    return tmp_path / f"{name}_image.parquet", tmp_path / f"{name}_text.parquet"


def spread(mean: float, low: float, high: float) -> np.ndarray:
    """RESAMPLES draws whose 2.5% and 97.5% percentiles are ``low`` and ``high`` (a split
    normal around ``mean``), in a fixed shuffled order."""
    z = stats.norm.ppf((np.arange(RESAMPLES) + 0.5) / RESAMPLES)
    draws = mean + np.where(z < 0, (mean - low), (high - mean)) * z / 1.96
    return np.random.default_rng(0).permutation(draws)


def write_study(
    root, feature_sets: dict, test_se: float = 0.0, images: int = N, heldout_pts: float = 0.5
):
    """A finished study's tables. ``feature_sets``: name -> (alignment metrics, {method: (head,
    error draws, identifiable)}); errors are flat in n (b = 0), so each draw is the error. concat
    is compared with every other method (declared, as the aggregate stage writes them), and
    each curve predicts its held-out largest scale from half of it ``heldout_pts`` off."""
    fits, samples, alignment, paired = [], [], [], []
    for feature_set, (metrics, methods) in feature_sets.items():
        backbone, align = feature_set.split("@")
        for method, (head, errors, identifiable) in methods.items():
            fits.append(
                {
                    "feature_set": feature_set,
                    "method": method,
                    "head": head,
                    "n_min": SCALES[0],
                    "n_max": SCALES[1],
                    "identifiable": identifiable,
                    "reason": "fitted" if identifiable else "the exponent c ran to its bound",
                    "e_inf": float(np.nanmean(errors)) if identifiable else np.nan,
                    "b": 0.0 if identifiable else np.nan,
                    "c": 0.5 if identifiable else np.nan,
                    "heldout_n": SCALES[1],
                    "heldout_from": SCALES[1] / 2,
                    "heldout_error_pts": heldout_pts,
                }
            )
            if method == "concat":
                continue
            for curve, (_, draws, _) in (("concat", methods["concat"]), (method, methods[method])):
                samples.append(
                    pd.DataFrame(
                        {
                            "feature_set": feature_set,
                            "reference": "concat",
                            "method": method,
                            "curve": curve,
                            "resample": np.arange(RESAMPLES),
                            "e_inf": draws,
                            "b": np.where(np.isnan(draws), np.nan, 0.0),
                            "c": np.where(np.isnan(draws), np.nan, 0.5),
                        }
                    )
                )
            for n in SCALES:
                paired.append(
                    {
                        "backbone": backbone,
                        "alignment": align,
                        "n_train": n,
                        "metric": "test_accuracy",
                        "reference": "concat",
                        "method": method,
                        "family": HEAD_FAMILIES[head],
                        "mixed_recipe": method.endswith("_tuned"),
                        "test_se": test_se,
                    }
                )
        for metric, value in metrics.items():
            alignment.append(
                {
                    "backbone": backbone,
                    "alignment": align,
                    "metric": metric,
                    "value": value,
                    "images": images,
                }
            )
    write_frame(pd.DataFrame(fits), root / "tables" / "theory_fits.parquet")
    write_frame(pd.concat(samples), root / "tables" / "theory_fit_samples.parquet")
    write_frame(pd.DataFrame(paired), root / "tables" / "paired.parquet")
    write_frame(pd.DataFrame(alignment), root / "alignment" / "made_up.parquet")
    return root


def around(error: float, sd: float = 0.005) -> np.ndarray:
    return spread(error, error - 1.96 * sd, error + 1.96 * sd)


@pytest.fixture
def study(tmp_path):
    """On aligned features concat's error is lower; on rotated ones cross-attention's is (as
    constructed, to test the placing, not a finding)."""
    return write_study(
        tmp_path / "results" / "made_up",
        {
            "aligned@raw": (
                {"cosine_gap": 0.7, "mutual_knn": 0.6, "cka": 0.8},
                {
                    "concat": ("concat", around(0.10), True),
                    "xattn_txt2img": ("xattn_txt2img", around(0.16), True),
                },
            ),
            "rotated@raw": (
                {"cosine_gap": 0.0, "mutual_knn": 0.6, "cka": 0.8},
                {
                    "concat": ("concat", around(0.20), True),
                    "xattn_txt2img": ("xattn_txt2img", around(0.14), True),
                },
            ),
        },
        test_se=0.004,
    )


def test_aligned_features_are_placed_on_the_aligned_curves_and_get_concat(tmp_path, study):
    advice = advise(*pair(tmp_path, "a", rotate=False), n=2000, results=study)
    assert advice["nearest_feature_set"] == "aligned@raw"
    assert advice["recommendation"] == CONCAT
    (gap,) = advice["predicted_gap"]
    assert gap["gap_pts"] == pytest.approx(6.0, abs=0.1) and gap["low_pts"] > 0
    assert gap["test_se_pts"] == pytest.approx(0.4)


def test_the_recommendation_flips_for_rotated_features(tmp_path, study):
    advice = advise(*pair(tmp_path, "r", rotate=True), n=2000, results=study)
    assert advice["nearest_feature_set"] == "rotated@raw"
    assert advice["recommendation"] == CROSS_ATTENTION


def two_heads(root, second_low: float):
    """The issue's case: concat − xattn_txt2img = 1.99 [1.58, 2.44] and concat − xattn_bidir
    = 2.80 [second_low, 8.56] points."""
    reference = np.full(RESAMPLES, 0.10)
    return write_study(
        root,
        {
            "a@raw": (
                {"cosine_gap": 0.7, "mutual_knn": 0.6, "cka": 0.8},
                {
                    "concat": ("concat", reference, True),
                    "xattn_txt2img": ("xattn_txt2img", 0.10 + spread(1.99, 1.58, 2.44) / 100, True),
                    "xattn_bidir": (
                        "xattn_bidir",
                        0.10 + spread(2.80, second_low, 8.56) / 100,
                        True,
                    ),
                },
            )
        },
    )


def test_one_head_whose_interval_holds_zero_makes_it_too_close_to_call(tmp_path):
    study = two_heads(tmp_path / "study", second_low=-2.37)
    advice = advise(*pair(tmp_path, "a", rotate=False), n=1000, results=study)
    gaps = {g["method"]: g for g in advice["predicted_gap"]}
    assert (gaps["xattn_txt2img"]["low_pts"], gaps["xattn_txt2img"]["high_pts"]) == pytest.approx(
        (1.58, 2.44), abs=0.05
    )
    assert (gaps["xattn_bidir"]["low_pts"], gaps["xattn_bidir"]["high_pts"]) == pytest.approx(
        (-2.37, 8.56), abs=0.1
    )
    assert advice["recommendation"] == TOO_CLOSE


def test_both_heads_excluding_zero_on_the_same_side_recommend(tmp_path):
    study = two_heads(tmp_path / "study", second_low=0.5)
    advice = advise(*pair(tmp_path, "a", rotate=False), n=1000, results=study)
    assert advice["recommendation"] == CONCAT


@pytest.mark.parametrize(
    ("n", "outside", "extrapolated"),
    [
        (2, True, False),
        (127, True, False),
        (128, False, False),
        (4096, False, False),
        (4097, False, True),
        (8192, False, True),
        (8193, True, False),
    ],
)
def test_n_is_answered_in_the_fitted_range_and_as_far_beyond_as_the_held_out_check_reached(
    tmp_path, study, n, outside, extrapolated
):
    advice = advise(*pair(tmp_path, "a", rotate=False), n=n, results=study)
    assert (advice["recommendation"] == OUTSIDE) == outside
    if outside:
        assert "predicted_gap" not in advice and "128 to 4,096" in advice["drivers"]
        assert "up to 8,192" in advice["drivers"]
    else:
        assert advice["extrapolated"] == extrapolated
        assert ("extrapolated" in advice["drivers"]) == extrapolated


def test_an_extrapolated_interval_is_widened_by_both_curves_held_out_errors(tmp_path, study):
    image, text = pair(tmp_path, "a", rotate=False)
    (inside,) = advise(image, text, n=4096, results=study)["predicted_gap"]
    (beyond,) = advise(image, text, n=8192, results=study)["predicted_gap"]
    assert beyond["widened_pts"] == pytest.approx(1.0)  # 0.5 points for each curve
    assert beyond["low_pts"] == pytest.approx(inside["low_pts"] - 1.0)
    assert beyond["high_pts"] == pytest.approx(inside["high_pts"] + 1.0)


def test_without_a_held_out_check_there_is_no_answer_beyond_the_fitted_scales(tmp_path):
    methods = {
        "concat": ("concat", around(0.10), True),
        "xattn_txt2img": ("xattn_txt2img", around(0.16), True),
    }
    metrics = {"cosine_gap": 0.7, "mutual_knn": 0.6, "cka": 0.8}
    study = write_study(tmp_path / "s", {"a@raw": (metrics, methods)}, heldout_pts=np.nan)
    image, text = pair(tmp_path, "a", rotate=False)
    assert advise(image, text, n=4096, results=study)["recommendation"] == CONCAT
    advice = advise(image, text, n=4097, results=study)
    assert advice["recommendation"] == OUTSIDE and "does not extrapolate" in advice["drivers"]


def test_only_declared_comparisons_with_the_reference_are_read(tmp_path, study):
    """A cross-attention curve the study fitted but never declared against the reference (a
    tuned copy beside untuned concat) is not part of the advice."""
    fits = pd.read_parquet(study / "tables" / "theory_fits.parquet")
    extra = fits[fits["method"] == "xattn_txt2img"].assign(method="xattn_txt2img_tuned")
    write_frame(pd.concat([fits, extra]), study / "tables" / "theory_fits.parquet")
    advice = advise(*pair(tmp_path, "a", rotate=False), n=2000, results=study)
    assert [g["method"] for g in advice["predicted_gap"]] == ["xattn_txt2img"]
    other = advise(*pair(tmp_path, "b", rotate=False), n=2000, results=study, reference="late")
    assert other["recommendation"] == TOO_CLOSE and "no declared comparison" in other["drivers"]


def test_unidentified_curves_make_the_study_unable_to_say(tmp_path):
    study = write_study(
        tmp_path / "study",
        {
            "a@raw": (
                {"cosine_gap": 0.7, "mutual_knn": 0.6, "cka": 0.8},
                {
                    "concat": ("concat", around(0.10), True),
                    "xattn_txt2img": ("xattn_txt2img", np.full(RESAMPLES, np.nan), False),
                },
            )
        },
    )
    advice = advise(*pair(tmp_path, "a", rotate=False), n=1000, results=study)
    assert advice["recommendation"] == TOO_CLOSE
    assert "cannot say" in advice["drivers"] and "ran to its bound" in advice["drivers"]


def test_failed_refits_count_as_failures_not_as_missing_draws(tmp_path):
    """5% of the head's refits failed: dropped, the rest would exclude zero by far; counted at
    both extremes, they fill the 2.5% tails and the interval cannot be bounded."""
    errors = around(0.16)
    errors[::20] = np.nan
    study = write_study(
        tmp_path / "study",
        {
            "a@raw": (
                {"cosine_gap": 0.7, "mutual_knn": 0.6, "cka": 0.8},
                {
                    "concat": ("concat", np.full(RESAMPLES, 0.10), True),
                    "xattn_txt2img": ("xattn_txt2img", errors, True),
                },
            )
        },
    )
    advice = advise(*pair(tmp_path, "a", rotate=False), n=1000, results=study)
    (gap,) = advice["predicted_gap"]
    assert gap["failed_resamples"] == RESAMPLES // 20
    assert np.isnan(gap["low_pts"]) and advice["recommendation"] == TOO_CLOSE


def test_the_test_sets_sampling_variance_is_in_the_interval(tmp_path):
    """Seeds alone put the gap at 1 ± 0.2 points; a test bootstrap standard error of 1 point
    makes it too close to call."""
    methods = {
        "concat": ("concat", np.full(RESAMPLES, 0.10), True),
        "xattn_txt2img": ("xattn_txt2img", around(0.11, sd=0.001), True),
    }
    metrics = {"cosine_gap": 0.7, "mutual_knn": 0.6, "cka": 0.8}
    image, text = pair(tmp_path, "a", rotate=False)
    seeds_only = write_study(tmp_path / "s", {"a@raw": (metrics, methods)}, test_se=0.0)
    with_test = write_study(tmp_path / "t", {"a@raw": (metrics, methods)}, test_se=0.01)
    assert advise(image, text, n=1000, results=seeds_only)["recommendation"] == CONCAT
    advice = advise(image, text, n=1000, results=with_test)
    (gap,) = advice["predicted_gap"]
    assert gap["low_pts"] < 0 < gap["high_pts"] and advice["recommendation"] == TOO_CLOSE


def test_alignment_is_compared_at_the_number_of_rows_the_study_measured(tmp_path):
    """Mutual k-NN falls with n. The study measured its feature sets on 300 rows; the user's
    2,000 rows come from the distribution of "same@raw" (measured there on 300 rows), and
    "other@raw" has the value the same distribution gives on 2,000 rows. At equal n the user
    is placed on "same"; measured on all 2,000 rows, on "other"."""
    image, text = pair(tmp_path, "u", rotate=False, rows=2000, noise=1.0, rng=3)
    study_image, study_text = pair(tmp_path, "s", rotate=False, rows=300, noise=1.0, rng=4)

    def metrics(path_v, path_t):
        (_, v), (_, t) = read_embeddings(path_v), read_embeddings(path_t)
        return {r["metric"]: r["value"] for r in alignment_metrics(v, t, np.arange(len(v)))}

    at_300 = metrics(study_image, study_text)
    at_2000 = metrics(image, text)
    assert at_2000["mutual_knn"] < at_300["mutual_knn"] - 0.05
    shared = {"cosine_gap": at_300["cosine_gap"], "cka": at_300["cka"]}
    methods = {
        "concat": ("concat", around(0.10), True),
        "xattn_txt2img": ("xattn_txt2img", around(0.16), True),
    }
    study = write_study(
        tmp_path / "study",
        {
            "same@raw": ({**shared, "mutual_knn": at_300["mutual_knn"]}, methods),
            "other@raw": ({**shared, "mutual_knn": at_2000["mutual_knn"]}, methods),
        },
        images=300,
    )
    advice = advise(image, text, n=1000, results=study)
    assert advice["alignment_rows"] == 300
    assert advice["nearest_feature_set"] == "same@raw"


def test_without_a_study_the_theory_alone_cannot_decide_and_says_so(tmp_path):
    advice = advise(*pair(tmp_path, "a", rotate=False), n=5000)
    assert advice["recommendation"] == TOO_CLOSE and "theory alone" in advice["basis"]
    assert "cannot decide" in advice["drivers"]
    assert advice["samples_ratio"] > 10


def test_the_command_prints_json_for_scripts(tmp_path, study, capsys):
    image, text = pair(tmp_path, "a", rotate=False)
    code = main(
        [
            "advise",
            "--image-features",
            str(image),
            "--text-features",
            str(text),
            "--n",
            "2000",
            "--results",
            str(study),
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["recommendation"] == CONCAT


def test_bad_inputs_are_one_line_errors(tmp_path, study):
    image, _ = pair(tmp_path, "a", rotate=False)
    ids = [f"r{i}" for i in range(10)]
    write_embeddings(tmp_path / "short.parquet", "caption_id", ids, np.zeros((10, D), np.float32))
    with pytest.raises(AlignfuseError, match="has 400 rows but .*short.parquet has 10"):
        advise(image, tmp_path / "short.parquet", n=100)
    with pytest.raises(AlignfuseError, match="not a finished study"):
        advise(image, image, n=100, results=tmp_path / "nowhere")
    write_frame(pd.DataFrame({"x": [1]}), tmp_path / "not_features.parquet")
    with pytest.raises(AlignfuseError, match="no fixed-size 'emb' column"):
        advise(image, tmp_path / "not_features.parquet", n=100)


def test_a_comparison_declared_across_two_recipes_is_read_and_says_so(tmp_path):
    """A study that declared concat against tuned cross-attention (mixed_recipe): advise reads it
    beside the shared comparison, one more interval to clear, and names it."""
    methods = {
        "concat": ("concat", around(0.10), True),
        "xattn_txt2img": ("xattn_txt2img", around(0.16), True),
        "xattn_txt2img_tuned": ("xattn_txt2img", around(0.15), True),
    }
    metrics = {"cosine_gap": 0.7, "mutual_knn": 0.6, "cka": 0.8}
    study = write_study(tmp_path / "s", {"a@raw": (metrics, methods)})
    advice = advise(*pair(tmp_path, "a", rotate=False), n=2000, results=study)
    gaps = {g["method"]: g["mixed_recipe"] for g in advice["predicted_gap"]}
    assert gaps == {"xattn_txt2img": False, "xattn_txt2img_tuned": True}
    assert "concat − xattn_txt2img_tuned (mixed recipe)" in advice_text(advice)
