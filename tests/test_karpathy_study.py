"""End-to-end: the smoke-sized study on Flickr30k and COCO in Karpathy's splits, through Snakemake.

Generated archives in each dataset's real layout (tests/karpathy_fixture.py) are served from
file://: Karpathy's caption zip is downloaded and checked, Flickr30k's image tar is packed into a
zip, COCO's two image zips are downloaded and read in place. Each kind's preset runs cut to one
backbone of tiny plug-in encoders, two heads and two scales: both train every head and measure
alignment (their runs tables), COCO also decomposes (its PID table). Both share one module fixture.
"""

from pathlib import Path

import pandas as pd
import pytest
from karpathy_fixture import KarpathyArchives, make_karpathy_archives
from workflow_runner import load_preset, planned_jobs, snakemake, tiny_encoder_study, write_config

pytestmark = pytest.mark.slow

# images per Karpathy split: enough captions for 256 training pairs, small enough to stay cheap
FLICKR30K = {"train": 40, "val": 8, "test": 8}
COCO = {"train": 24, "restval": 16, "val": 8, "test": 8}


def karpathy_study(kind: str, archives: KarpathyArchives) -> dict:
    """The kind's preset's dataset on the generated archives, in the smoke-sized study on tiny
    plug-in encoders (``tiny_encoder_study``: one backbone, two heads, two scales)."""
    config = tiny_encoder_study(kind)
    config["dataset"] = load_preset(kind)["dataset"]
    data = config["dataset"][kind]
    data["captions"] = {
        "url": archives.url(archives.captions_zip),
        "sha256": archives.sha256(archives.captions_zip),
    }
    if kind == "flickr30k":
        data["images"] = str(archives.flickr30k_tar)
    else:
        for name in ("train2014", "val2014"):
            path = getattr(archives, f"{name}_zip")
            data[name] = {"url": archives.url(path), "md5": archives.md5(path)}
    return config


# Both kinds up to their runs tables (and so captions, pairs, both modalities' features, the
# alignment metrics and training); PID, theory and figures read the same contracts for every kind
# and each job costs seconds of imports, so COCO alone also runs PID.
TARGETS = {
    "coco": [
        "results/coco/tables/runs.parquet",
        "results/coco/tables/pid.parquet",
        "results/coco/alignment/coco.parquet",
    ],
    "flickr30k": ["results/flickr30k/tables/runs.parquet"],
}


@pytest.fixture(scope="module")
def karpathy_runs(plugin_path, tmp_path_factory):
    """Both studies in one working directory, up to their TARGETS: kind -> (config, archives)."""
    root = tmp_path_factory.mktemp("karpathy")
    archives = make_karpathy_archives(root / "archives", FLICKR30K, COCO)
    workdir = root / "work"
    workdir.mkdir()
    runs = {}
    for kind in ("flickr30k", "coco"):
        config = karpathy_study(kind, archives)
        configfile = write_config(workdir / f"{kind}.yaml", config)
        # targets first: --configfile takes every value after it
        snakemake(workdir, *TARGETS[kind], "--cores", "2", "--configfile", str(configfile))
        runs[kind] = (config, archives)
    return workdir, runs


def read(workdir: Path, path: str) -> pd.DataFrame:
    return pd.read_parquet(workdir / path)


@pytest.mark.parametrize("kind", ["flickr30k", "coco"])
def test_karpathy_study_keeps_the_splits_and_pairs_every_caption(karpathy_runs, kind):
    workdir, runs = karpathy_runs
    _, archives = runs[kind]
    captions = read(workdir, f"results/data/{kind}/captions.parquet")
    for split, images in archives.splits[kind].items():
        assert set(captions.loc[captions["split"] == split, "image_id"]) == set(images)
        pairs = read(workdir, f"results/pairs/{kind}/{split}.parquet")
        assert len(pairs) == 2 * (captions["split"] == split).sum()
    image = read(workdir, f"results/features/{kind}/tiny/image.parquet")
    assert sorted(image["image_id"]) == sorted(captions["image_id"].unique())


@pytest.mark.parametrize("kind", ["flickr30k", "coco"])
def test_karpathy_study_trains_every_head_and_measures_alignment(karpathy_runs, kind):
    workdir, runs = karpathy_runs
    config, _ = runs[kind]
    table = read(workdir, f"results/{kind}/tables/runs.parquet")
    assert (table["status"] == "ok").all() and table["test_accuracy"].between(0, 1).all()
    assert len(table) == len(config["methods"]) * len(config["scales"]) * len(config["seeds"])
    assert set(read(workdir, f"results/{kind}/alignment/{kind}.parquet")["alignment"]) == {"raw"}


def test_coco_study_decomposes_modality_contributions(karpathy_runs):
    workdir, _ = karpathy_runs
    assert set(read(workdir, "results/coco/tables/pid.parquet")["method"]) == {"concat"}


def test_flickr30k_images_are_packed_into_one_zip_and_no_data_job_reruns(karpathy_runs):
    """The tar is streamed into a zip once; a finished study does not fetch, pack or parse again."""
    workdir, _ = karpathy_runs
    assert (workdir / "results/data/flickr30k/archives/images.zip").is_file()
    log = (workdir / "results/logs/data/flickr30k/images.log").read_text()
    assert "packed from a tar archive" in log
    jobs = planned_jobs(
        workdir, *TARGETS["flickr30k"], "--configfile", str(workdir / "flickr30k.yaml")
    )
    assert jobs == {}
