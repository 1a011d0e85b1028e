import numpy as np
import pandas as pd
import pytest

import alignfuse
from alignfuse.data.datasets import synthetic_split_images
from alignfuse.data.synthetic import synthetic_captions, write_captions
from alignfuse.errors import AlignfuseError
from alignfuse.features.synthetic import rotation_seed, synthetic_features, write_features
from alignfuse.parquet import read_embeddings, read_metadata
from alignfuse.rotation import fractional_rotation


def generator(**overrides) -> dict:
    cfg = {
        "n_images": 60,
        "captions_per_image": 3,
        "split": {"train": 0.5, "dev": 0.25, "test": 0.25},
        "latent_dim": 8,
        "private_dim": 4,
        "private_scale": 1.0,
        "caption_noise": 0.5,
        "noise": 0.1,
        "d_image": 64,
        "d_text": 64,
        "seed": 0,
    }
    return {**cfg, **overrides}


def cosines(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    return v @ t.T


def matched_and_mismatched(cfg: dict, rotation: float) -> tuple[float, float]:
    """Mean cosine of image-caption pairs of the same image and of different images."""
    _, v, _, t = synthetic_features(cfg, rotation)
    c = cosines(np.repeat(v, cfg["captions_per_image"], axis=0), t)
    own = np.repeat(np.arange(cfg["n_images"]), cfg["captions_per_image"])
    same = own[:, None] == own[None, :]
    return c[same].mean(), c[~same].mean()


def test_features_have_the_configured_shapes_and_are_float32():
    cfg = generator(d_image=48, d_text=64)
    ids_img, v, ids_cap, t = synthetic_features(cfg, 0.5)
    assert v.shape == (60, 48) and t.shape == (180, 64)
    assert v.dtype == np.float32 and t.dtype == np.float32
    assert list(ids_img[:2]) == ["img00000", "img00001"]
    assert list(ids_cap[:4]) == ["img00000#0", "img00000#1", "img00000#2", "img00001#0"]


def test_features_are_determined_by_the_seed():
    first, again, other = (synthetic_features(generator(seed=s), 0.3) for s in (1, 1, 2))
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    assert not np.allclose(first[1], other[1])
    assert not np.allclose(first[3], other[3])


def test_vectors_have_unit_norm_on_average():
    _, v, _, t = synthetic_features(generator(n_images=400), 1.0)
    assert np.mean(np.sum(v**2, axis=1)) == pytest.approx(1.0, abs=0.1)
    assert np.mean(np.sum(t**2, axis=1)) == pytest.approx(1.0, abs=0.1)


def test_aligned_matched_cosine_is_far_above_the_mismatched_one():
    matched, mismatched = matched_and_mismatched(generator(), 0.0)
    assert matched > 0.3
    assert abs(mismatched) < 0.05


def test_rotated_text_keeps_the_information_but_loses_the_coordinate_correspondence():
    cfg = generator()
    ids_img, v0, ids_cap, t0 = synthetic_features(cfg, 0.0)
    ids_img1, v1, ids_cap1, t1 = synthetic_features(cfg, 1.0)
    assert np.array_equal(v0, v1)
    assert np.array_equal(ids_img, ids_img1) and np.array_equal(ids_cap, ids_cap1)
    q = fractional_rotation(cfg["d_text"], 1.0, rotation_seed(cfg))
    np.testing.assert_allclose(t1, t0 @ q.T, atol=1e-6)
    matched, mismatched = matched_and_mismatched(cfg, 1.0)
    assert abs(matched) < 0.1
    assert abs(mismatched) < 0.05


def test_alignment_falls_as_the_rotation_grows():
    gaps = [np.subtract(*matched_and_mismatched(generator(), r)) for r in (0.0, 0.5, 1.0)]
    assert gaps[0] > gaps[1] > gaps[2]


@pytest.mark.parametrize(
    ("n_images", "split"),
    [
        (60, {"train": 0.5, "dev": 0.25, "test": 0.25}),
        (37, {"train": 0.7, "dev": 0.2, "test": 0.1}),
    ],
)
def test_split_sizes_are_those_the_config_validation_assumes(n_images, split):
    cfg = generator(n_images=n_images, split=split)
    captions = synthetic_captions(cfg)
    expected = synthetic_split_images(n_images, split)
    images = captions.groupby("split")["image_id"].nunique().to_dict()
    assert images == expected
    rows = captions["split"].value_counts().to_dict()
    assert rows == {s: n * cfg["captions_per_image"] for s, n in expected.items()}


def test_captions_line_up_with_the_text_feature_rows():
    cfg = generator()
    captions = synthetic_captions(cfg)
    ids_img, _, ids_cap, _ = synthetic_features(cfg, 0.0)
    assert list(captions.columns) == ["image_id", "caption_id", "caption", "split"]
    assert list(captions["caption_id"]) == list(ids_cap)
    assert list(captions["image_id"].unique()) == list(ids_img)
    assert captions["caption_id"].is_unique
    assert captions.groupby("image_id")["split"].nunique().max() == 1
    assert captions["caption"].str.len().gt(0).all()


def test_subspaces_that_do_not_fit_name_the_keys_and_the_fix():
    with pytest.raises(
        AlignfuseError, match=r"dataset\.synthetic\.latent_dim.*private_dim.*d_image"
    ):
        synthetic_features(generator(latent_dim=40, private_dim=20), 0.0)
    with pytest.raises(AlignfuseError, match="lower latent_dim"):
        synthetic_captions(generator(latent_dim=40, private_dim=20))


def test_a_split_too_small_to_pair_names_the_keys():
    with pytest.raises(AlignfuseError, match=r"dataset\.synthetic\.n_images.*the dev split gets 1"):
        synthetic_captions(generator(n_images=10, split={"train": 0.8, "dev": 0.15, "test": 0.05}))


def test_files_round_trip_with_their_provenance(tmp_path):
    cfg = generator()
    write_captions(cfg, tmp_path / "captions.parquet")
    write_features(cfg, "rotated", 1.0, tmp_path / "image.parquet", tmp_path / "text.parquet")

    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "captions.parquet"), synthetic_captions(cfg)
    )
    assert read_metadata(tmp_path / "captions.parquet") == {"generator": cfg}

    ids_img, v, ids_cap, t = synthetic_features(cfg, 1.0)
    for name, ids, emb in (("image", ids_img, v), ("text", ids_cap, t)):
        read_ids, read_emb = read_embeddings(tmp_path / f"{name}.parquet")
        assert np.array_equal(read_ids, ids) and np.array_equal(read_emb, emb)
        assert read_metadata(tmp_path / f"{name}.parquet") == {
            "encoder": "rotated",
            "library": "synthetic",
            "rotation": 1.0,
            "generator": cfg,
            "alignfuse": alignfuse.__version__,
        }
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "captions.parquet",
        "image.parquet",
        "text.parquet",
    ]
