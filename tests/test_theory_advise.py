"""alignfuse advise: placing a practitioner's features on a study's fitted curves."""

import json

import numpy as np
import pandas as pd
import pytest

from alignfuse.cli import main
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import write_embeddings, write_frame
from alignfuse.rotation import haar_frame
from alignfuse.theory.advise import CONCAT, CROSS_ATTENTION, advise

N, D = 400, 32


def pair(tmp_path, name, rotate: bool):
    rng = np.random.default_rng(1)
    v = rng.standard_normal((N, D))
    t = v + 0.3 * rng.standard_normal((N, D))
    if rotate:
        t = t @ haar_frame(D, D, np.random.default_rng(2))
    ids = [f"r{i}" for i in range(N)]
    write_embeddings(tmp_path / f"{name}_image.parquet", "image_id", ids, v.astype(np.float32))
    write_embeddings(tmp_path / f"{name}_text.parquet", "caption_id", ids, t.astype(np.float32))
    return tmp_path / f"{name}_image.parquet", tmp_path / f"{name}_text.parquet"


@pytest.fixture
def study(tmp_path):
    """A finished study's tables: on aligned features concat's fitted error is lower; on
    rotated ones cross-attention's is (as constructed, to test the placing, not a finding)."""
    root = tmp_path / "results" / "made_up"
    rng = np.random.default_rng(0)
    fits, samples, alignment = [], [], []
    for feature_set, concat_e, xattn_e, cosine in (
        ("aligned@raw", 0.10, 0.16, 0.7),
        ("rotated@raw", 0.20, 0.14, 0.0),
    ):
        backbone, _ = feature_set.split("@")
        for method, head, e_inf in (
            ("concat", "concat", concat_e),
            ("xattn_txt2img", "xattn_txt2img", xattn_e),
        ):
            fits.append(
                {"feature_set": feature_set, "method": method, "head": head, "identifiable": True}
            )
            samples.append(
                pd.DataFrame(
                    {
                        "feature_set": feature_set,
                        "method": method,
                        "resample": np.arange(200),
                        "e_inf": e_inf + rng.normal(0, 0.005, 200),
                        "b": 2.0,
                        "c": 0.5,
                    }
                )
            )
        for metric, value in (("cosine_gap", cosine), ("mutual_knn", 0.6), ("cka", 0.8)):
            alignment.append(
                {"backbone": backbone, "alignment": "raw", "metric": metric, "value": value}
            )
    write_frame(pd.DataFrame(fits), root / "tables" / "theory_fits.parquet")
    write_frame(pd.concat(samples), root / "tables" / "theory_fit_samples.parquet")
    write_frame(pd.DataFrame(alignment), root / "alignment" / "made_up.parquet")
    return root


def test_aligned_features_are_placed_on_the_aligned_curves_and_get_concat(tmp_path, study):
    advice = advise(*pair(tmp_path, "a", rotate=False), n=5000, results=study)
    assert advice["nearest_feature_set"] == "aligned@raw"
    assert advice["recommendation"] == CONCAT
    (gap,) = advice["predicted_gap"]
    assert gap["gap_pts"] == pytest.approx(6.0, abs=0.5) and gap["low_pts"] > 0


def test_the_recommendation_flips_for_rotated_features(tmp_path, study):
    advice = advise(*pair(tmp_path, "r", rotate=True), n=5000, results=study)
    assert advice["nearest_feature_set"] == "rotated@raw"
    assert advice["recommendation"] == CROSS_ATTENTION


def test_without_a_study_the_theory_alone_speaks_and_says_so(tmp_path):
    advice = advise(*pair(tmp_path, "a", rotate=False), n=5000)
    assert advice["recommendation"] == CONCAT and "theory alone" in advice["basis"]
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
            "5000",
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
