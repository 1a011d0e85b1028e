import itertools

import numpy as np
import pandas as pd
import pytest

from alignfuse.data.pairs import make_pairs, write_pairs
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import read_metadata

FIVE_EACH = {"train": [5] * 12, "dev": [5] * 4, "test": [5] * 5}


def flickr_like_captions(captions_per_image: dict[str, list[int]]) -> pd.DataFrame:
    """Captions with Flickr8k-style ids ("<photo>.jpg", "<photo>.jpg#k"); one list entry per image."""
    rows = []
    photo = 1000268201
    for split, counts in captions_per_image.items():
        for count in counts:
            photo += 7919
            image = f"{photo}_{photo % 997:x}b08cb0e.jpg"
            rows += [
                (image, f"{image}#{k}", f"a caption {k} of {image}", split) for k in range(count)
            ]
    return pd.DataFrame(rows, columns=["image_id", "caption_id", "caption", "split"])


@pytest.fixture(scope="module")
def captions() -> pd.DataFrame:
    return flickr_like_captions(FIVE_EACH)


@pytest.fixture(scope="module")
def pairs(captions) -> dict[str, pd.DataFrame]:
    return make_pairs(captions, seed=0)


def image_of(captions: pd.DataFrame) -> dict[str, str]:
    return dict(zip(captions["caption_id"], captions["image_id"], strict=True))


def test_every_split_gets_columns_and_one_positive_and_one_negative_per_caption(captions, pairs):
    assert list(pairs) == ["train", "dev", "test"]
    for split, frame in pairs.items():
        assert list(frame.columns) == ["image_id", "caption_id", "label"]
        assert frame["label"].dtype == np.int8
        assert len(frame) == 2 * (captions["split"] == split).sum()


def test_rows_interleave_positive_and_negative_of_the_same_image(pairs):
    for frame in pairs.values():
        assert list(frame["label"]) == [1, 0] * (len(frame) // 2)
        images = frame["image_id"].to_numpy()
        assert np.array_equal(images[0::2], images[1::2])


def test_every_even_length_prefix_is_exactly_balanced(pairs):
    for frame in pairs.values():
        labels = frame["label"].to_numpy()
        positives = np.cumsum(labels)[1::2]
        assert np.array_equal(positives, np.arange(1, len(labels) // 2 + 1))


def test_training_scales_are_nested_prefixes_of_one_file(captions, pairs):
    """make_pairs takes no scale: each scale reads a prefix of the same train file."""
    train = pairs["train"]
    prefixes = [train.iloc[:n] for n in (8, 16, 32, len(train))]
    for small, large in itertools.pairwise(prefixes):
        pd.testing.assert_frame_equal(small, large.iloc[: len(small)])
    for prefix in prefixes:
        assert prefix["label"].sum() * 2 == len(prefix)


def test_positives_pair_each_caption_with_its_own_image(captions, pairs):
    image = image_of(captions)
    for frame in pairs.values():
        positives = frame[frame["label"] == 1]
        assert all(positives["caption_id"].map(image) == positives["image_id"])


def test_no_negative_pairs_an_image_with_its_own_caption(captions, pairs):
    image = image_of(captions)
    for frame in pairs.values():
        negatives = frame[frame["label"] == 0]
        assert not any(negatives["caption_id"].map(image) == negatives["image_id"])


def test_each_caption_and_image_is_equally_often_positive_and_negative(captions, pairs):
    """So a model that sees only the caption, or only the image, is at chance."""
    for split, frame in pairs.items():
        own = captions[captions["split"] == split]
        for column in ("caption_id", "image_id"):
            counts = frame.groupby([column, "label"]).size().unstack()
            assert np.array_equal(counts[0], counts[1])
        by_caption = frame.groupby("caption_id")["label"].agg(["size", "sum"])
        assert set(by_caption.index) == set(own["caption_id"])
        assert (by_caption["size"] == 2).all() and (by_caption["sum"] == 1).all()


def test_same_seed_gives_identical_pairs_and_another_seed_different_ones(captions, pairs):
    again, other = make_pairs(captions, seed=0), make_pairs(captions, seed=1)
    for split in pairs:
        pd.testing.assert_frame_equal(pairs[split], again[split])
        assert not pairs[split].equals(other[split])


def test_splits_never_share_images_or_captions(pairs):
    for column in ("image_id", "caption_id"):
        sets = [set(frame[column]) for frame in pairs.values()]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_test_pairs_depend_only_on_the_test_captions_and_the_seed(captions, pairs):
    shuffled = captions.sample(frac=1.0, random_state=3)
    fewer_train = captions.drop(captions.index[captions["split"] == "train"][:10])
    for changed in (shuffled, fewer_train):
        pd.testing.assert_frame_equal(make_pairs(changed, seed=0)["test"], pairs["test"])


def test_negatives_are_repaired_when_a_split_has_only_two_images():
    """With two images every negative must take the other image's caption."""
    captions = flickr_like_captions({"train": [5, 5], "dev": [6, 6], "test": [2, 2]})
    image = image_of(captions)
    for seed in range(5):
        for frame in make_pairs(captions, seed).values():
            negatives = frame[frame["label"] == 0]
            assert not any(negatives["caption_id"].map(image) == negatives["image_id"])


def test_uneven_captions_per_image_still_give_valid_balanced_pairs():
    captions = flickr_like_captions(
        {"train": [5, 3, 4, 5, 1, 2], "dev": [1, 1, 2], "test": [3, 2, 1]}
    )
    image = image_of(captions)
    for frame in make_pairs(captions, seed=2).values():
        negatives = frame[frame["label"] == 0]
        assert not any(negatives["caption_id"].map(image) == negatives["image_id"])
        counts = frame.groupby(["image_id", "label"]).size().unstack()
        assert np.array_equal(counts[0], counts[1])


@pytest.mark.parametrize(("dev", "found"), [([5], "holds 1 image"), ([], "holds 0 image")])
def test_a_split_with_fewer_than_two_images_is_an_error_naming_the_split(dev, found):
    captions = flickr_like_captions({"train": [5, 5], "dev": dev, "test": [5, 5]})
    with pytest.raises(AlignfuseError, match=f"split 'dev' {found}"):
        make_pairs(captions, seed=0)


def test_an_image_with_more_than_half_of_a_split_is_an_error():
    captions = flickr_like_captions({"train": [5, 5], "dev": [6, 3, 2], "test": [5, 5]})
    with pytest.raises(AlignfuseError, match="split 'dev': one image holds 6 of 11 captions"):
        make_pairs(captions, seed=0)


def test_inconsistent_captions_are_errors_naming_the_problem(captions):
    with pytest.raises(AlignfuseError, match="occurs more than once"):
        make_pairs(pd.concat([captions, captions.iloc[:1]]), seed=0)
    moved = captions.copy()
    moved.loc[moved.index[0], "split"] = "test"
    with pytest.raises(AlignfuseError, match="more than one split"):
        make_pairs(moved, seed=0)
    with pytest.raises(AlignfuseError, match="lacks column"):
        make_pairs(captions.drop(columns="split"), seed=0)


def test_write_pairs_writes_the_three_split_files(tmp_path, captions, pairs):
    captions.to_parquet(tmp_path / "captions.parquet")
    write_pairs(tmp_path / "captions.parquet", tmp_path / "pairs", seed=0)
    assert sorted(p.name for p in (tmp_path / "pairs").iterdir()) == [
        "dev.parquet",
        "test.parquet",
        "train.parquet",
    ]
    for split, frame in pairs.items():
        written = pd.read_parquet(tmp_path / "pairs" / f"{split}.parquet")
        pd.testing.assert_frame_equal(written, frame)
        assert read_metadata(tmp_path / "pairs" / f"{split}.parquet")["seed"] == 0


def test_write_pairs_errors_name_the_captions_file(tmp_path, captions):
    with pytest.raises(AlignfuseError, match="missing.parquet: captions file not found"):
        write_pairs(tmp_path / "missing.parquet", tmp_path / "pairs", seed=0)
    captions[captions["split"] != "dev"].to_parquet(tmp_path / "captions.parquet")
    with pytest.raises(AlignfuseError, match=r"captions\.parquet: split 'dev' holds 0 image"):
        write_pairs(tmp_path / "captions.parquet", tmp_path / "pairs", seed=0)
    assert not (tmp_path / "pairs").exists()
