import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from flickr8k_fixture import image_name, make_flickr8k_archives

from alignfuse.errors import AlignfuseError
from alignfuse.features.extraction import extract_features
from alignfuse.parquet import read_embeddings, read_metadata

RESNET = {
    "name": "resnet18",
    "library": "torchvision",
    "model": "resnet18",
    "pretrained": False,
    "batch_size": 16,
}
CLIP = {"name": "clip", "library": "open_clip", "model": "ViT-B-32", "pretrained": False}
PLUGIN = {"name": "tiny", "library": "python", "model": "plugin_encoder:build", "pretrained": False}


def captions_table(names, path, per_image=5):
    """A captions.parquet as the data stage writes it, images deliberately out of sorted order."""
    rows = [
        (name, f"{name}#{k}", f"Caption {k} of picture {i} .", "train")
        for i, name in enumerate(reversed(names))
        for k in range(per_image)
    ]
    frame = pd.DataFrame(rows, columns=["image_id", "caption_id", "caption", "split"])
    frame.to_parquet(path, index=False)
    return frame


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    """The fixture's 40 images and 200 captions, plus a 4-image subset for the slower CLIP runs."""
    directory = tmp_path_factory.mktemp("flickr")
    archives = make_flickr8k_archives(directory)
    names = sorted(sum(archives.splits.values(), []))
    captions = captions_table(names, directory / "captions.parquet")
    small = captions_table(names[:4], directory / "small.parquet")
    return {
        "zip": archives.images_zip,
        "names": names,
        "captions": captions,
        "captions_path": directory / "captions.parquet",
        "small": small,
        "small_path": directory / "small.parquet",
    }


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """An archive with one truncated JPEG, and a captions table naming one image not in it."""
    directory = tmp_path_factory.mktemp("broken")
    names = [image_name(i) for i in range(6)]
    archives = make_flickr8k_archives(directory, 4, 1, 1, corrupt=(names[2],))
    captions_table(names, directory / "captions.parquet", per_image=1)
    captions_table([*names, "99_missing.jpg"], directory / "missing.parquet", per_image=1)
    return {"zip": archives.images_zip, "names": names, "dir": directory}


def test_resnet18_features_cover_every_image_in_sorted_order_and_repeat_exactly(flickr, tmp_path):
    first = tmp_path / "a.parquet"
    report = extract_features(
        RESNET, "image", flickr["captions_path"], first, flickr["zip"], workers=0
    )
    extract_features(
        RESNET, "image", flickr["captions_path"], tmp_path / "b.parquet", flickr["zip"], workers=2
    )
    ids, emb = read_embeddings(first)
    again_ids, again = read_embeddings(tmp_path / "b.parquet")
    assert list(ids) == flickr["names"] and emb.shape == (40, 512) and emb.dtype == np.float32
    assert pq.read_schema(first).names == ["image_id", "emb"]
    assert list(again_ids) == list(ids) and np.array_equal(again, emb)
    assert np.isfinite(emb).all() and emb.std(axis=0).mean() > 0
    assert report["rows"] == 40 and report["skipped_count"] == 0


def test_metadata_records_weights_preprocessing_versions_and_device(flickr, tmp_path):
    out = tmp_path / "image.parquet"
    extract_features(RESNET, "image", flickr["small_path"], out, flickr["zip"], workers=0)
    meta = read_metadata(out)
    assert meta["weights_id"] == "torchvision:resnet18:random"
    assert meta["encoder"] == RESNET and meta["modality"] == "image"
    assert set(meta["versions"]) >= {"torch", "torchvision", "open_clip"}
    assert "crop_size=[224]" in meta["preprocessing"]
    assert meta["device"] == "cpu" and meta["dtype"] == "float32"
    assert meta["rows"] == 4 and meta["skipped"] == []


def test_clip_image_features_are_512_d_and_repeat_exactly(flickr, tmp_path):
    for run in ("a", "b"):
        extract_features(
            CLIP,
            "image",
            flickr["small_path"],
            tmp_path / f"{run}.parquet",
            flickr["zip"],
            workers=1,
        )
    ids, emb = read_embeddings(tmp_path / "a.parquet")
    assert list(ids) == flickr["names"][:4] and emb.shape == (4, 512)
    assert np.array_equal(read_embeddings(tmp_path / "b.parquet")[1], emb)
    assert read_metadata(tmp_path / "a.parquet")["weights_id"] == "open_clip:ViT-B-32:random"


def test_clip_text_features_follow_the_table_order_repeat_exactly_and_have_tokens(flickr, tmp_path):
    spec = {**CLIP, "batch_size": 16, "tokens": True}
    for run in ("a", "b"):
        extract_features(
            spec,
            "text",
            flickr["small_path"],
            tmp_path / f"{run}.parquet",
            tokens_out=tmp_path / f"{run}_tokens.parquet",
        )
    ids, emb = read_embeddings(tmp_path / "a.parquet")
    assert list(ids) == list(flickr["small"]["caption_id"]) and emb.shape == (20, 512)
    assert pq.read_schema(tmp_path / "a.parquet").names == ["caption_id", "emb"]
    assert np.array_equal(read_embeddings(tmp_path / "b.parquet")[1], emb)
    tokens = pq.read_table(tmp_path / "a_tokens.parquet")
    assert tokens.column("caption_id").to_pylist() == list(ids)
    first = np.array(tokens.column("tokens")[0].as_py(), dtype=np.float32)
    assert first.shape == (8, 512)  # start, "caption 0 of picture 0 .", end
    # tokens are stored as float16: 11 significant bits, relative error at most 2**-11
    np.testing.assert_allclose(first[-1], emb[0], rtol=2**-11, atol=1e-6)
    assert read_metadata(tmp_path / "a_tokens.parquet")["tokens"].startswith("start..end")


def test_resnet18_tokens_are_the_49_positions_of_layer4(flickr, tmp_path):
    tokens_out = tmp_path / "tokens.parquet"
    extract_features(
        RESNET,
        "image",
        flickr["small_path"],
        tmp_path / "image.parquet",
        flickr["zip"],
        workers=0,
        tokens_out=tokens_out,
    )
    grid = np.array(pq.read_table(tokens_out).column("tokens")[0].as_py(), dtype=np.float32)
    assert grid.shape == (49, 512)
    np.testing.assert_allclose(
        grid.mean(axis=0), read_embeddings(tmp_path / "image.parquet")[1][0], rtol=2**-11, atol=1e-6
    )


def test_python_plugin_encodes_images_in_workers_and_text(flickr, tmp_path):
    extract_features(
        PLUGIN,
        "image",
        flickr["captions_path"],
        tmp_path / "image.parquet",
        flickr["zip"],
        workers=2,
    )
    extract_features(PLUGIN, "text", flickr["captions_path"], tmp_path / "text.parquet")
    assert read_embeddings(tmp_path / "image.parquet")[1].shape == (40, 8)
    assert read_embeddings(tmp_path / "text.parquet")[1].shape == (200, 8)


def test_corrupt_jpeg_is_an_error_naming_it_and_leaves_nothing(broken, tmp_path):
    out = tmp_path / "out" / "image.parquet"
    with pytest.raises(AlignfuseError, match=f"{broken['names'][2]}.*on_bad_image: skip"):
        extract_features(
            PLUGIN, "image", broken["dir"] / "captions.parquet", out, broken["zip"], workers=1
        )
    assert list(out.parent.iterdir()) == []


def test_corrupt_jpeg_is_skipped_counted_and_listed_when_asked(broken, tmp_path, capsys):
    out = tmp_path / "image.parquet"
    extract_features(
        PLUGIN,
        "image",
        broken["dir"] / "captions.parquet",
        out,
        broken["zip"],
        workers=0,
        on_bad_image="skip",
    )
    ids, _ = read_embeddings(out)
    assert broken["names"][2] not in ids and len(ids) == 5
    meta = read_metadata(out)
    assert meta["skipped_count"] == 1 and meta["skipped"] == [broken["names"][2]]
    assert f"skipping image {broken['names'][2]}" in capsys.readouterr().err


def test_image_missing_from_the_zip_is_an_error_or_skipped(broken, tmp_path):
    captions = broken["dir"] / "missing.parquet"
    with pytest.raises(AlignfuseError, match="'99_missing.jpg' is missing from the archive"):
        extract_features(
            PLUGIN, "image", captions, tmp_path / "a.parquet", broken["zip"], workers=0
        )
    assert not (tmp_path / "a.parquet").exists()
    extract_features(
        PLUGIN,
        "image",
        captions,
        tmp_path / "b.parquet",
        broken["zip"],
        workers=0,
        on_bad_image="skip",
    )
    meta = read_metadata(tmp_path / "b.parquet")
    assert meta["skipped"] == sorted(["99_missing.jpg", broken["names"][2]])
    assert meta["rows"] == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modality": "audio"}, "modality 'audio'"),
        ({"on_bad_image": "ignore"}, "on_bad_image 'ignore'"),
        ({"images": None}, "pass images"),
        ({"device": "tpu"}, "device 'tpu'"),
        ({"tokens_out": "tokens.parquet"}, r"encoders\.tiny\.tokens"),
    ],
)
def test_bad_arguments_are_clear_errors(flickr, tmp_path, kwargs, message):
    args = {"modality": "image", "images": flickr["zip"], "workers": 0} | kwargs
    with pytest.raises(AlignfuseError, match=message):
        extract_features(PLUGIN, captions=flickr["small_path"], out=tmp_path / "x.parquet", **args)
    assert list(tmp_path.iterdir()) == []


def test_a_plugin_whose_prepare_returns_a_mapping_of_tensors_is_moved_and_encoded(flickr, tmp_path):
    """Hugging Face tokenizers return dicts of tensors; extraction moves each to the device and
    hands the dict to the model."""
    spec = {**PLUGIN, "model": "plugin_encoder:build_from_mapping"}
    extract_features(spec, "text", flickr["captions_path"], tmp_path / "text.parquet")
    assert read_embeddings(tmp_path / "text.parquet")[1].shape == (200, 8)


def test_tokens_alone_are_written_without_the_pooled_features(flickr, tmp_path):
    spec = {**PLUGIN, "model": "plugin_encoder:build_with_tokens"}
    extract_features(
        spec, "text", flickr["captions_path"], None, tokens_out=tmp_path / "tokens.parquet"
    )
    assert (tmp_path / "tokens.parquet").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.parquet"]
    with pytest.raises(AlignfuseError, match="nothing to write"):
        extract_features(spec, "text", flickr["captions_path"], None)


def test_images_of_a_folder_are_read_by_relative_path_from_the_directory_or_its_zip(tmp_path):
    """A folder dataset's image ids are paths under its root: the directory and a zip of it give
    the same features, and an id that is not there is named with the folder."""
    import zipfile

    from alignfuse.data.example_folder import make_example_folder
    from alignfuse.data.folder import write_captions

    images, captions_csv = make_example_folder(tmp_path / "mine", 12, 1)
    captions = tmp_path / "captions.parquet"
    cfg = {"images": str(images), "captions": str(captions_csv), "seed": 0}
    split = {"train": 0.5, "dev": 0.25, "test": 0.25}
    write_captions(cfg | {"split": split, "on_bad_image": "error"}, captions)
    zipped = tmp_path / "images.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for path in sorted(images.rglob("*.jpg")):
            zf.write(path, path.relative_to(images).as_posix())
    for source, out in ((images, "dir.parquet"), (zipped, "zip.parquet")):
        extract_features(
            PLUGIN, "image", captions, tmp_path / out, source, workers=0, image_key="path"
        )
    ids, from_dir = read_embeddings(tmp_path / "dir.parquet")
    assert sorted(ids) == sorted(pd.read_parquet(captions)["image_id"])
    assert "/" in ids[0]
    np.testing.assert_array_equal(from_dir, read_embeddings(tmp_path / "zip.parquet")[1])
    next(images.rglob("*.jpg")).unlink()
    with pytest.raises(AlignfuseError, match=rf"{images}: image '.*' is missing from the folder"):
        extract_features(
            PLUGIN, "image", captions, tmp_path / "x.parquet", images, workers=0, image_key="path"
        )
    assert not (tmp_path / "x.parquet").exists()
