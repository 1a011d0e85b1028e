"""The folder dataset kind: a user's images and captions file become the captions table."""

import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from alignfuse.data.example_folder import make_example_folder
from alignfuse.data.folder import read_captions, split_captions, write_captions
from alignfuse.data.pairs import make_pairs
from alignfuse.errors import AlignfuseError

SPLIT = {"train": 0.8, "dev": 0.1, "test": 0.1}


def folder_config(images, captions, **overrides) -> dict:
    return {
        "images": str(images),
        "captions": str(captions),
        "split": SPLIT,
        "seed": 0,
        "on_bad_image": "error",
    } | overrides


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """A 40-image example folder with three captions per image (read-only for tests)."""
    images, captions = make_example_folder(tmp_path_factory.mktemp("example"), 40, 3)
    return images, captions


def rewritten(example, tmp_path, edit) -> Path:
    """A copy of the example's captions CSV after ``edit(frame) -> frame``."""
    frame = edit(pd.read_csv(example[1], dtype=str, keep_default_na=False))
    out = tmp_path / "captions.csv"
    frame.to_csv(out, index=False)
    return out


def test_folder_captions_follow_the_contract_with_ids_per_image(example):
    table, report = read_captions(folder_config(*example))
    assert list(table.columns) == ["image_id", "caption_id", "caption", "split"]
    assert table["caption_id"].is_unique
    assert table["image_id"].str.match(r"^(circle|square|stripe)/\d{4}\.jpg$").all()
    assert set(table["caption_id"].str.rsplit("#", n=1).str[1]) == {"0", "1", "2"}
    assert report["images"] == {"train": 32, "dev": 4, "test": 4}
    assert report["captions"] == {"train": 96, "dev": 12, "test": 12}
    assert report["captions_per_image"] == {"3": 40}


def test_folder_seeded_split_keeps_an_images_captions_together_whatever_the_row_order(
    example, tmp_path
):
    table, _ = read_captions(folder_config(*example))
    assert (table.groupby("image_id")["split"].nunique() == 1).all()
    shuffled = rewritten(example, tmp_path, lambda f: f.sample(frac=1, random_state=3))
    again, _ = read_captions(folder_config(example[0], shuffled))
    splits = table.drop_duplicates("image_id").set_index("image_id")["split"]
    assert again.drop_duplicates("image_id").set_index("image_id")["split"].equals(splits)
    other, _ = read_captions(folder_config(*example, seed=1))
    assert not other.drop_duplicates("image_id").set_index("image_id")["split"].equals(splits)


def test_folder_split_column_is_used_when_given(example, tmp_path):
    def given(frame):
        images = sorted(frame["image"].unique())
        split_of = {image: "train" for image in images[:30]}
        split_of |= {image: "dev" for image in images[30:35]}
        split_of |= {image: "test" for image in images[35:]}
        return frame.assign(split=frame["image"].map(split_of))

    table, report = read_captions(folder_config(example[0], rewritten(example, tmp_path, given)))
    assert report["images"] == {"train": 30, "dev": 5, "test": 5}
    assert report["split_from"] == "the split column"


def test_folder_json_lines_read_like_csv_and_zipped_images_like_the_folder(example, tmp_path):
    frame = pd.read_csv(example[1])
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict("records")))
    zipped = tmp_path / "images.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for path in sorted(example[0].rglob("*.jpg")):
            zf.write(path, path.relative_to(example[0]).as_posix())
    expected, _ = read_captions(folder_config(*example))
    table, _ = read_captions(folder_config(zipped, jsonl))
    pd.testing.assert_frame_equal(table, expected)


def test_folder_with_one_caption_per_image_gives_balanced_pairs(tmp_path):
    """One caption per image: each image and each caption is once a positive and once a
    negative, so neither modality alone beats chance, and a split has 2 x images pairs."""
    images, captions = make_example_folder(tmp_path, 40, 1)
    table, _ = read_captions(folder_config(images, captions))
    for split, pairs in make_pairs(table, seed=0).items():
        n_images = (table["split"] == split).sum()
        assert len(pairs) == 2 * n_images
        for column in ("image_id", "caption_id"):
            counts = pairs.groupby([column, "label"]).size().unstack()
            assert (counts[0] == 1).all() and (counts[1] == 1).all()
        negatives = pairs[pairs["label"] == 0]
        assert (negatives["caption_id"].str.rsplit("#", n=1).str[0] != negatives["image_id"]).all()


MALFORMED = [
    (
        "missing column",
        lambda f: f.rename(columns={"caption": "text"}),
        r"captions\.csv: no column\(s\) caption \(found: image, text\)",
    ),
    (
        "duplicate row",
        lambda f: pd.concat([f, f.iloc[[4]]]),
        r"captions\.csv: 1 duplicate row\(s\), e\.g\. lines 6, 122 repeat image",
    ),
    (
        "duplicate row spelled differently",
        lambda f: pd.concat([f, f.iloc[[4]].assign(image="./" + f["image"].iloc[4])]),
        r"captions\.csv: 1 duplicate row\(s\), e\.g\. lines 6, 122 repeat image",
    ),
    (
        "empty caption",
        lambda f: f.assign(caption=f["caption"].where(f.index != 9, " ")),
        r"captions\.csv: empty 'caption' on line\(s\) 11",
    ),
    (
        "escaping path",
        lambda f: f.assign(image=f["image"].where(f.index != 0, "../secret.jpg")),
        r"'\.\./secret\.jpg' \(line 2\) has a '\.\.' path component",
    ),
    (
        "unknown split",
        lambda f: f.assign(split=["val" if i == 0 else "train" for i in range(len(f))]),
        r"captions\.csv line 2: split 'val' is not one of train, dev, test",
    ),
    (
        "image in two splits",
        lambda f: f.assign(split=["dev" if i == 1 else "train" for i in range(len(f))]),
        r"image '.*' is in more than one split \(line 2: train, line 3: dev, line 4: train\)",
    ),
    (
        "split too small",
        lambda f: f.assign(split="train"),
        r"captions\.csv: the dev split gets 0 image\(s\).*add rows for this split",
    ),
]


@pytest.mark.parametrize(
    ("edit", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_folder_captions_are_refused_with_one_message(example, tmp_path, edit, message):
    cfg = folder_config(example[0], rewritten(example, tmp_path, edit))
    with pytest.raises(AlignfuseError, match=message):
        split_captions(cfg)  # what the config check runs before any job
    out = tmp_path / "results" / "captions.parquet"
    with pytest.raises(AlignfuseError, match=message):
        write_captions(cfg, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_folder_missing_images_are_listed_with_their_lines(example, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(example[0], images)
    frame = pd.read_csv(example[1])
    gone = sorted(frame["image"].unique())[:7]
    for image in gone:
        (images / image).unlink()
    with pytest.raises(AlignfuseError) as err:
        read_captions(folder_config(images, example[1]))
    message = str(err.value)
    assert message.startswith(f"{example[1]}: 7 image path(s) not found under {images}: ")
    first = frame.index[frame["image"] == gone[0]][0] + 2
    assert f"'{gone[0]}' (line {first}) is missing from the folder" in message
    assert "and 2 more" in message and gone[6] not in message


def test_folder_image_that_cannot_be_decoded_is_an_error_or_skipped_with_its_captions(
    example, tmp_path
):
    images = tmp_path / "images"
    shutil.copytree(example[0], images)
    damaged = sorted(pd.read_csv(example[1])["image"].unique())[0]
    data = (images / damaged).read_bytes()
    (images / damaged).write_bytes(data[: len(data) // 3])
    with pytest.raises(AlignfuseError, match=rf"1 image\(s\) cannot be decoded: '{damaged}'"):
        read_captions(folder_config(images, example[1]))
    table, report = read_captions(folder_config(images, example[1], on_bad_image="skip"))
    assert damaged not in set(table["image_id"]) and len(table) == 117
    assert report["bad_images_dropped"][damaged].startswith("cannot be decoded")


def test_folder_symlink_out_of_the_images_root_is_refused(example, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(example[0], images)
    outside = tmp_path / "outside.jpg"
    target = sorted(pd.read_csv(example[1])["image"].unique())[0]
    shutil.move(images / target, outside)
    (images / target).symlink_to(outside)
    with pytest.raises(AlignfuseError, match="leads outside the images folder"):
        read_captions(folder_config(images, example[1]))


def test_folder_captions_file_of_another_format_names_the_key(example, tmp_path):
    other = tmp_path / "captions.xlsx"
    other.write_bytes(b"")
    with pytest.raises(AlignfuseError, match=r"'dataset\.folder\.captions'.*neither \.csv nor"):
        split_captions(folder_config(example[0], other))


def test_example_folder_command_writes_what_the_folder_example_preset_reads(tmp_path):
    """The README's first command: images under <dir>/images, one CSV row per caption."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "alignfuse.cli", "example-folder", str(tmp_path / "ex")]
        + ["--images", "12", "--captions-per-image", "2"],
        check=True,
        capture_output=True,
    )
    frame = pd.read_csv(tmp_path / "ex/captions.csv")
    assert list(frame.columns) == ["image", "caption"] and len(frame) == 24
    assert all((tmp_path / "ex/images" / image).is_file() for image in frame["image"])
