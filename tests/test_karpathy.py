import json
import zipfile

import pytest
import yaml
from karpathy_fixture import edit_captions_zip, make_karpathy_archives
from workflow_runner import ROOT

from alignfuse.config import validate_config
from alignfuse.data.datasets import available_pairs
from alignfuse.data.download import fetch_archive
from alignfuse.data.images import ImageSource
from alignfuse.data.karpathy import read_captions, write_captions
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import read_metadata

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    return make_karpathy_archives(
        tmp_path_factory.mktemp("karpathy"), corrupt=("COCO_val2014_000000000629.jpg",)
    )


def coco_zips(archives):
    return [archives.train2014_zip, archives.val2014_zip]


def edited(archives, tmp_path, kind, edit):
    return edit_captions_zip(archives.captions_zip, tmp_path / "edited.zip", kind, edit)


def test_flickr30k_splits_map_val_to_dev_with_five_captions_each(archives):
    frame, report = read_captions("flickr30k", archives.captions_zip, None)
    assert list(frame.columns) == ["image_id", "caption_id", "caption", "split"]
    for split, images in archives.splits["flickr30k"].items():
        assert set(frame.loc[frame["split"] == split, "image_id"]) == set(images)
    assert report["karpathy_splits"] == {"test": 8, "train": 24, "val": 8}
    assert report["images"] == {"train": 24, "dev": 8, "test": 8}
    assert report["captions_per_image"] == {"5": 40}
    first = archives.splits["flickr30k"]["train"][0]
    assert (
        frame.loc[frame["image_id"] == first, "caption"].tolist()
        == (archives.captions["flickr30k"][first])
    )


def test_coco_restval_joins_train_and_images_keep_all_their_captions(archives):
    frame, report = read_captions("coco", archives.captions_zip, None)
    assert report["karpathy_splits"] == {"restval": 8, "test": 8, "train": 16, "val": 8}
    assert report["images"] == {"train": 24, "dev": 8, "test": 8}
    assert set(report["captions_per_image"]) == {"5", "6", "7"}
    restval = [n for n in archives.splits["coco"]["train"] if "val2014" in n]
    assert len(restval) == 8 and set(frame.loc[frame["image_id"].isin(restval), "split"]) == {
        "train"
    }
    order = frame["split"].map({"train": 0, "dev": 1, "test": 2})
    k = frame["caption_id"].str.rsplit("#", n=1).str[1].astype(int)
    assert list(zip(order, frame["image_id"], k, strict=True)) == sorted(
        zip(order, frame["image_id"], k, strict=True)
    )


def test_coco_images_are_found_in_both_zips_and_the_report_is_stored(archives, tmp_path):
    out = tmp_path / "captions.parquet"
    report = write_captions("coco", archives.captions_zip, coco_zips(archives), out)
    assert report["images_archives"] == ["train2014.zip", "val2014.zip"]
    assert read_metadata(out) == {"dataset": "coco", "report": report}


def test_a_name_in_both_coco_zips_is_refused(archives, tmp_path):
    copy = tmp_path / "val2014.zip"
    with zipfile.ZipFile(copy, "w") as zf:
        zf.writestr("val2014/COCO_train2014_000000000009.jpg", b"x")
    with pytest.raises(AlignfuseError, match="COCO_train2014_000000000009.jpg' is in both"):
        ImageSource([archives.train2014_zip, copy]).members()


def test_missing_images_are_listed_or_skipped_with_their_captions(archives, tmp_path):
    train = tmp_path / "train2014.zip"
    gone = sorted(archives.splits["coco"]["train"])[:2]
    with zipfile.ZipFile(archives.train2014_zip) as src, zipfile.ZipFile(train, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith(tuple(gone)):
                dst.writestr(info, src.read(info))
    zips = [train, archives.val2014_zip]
    with pytest.raises(AlignfuseError) as err:
        read_captions("coco", archives.captions_zip, zips)
    assert "2 image(s) of dataset_coco.json are missing" in str(err.value)
    assert all(name in str(err.value) for name in gone)
    assert "dataset.coco.on_bad_image: skip" in str(err.value)
    frame, report = read_captions("coco", archives.captions_zip, zips, on_bad_image="skip")
    dropped = {*gone, "COCO_val2014_000000000629.jpg"}
    assert set(report["bad_images_dropped"]) == dropped
    assert not frame["image_id"].isin(dropped).any()
    assert "cannot be decoded" in report["bad_images_dropped"]["COCO_val2014_000000000629.jpg"]


@pytest.mark.parametrize(
    ("kind", "edit", "message"),
    [
        ("coco", lambda d: d["images"][3].pop("filepath"), "images[3] ('COCO_"),
        ("flickr30k", lambda d: d["images"][5].update(split="holdout"), "split 'holdout'"),
        ("flickr30k", lambda d: d["images"][2]["sentences"][1].update(raw=" "), "sentence 1 has"),
        ("coco", lambda d: d["images"].append(d["images"][0]), "repeats images[0]"),
    ],
    ids=["missing key", "unknown split", "empty caption", "repeated image"],
)
def test_a_malformed_entry_names_file_entry_and_fix_or_is_skipped(
    archives, tmp_path, kind, edit, message
):
    captions = edited(archives, tmp_path, kind, edit)
    with pytest.raises(AlignfuseError) as err:
        read_captions(kind, captions, None)
    text = str(err.value)
    assert f"dataset_{kind}.json (in {captions})" in text and message in text
    assert f"dataset.{kind}.on_malformed: skip" in text
    frame, report = read_captions(kind, captions, None, on_malformed="skip")
    assert report["malformed_skipped"]["count"] == 1 and frame["caption_id"].is_unique


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: b"{not json", "is not valid UTF-8 JSON"),
        (lambda d: {"dataset": "coco"}, "no 'images' list"),
        (lambda d: {**d, "dataset": "flickr8k"}, "describes dataset 'flickr8k'"),
    ],
    ids=["not json", "no images", "other dataset"],
)
def test_a_broken_json_file_names_the_file(archives, tmp_path, edit, message):
    captions = edited(archives, tmp_path, "coco", edit)
    with pytest.raises(AlignfuseError, match=message) as err:
        read_captions("coco", captions, None)
    assert f"dataset_coco.json (in {captions})" in str(err.value)


def test_an_archive_without_the_json_is_not_caption_datasets(archives, tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("dataset_flickr30k.json", json.dumps({"images": []}))
    with pytest.raises(AlignfuseError, match="no dataset_coco.json in the archive"):
        read_captions("coco", other, None)


def test_caption_zip_checksum_mismatch_and_local_copy_name_the_kinds_key(archives, tmp_path):
    key = "dataset.coco.archives.captions"
    with pytest.raises(AlignfuseError, match=f"sha256 is .*expected 0{{64}}.*{key}"):
        fetch_archive(
            archives.url(archives.captions_zip),
            tmp_path / "captions.zip",
            sha256="0" * 64,
            local_key=key,
        )
    assert not (tmp_path / "captions.zip").exists()
    out = tmp_path / "linked.zip"
    fetch_archive(
        "https://unreachable.invalid/caption_datasets.zip",
        out,
        sha256=archives.sha256(archives.captions_zip),
        local=archives.captions_zip,
        local_key=key,
    )
    assert out.is_symlink() and out.resolve() == archives.captions_zip.resolve()


def study(kind: str, **dataset) -> dict:
    """The smoke study with a Karpathy dataset and plug-in encoders, as a user would write it."""
    config = yaml.safe_load((ROOT / "workflow/presets/folder_example.yaml").read_text())
    config["dataset"] = {"name": kind, "kind": kind, kind: dataset}
    config["encoders"] = {"tiny": {"library": "python", "model": "plugin_encoder:build"}}
    config["backbones"] = {"resnet18": {"image": "tiny", "text": "tiny"}} | {
        "clip": {"image": "tiny", "text": "tiny"}
    }
    return config


def test_config_asks_for_the_caption_zips_checksum_and_flickr30ks_images(archives):
    with pytest.raises(AlignfuseError, match=r"'dataset.coco.captions.sha256' is required"):
        validate_config(study("coco"), SCHEMA)
    captions = {"url": "https://example.org/caption_datasets.zip", "sha256": "a" * 64}
    with pytest.raises(AlignfuseError, match=r"'dataset.flickr30k.images' is required.*form"):
        validate_config(study("flickr30k", captions=captions), SCHEMA)
    config = validate_config(
        study("flickr30k", captions=captions, images=str(archives.flickr30k_tar)), SCHEMA
    )
    assert config["dataset"]["flickr30k"]["on_malformed"] == "error"
    assert available_pairs(config["dataset"], "train") == 2 * 29000 * 5
    coco = validate_config(study("coco", captions=captions), SCHEMA)["dataset"]
    assert coco["coco"]["val2014"]["md5"] == "a3d79f5ed8d289b7a7554ce06a5782b3"
    assert available_pairs(coco, "dev") == 2 * 5000 * 5
