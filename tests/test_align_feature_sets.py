"""The alignment stage's files: degraded and contrastive feature sets, and their measurements."""

import numpy as np
import pandas as pd
import pytest

from alignfuse.align.contrastive_set import write_contrastive
from alignfuse.align.degraded_set import write_degraded
from alignfuse.align.feature_sets import read_feature_set
from alignfuse.align.measurements import measure, write_measurements
from alignfuse.data.synthetic import synthetic_captions
from alignfuse.features.synthetic import synthetic_features
from alignfuse.parquet import read_embeddings, read_metadata, write_embeddings, write_frame

GENERATOR = {
    "n_images": 240,
    "captions_per_image": 3,
    "split": {"train": 0.5, "dev": 0.25, "test": 0.25},
    "latent_dim": 8,
    "private_dim": 4,
    "private_scale": 1.0,
    "caption_noise": 0.3,
    "noise": 0.05,
    "d_image": 32,
    "d_text": 32,
    "seed": 0,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("align_files")
    write_frame(synthetic_captions(GENERATOR), root / "captions.parquet")
    for name, rotation in (("aligned", 0.0), ("rotated", 1.0)):
        images, v, captions, t = synthetic_features(GENERATOR, rotation)
        write_embeddings(root / name / "image.parquet", "image_id", images, v)
        write_embeddings(root / name / "text.parquet", "caption_id", captions, t)
    return root


def paths(files, name):
    return files / name / "image.parquet", files / name / "text.parquet", files / "captions.parquet"


def test_a_degradation_at_level_zero_writes_the_features_unchanged(files, tmp_path):
    write_degraded(*paths(files, "aligned"), "noise-0", 0, tmp_path / "text.parquet")
    ids, t = read_embeddings(tmp_path / "text.parquet")
    source_ids, source = read_embeddings(files / "aligned" / "text.parquet")
    order = pd.Index(source_ids).get_indexer(ids)
    np.testing.assert_array_equal(t, source[order])


def test_shuffling_replaces_captions_only_within_their_own_split(files, tmp_path):
    write_degraded(*paths(files, "aligned"), "shuffle-1", 3, tmp_path / "text.parquet")
    features = read_feature_set(
        files / "aligned" / "image.parquet", tmp_path / "text.parquet", files / "captions.parquet"
    )
    original = read_feature_set(*paths(files, "aligned"))
    for split in ("train", "dev", "test"):
        _, shuffled, _ = features.split(split)
        _, before, _ = original.split(split)
        assert not np.array_equal(shuffled, before)
        # every replacement is one of the split's own caption vectors
        assert {r.tobytes() for r in shuffled} <= {r.tobytes() for r in before}
    assert read_metadata(tmp_path / "text.parquet")["degradation"]["kind"] == "shuffle"


def test_contrastive_projections_align_an_unaligned_pair_and_record_their_provenance(
    files, tmp_path
):
    settings = {"dim": 16, "epochs": 40, "batch_size": 32, "patience": 5}
    provenance = write_contrastive(
        *paths(files, "rotated"), settings, tmp_path / "image.parquet", tmp_path / "text.parquet"
    )
    sets = [
        {"backbone": "b", "alignment": "raw", "image": files / "rotated" / "image.parquet"},
        {"backbone": "b", "alignment": "contrastive", "image": tmp_path / "image.parquet"},
    ]
    sets[0]["text"], sets[1]["text"] = files / "rotated" / "text.parquet", tmp_path / "text.parquet"
    recall = measure(sets, files / "captions.parquet").set_index(["alignment", "metric"])["value"]
    before, after = recall["raw", "text_to_image_R@1"], recall["contrastive", "text_to_image_R@1"]
    assert after > 3 * max(before, 1 / 60)  # 60 test images: chance 1/60
    assert read_embeddings(tmp_path / "image.parquet")[1].shape == (240, 16)
    metadata = read_metadata(tmp_path / "text.parquet")
    assert metadata["settings"] == settings and metadata == provenance
    assert metadata["record"]["best_epoch"] <= metadata["record"]["epochs"]


def test_measurements_cover_every_feature_set_and_separate_rotation_from_information(
    files, tmp_path
):
    write_degraded(*paths(files, "aligned"), "rotation-1", 0, tmp_path / "rotated_text.parquet")
    sets = [
        {
            "backbone": "b",
            "alignment": "raw",
            "image": files / "aligned" / "image.parquet",
            "text": files / "aligned" / "text.parquet",
        },
        {
            "backbone": "b",
            "alignment": "rotation-1",
            "image": files / "aligned" / "image.parquet",
            "text": tmp_path / "rotated_text.parquet",
        },
    ]
    frame = measure(sets, files / "captions.parquet")
    value = frame.set_index(["alignment", "metric"])["value"]
    assert value["rotation-1", "cka"] == pytest.approx(value["raw", "cka"], abs=1e-6)
    assert value["rotation-1", "text_to_image_R@1"] < value["raw", "text_to_image_R@1"] / 2
    write_measurements(frame, tmp_path / "metrics.parquet")
    text = (tmp_path / "metrics.md").read_text()
    assert "b@rotation-1" in text and "| chance" in text
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == len(frame)
