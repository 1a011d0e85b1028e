import zipfile

import pandas as pd
import pytest
from flickr8k_fixture import STRAY, make_flickr8k_archives

from alignfuse.data.flickr8k import read_captions, write_captions
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import read_metadata


@pytest.fixture
def archives(tmp_path):
    return make_flickr8k_archives(tmp_path / "data")


def edit_text_zip(archives, tmp_path, edits):
    """A copy of the fixture's text zip with ``edits[member](text) -> text`` applied."""
    out = tmp_path / "variant_text.zip"
    with zipfile.ZipFile(archives.text_zip) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename in edits:
                data = edits[info.filename](data.decode()).encode()
            dst.writestr(info.filename, data)
    return out


def insert_line(text, number, line):
    lines = text.splitlines()
    return "\n".join(lines[: number - 1] + [line] + lines[number - 1 :]) + "\n"


def test_counts_per_split_match_the_official_files(archives):
    frame, report = read_captions(archives.text_zip, archives.images_zip)
    assert list(frame.columns) == ["image_id", "caption_id", "caption", "split"]
    assert frame.groupby("split").size().to_dict() == {"train": 120, "dev": 40, "test": 40}
    assert report["captions"] == {"train": 120, "dev": 40, "test": 40}
    assert report["images"] == {"train": 24, "dev": 8, "test": 8}
    assert report["captions_per_image"] == {"5": 40}
    for split, images in archives.splits.items():
        assert set(frame.loc[frame["split"] == split, "image_id"]) == set(images)
    assert report["missing_from_image_archive"] == []


def test_rows_are_sorted_by_split_then_image_then_k(archives):
    frame, _ = read_captions(archives.text_zip, None)
    order = frame["split"].map({"train": 0, "dev": 1, "test": 2})
    k = frame["caption_id"].str.rsplit("#", n=1).str[1].astype(int)
    keys = list(zip(order, frame["image_id"], k, strict=True))
    assert keys == sorted(keys)
    assert (frame["caption_id"] == frame["image_id"] + "#" + k.astype(str)).all()
    assert frame["caption_id"].is_unique


def test_stray_jpg1_entries_are_dropped_and_reported(archives, capsys, tmp_path):
    report = write_captions(archives.text_zip, archives.images_zip, tmp_path / "captions.parquet")
    assert report["strays_dropped"]["images"] == [STRAY]
    assert report["strays_dropped"]["captions"] == 5
    frame = pd.read_parquet(tmp_path / "captions.parquet")
    assert not frame["image_id"].str.contains(".jpg.1", regex=False).any()
    assert STRAY in capsys.readouterr().err


def test_report_is_stored_in_the_parquet_metadata(archives, tmp_path):
    out = tmp_path / "captions.parquet"
    report = write_captions(archives.text_zip, archives.images_zip, out)
    metadata = read_metadata(out)
    assert metadata["dataset"] == "flickr8k"
    assert metadata["report"] == report
    assert len(pd.read_parquet(out)) == 200


def test_malformed_token_line_names_file_archive_and_line(archives, tmp_path):
    text_zip = edit_text_zip(
        archives,
        tmp_path,
        {"Flickr8k.token.txt": lambda t: insert_line(t, 7, "no tab in this line")},
    )
    with pytest.raises(
        AlignfuseError, match=r"Flickr8k\.token\.txt line 7 \(in .*variant_text\.zip\): no tab"
    ):
        read_captions(text_zip, None)


def test_skip_mode_counts_malformed_lines(archives, tmp_path):
    bad = {
        "Flickr8k.token.txt": lambda t: insert_line(
            insert_line(t, 3, "x.jpg\tno index"), 9, "y.jpg#0\t"
        )
    }
    text_zip = edit_text_zip(archives, tmp_path, bad)
    frame, report = read_captions(text_zip, None, on_malformed="skip")
    assert len(frame) == 200
    assert report["malformed_skipped"]["count"] == 2
    lines = report["malformed_skipped"]["lines"]
    assert [(b["line"], b["problem"]) for b in lines] == [
        (3, "'x.jpg' is not '<image>.jpg#<k>' with a number k"),
        (9, "'y.jpg#0' has an empty caption"),
    ]


def test_duplicate_caption_ids_error(archives, tmp_path):
    first = f"{archives.splits['dev'][0]}#2\tA copy ."
    text_zip = edit_text_zip(archives, tmp_path, {"Flickr8k.token.txt": lambda t: t + first + "\n"})
    with pytest.raises(AlignfuseError, match=r"caption id '.*#2' repeats line \d+"):
        read_captions(text_zip, None)


def test_crlf_and_blank_lines_are_tolerated(archives, tmp_path):
    def crlf(text):
        return text.replace("\n", "\r\n\r\n")

    edits = {"Flickr8k.token.txt": crlf, "Flickr_8k.trainImages.txt": crlf}
    frame, report = read_captions(edit_text_zip(archives, tmp_path, edits), None)
    assert report["captions"] == {"train": 120, "dev": 40, "test": 40}
    assert not frame["caption"].str.contains("\r").any()


def test_captions_of_images_in_no_split_are_dropped_and_counted(archives, tmp_path):
    dropped = archives.splits["test"][-1]
    edits = {"Flickr_8k.testImages.txt": lambda t: t.replace(dropped + "\n", "")}
    frame, report = read_captions(edit_text_zip(archives, tmp_path, edits), None)
    assert dropped not in set(frame["image_id"])
    assert report["not_in_split"] == {"images": 1, "captions": 5, "names": [dropped]}


def test_split_image_without_captions_errors_or_is_counted(archives, tmp_path):
    edits = {"Flickr_8k.devImages.txt": lambda t: t + "9999999999_0000000000.jpg\n"}
    text_zip = edit_text_zip(archives, tmp_path, edits)
    with pytest.raises(
        AlignfuseError, match="devImages.txt.*no captions.*9999999999_0000000000.jpg"
    ):
        read_captions(text_zip, None)
    _, report = read_captions(text_zip, None, on_malformed="skip")
    assert report["split_images_without_captions"] == ["9999999999_0000000000.jpg"]


def test_image_in_two_splits_is_an_error(archives, tmp_path):
    edits = {"Flickr_8k.testImages.txt": lambda t: t + archives.splits["train"][0] + "\n"}
    with pytest.raises(AlignfuseError, match="already listed in the train split"):
        read_captions(edit_text_zip(archives, tmp_path, edits), None)


def test_split_images_missing_from_image_archive_are_reported_and_kept(archives, tmp_path, capsys):
    missing = archives.splits["train"][3]
    images_zip = tmp_path / "fewer_images.zip"
    with zipfile.ZipFile(archives.images_zip) as src, zipfile.ZipFile(images_zip, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith(missing):
                dst.writestr(info, src.read(info))
    report = write_captions(archives.text_zip, images_zip, tmp_path / "captions.parquet")
    assert report["missing_from_image_archive"] == [missing]
    assert report["captions"]["train"] == 120
    assert "missing from fewer_images.zip" in capsys.readouterr().err


def test_missing_token_file_names_the_archive(archives, tmp_path):
    text_zip = tmp_path / "empty_text.zip"
    with zipfile.ZipFile(text_zip, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(AlignfuseError, match="no Flickr8k.token.txt.*not Flickr8k_text.zip"):
        read_captions(text_zip, None)


def test_no_output_is_left_on_error(archives, tmp_path):
    text_zip = edit_text_zip(archives, tmp_path, {"Flickr8k.token.txt": lambda t: "garbage\n" + t})
    out = tmp_path / "out" / "captions.parquet"
    with pytest.raises(AlignfuseError):
        write_captions(text_zip, None, out)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_skip_drops_images_that_cannot_be_decoded_or_are_missing_with_their_captions(tmp_path):
    from flickr8k_fixture import image_name

    damaged, absent = image_name(3), image_name(30)
    archives = make_flickr8k_archives(tmp_path / "mirror", corrupt=(damaged,))
    with (
        zipfile.ZipFile(archives.images_zip) as source,
        zipfile.ZipFile(tmp_path / "images.zip", "w") as target,
    ):
        for info in source.infolist():
            if not info.filename.endswith(absent):
                target.writestr(info, source.read(info))
    frame, report = read_captions(archives.text_zip, tmp_path / "images.zip", on_bad_image="skip")
    assert damaged not in set(frame["image_id"]) and absent not in set(frame["image_id"])
    assert report["bad_images_dropped"][damaged].startswith("cannot be decoded")
    assert report["bad_images_dropped"][absent] == "is missing from the archive"
    assert report["images"]["train"] == 23 and report["images"]["dev"] == 7
    kept, _ = read_captions(archives.text_zip, tmp_path / "images.zip")
    assert damaged in set(kept["image_id"])  # error mode leaves it to the features stage
