"""End-to-end: the study on a user's own folder of JPEGs and a captions CSV, through Snakemake.

Two generated folders of 200 JPEGs (one caption per image, three per image) run the smoke-sized
study cut to one backbone of tiny plug-in encoders, two heads and two scales: every stage runs
(captions, pairs, features, contrastive and degraded feature sets, alignment metrics, training,
tables, PID, theory, figures, summary). The folder datasets share one module fixture.
"""

import os
from pathlib import Path

import pandas as pd
import pytest
from workflow_runner import planned_jobs, snakemake, tiny_encoder_study, write_config

from alignfuse.data.example_folder import make_example_folder
from alignfuse.figures import FIGURES
from alignfuse.figures.gap import plot

pytestmark = pytest.mark.slow

N_IMAGES = 200


# A fusion head of the study's own (tests/plugin_head.py), as docs/extending.md adds one.
PLUGIN_HEAD = {"head": "python", "model": "plugin_head:TokenAttentionHead", "tokens": 4, "dim": 8}


def folder_study(name: str, images: Path, captions: Path, alignment_path: bool) -> dict:
    """The folder_example preset on tiny plug-in encoders, one backbone, two heads; with
    ``alignment_path`` also a contrastive and a rotated feature set at the larger scale, and a
    plug-in head in place of the built-in cross-attention one (which the smoke and Karpathy
    studies train), decomposed with concat."""
    config = tiny_encoder_study(name)
    config["dataset"]["name"] = name
    config["dataset"]["folder"] |= {"images": str(images), "captions": str(captions)}
    if alignment_path:
        config["grids"]["alignment"] = {
            "alignments": ["contrastive", "rotation-0.5"],
            "methods": ["concat"],
            "scales": [256],
        }
        config["methods"] = {"concat": config["methods"]["concat"], "resampler": PLUGIN_HEAD}
        config["pid"]["conditions"]["methods"] = ["concat", "resampler"]
    return config


# Targets of the three-caption study: its captions, pairs and features feed training, the
# alignment metrics and PID; the tables and figures past them are the one-caption study's check.
def three_caption_targets(name: str) -> list[str]:
    return [
        f"results/{name}/tables/runs.parquet",
        f"results/{name}/tables/pid.parquet",
        f"results/{name}/alignment/{name}.parquet",
    ]


@pytest.fixture(scope="module")
def folder_runs(plugin_path, tmp_path_factory):
    """Both folder studies run in one working directory: name -> config. The one-caption study
    runs every stage; the three-caption one up to its runs, PID and alignment tables."""
    root = tmp_path_factory.mktemp("folder")
    workdir = root / "work"
    workdir.mkdir()
    runs = {}
    for name, per_image in (("one_caption", 1), ("three_captions", 3)):
        images, captions = make_example_folder(root / name, N_IMAGES, per_image)
        config = folder_study(name, images, captions, alignment_path=per_image == 1)
        configfile = write_config(workdir / f"{name}.yaml", config)
        targets = three_caption_targets(name) if per_image == 3 else []
        # targets first: --configfile takes every value after it
        snakemake(workdir, *targets, "--cores", "2", "--configfile", str(configfile))
        runs[name] = config
    return workdir, runs


def read(workdir: Path, path: str) -> pd.DataFrame:
    return pd.read_parquet(workdir / path)


@pytest.mark.parametrize(("name", "per_image"), [("one_caption", 1), ("three_captions", 3)])
def test_folder_study_splits_by_image_and_pairs_every_caption(folder_runs, name, per_image):
    workdir, _ = folder_runs
    captions = read(workdir, f"results/data/{name}/captions.parquet")
    assert captions.groupby("split")["image_id"].nunique().to_dict() == {
        "train": 160,
        "dev": 20,
        "test": 20,
    }
    assert (captions.groupby("image_id")["split"].nunique() == 1).all()
    assert (captions.groupby("image_id").size() == per_image).all()
    for split, images in (("train", 160), ("dev", 20), ("test", 20)):
        pairs = read(workdir, f"results/pairs/{name}/{split}.parquet")
        assert len(pairs) == 2 * images * per_image
        # every image and every caption as often with either label: no modality alone helps
        for column in ("image_id", "caption_id"):
            by_label = pairs.groupby([column, "label"]).size().unstack()
            assert (by_label[0] == by_label[1]).all()
    image = read(workdir, f"results/features/{name}/tiny/image.parquet")
    assert sorted(image["image_id"]) == sorted(captions["image_id"].unique())
    text = read(workdir, f"results/features/{name}/tiny/text.parquet")
    assert len(text) == N_IMAGES * per_image


@pytest.mark.parametrize("name", ["one_caption", "three_captions"])
def test_folder_study_trains_measures_alignment_and_decomposes(folder_runs, name):
    workdir, runs = folder_runs
    config = runs[name]
    study = f"results/{name}"
    table = read(workdir, f"{study}/tables/runs.parquet")
    alignments = {"raw", "contrastive", "rotation-0.5"} if name == "one_caption" else {"raw"}
    assert set(table["alignment"]) == alignments
    assert (table["status"] == "ok").all() and table["test_accuracy"].between(0, 1).all()
    main = table[table["alignment"] == "raw"]
    assert len(main) == len(config["methods"]) * len(config["scales"]) * len(config["seeds"])
    metrics = read(workdir, f"{study}/alignment/{name}.parquet")
    assert set(metrics["alignment"]) == alignments
    assert set(read(workdir, f"{study}/tables/pid.parquet")["method"]) == set(
        config["pid"]["conditions"]["methods"]
    )


def test_a_plugin_head_trains_and_is_compared_drawn_and_decomposed_by_its_family(folder_runs):
    """tests/plugin_head.py, named in the config only: it trains on every seed and scale, the
    plan compares it with concat (same recipe), the gap figure draws it as an attention head,
    and PID decomposes it."""
    workdir, _ = folder_runs
    study = "results/one_caption"
    runs = read(workdir, f"{study}/tables/runs.parquet")
    mine = runs[runs["method"] == "resampler"]
    assert set(mine["head"]) == {PLUGIN_HEAD["model"]} and (mine["status"] == "ok").all()
    assert len(mine) == 2 * 2 and mine["test_accuracy"].between(0, 1).all()  # scales x seeds
    paired = read(workdir, f"{study}/tables/paired.parquet")
    row = paired[(paired["method"] == "resampler") & (paired["metric"] == "test_accuracy")]
    assert set(row["reference"]) == {"concat"} and set(row["family"]) == {"attention"}
    lines = {line.get_label() for ax in plot(paired, "one_caption").axes for line in ax.lines}
    assert "concat − resampler" in lines
    pid = read(workdir, f"{study}/tables/pid.parquet")
    assert (pid.loc[pid["method"] == "resampler", "n_seeds"] == 2).all()


def test_editing_a_plugin_head_reruns_only_its_jobs(folder_runs, tmp_path, monkeypatch):
    """The plug-in's source is hashed: an edited copy earlier on the Python path plans its
    training and PID jobs again and what reads every run, nothing else."""
    workdir, _ = folder_runs
    source = Path(__file__).with_name("plugin_head.py").read_text()
    (tmp_path / "plugin_head.py").write_text(source + "\n# edited\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ["PYTHONPATH"]]))
    jobs = planned_jobs(workdir, "--configfile", str(workdir / "one_caption.yaml"))
    assert len(jobs["train"]) == 2 and all("/resampler/" in job for job in jobs["train"])
    assert len(jobs["pid"]) == 1 and "/resampler/" in jobs["pid"][0]
    assert "tune" not in jobs and "features" not in jobs


def test_folder_study_with_one_caption_per_image_fits_theory_draws_and_answers(folder_runs):
    workdir, _ = folder_runs
    study = "results/one_caption"
    assert len(read(workdir, f"{study}/tables/theory_curves.parquet"))
    for figure in FIGURES:
        assert (workdir / f"{study}/figures/{figure}.png").stat().st_size > 1000
    assert "on the dataset **one_caption**" in (workdir / f"{study}/SUMMARY.md").read_text()


def test_a_finished_folder_study_has_nothing_to_rerun(folder_runs):
    """The images folder is an input: reading it must not make it look newer than the results."""
    workdir, _ = folder_runs
    result = snakemake(workdir, "-n", "--configfile", str(workdir / "one_caption.yaml"))
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_missing_image_stops_a_folder_study_in_its_first_job(plugin_path, tmp_path):
    """The captions job names the missing file; nothing under results/ looks complete."""
    images, captions = make_example_folder(tmp_path / "data", 40, 1)
    next((images / "circle").iterdir()).unlink()
    missing = [
        row.image
        for row in pd.read_csv(captions).itertuples()
        if not (images / row.image).is_file()
    ]
    config = folder_study("broken", images, captions, alignment_path=False)
    config["scales"] = [16, 32]
    workdir = tmp_path / "work"
    workdir.mkdir()
    configfile = write_config(workdir / "study.yaml", config)
    result = snakemake(workdir, "--cores", "1", "--configfile", str(configfile), check=False)
    assert result.returncode != 0
    log = (workdir / "results/logs/data/broken/captions.log").read_text()
    assert f"'{missing[0]}'" in log and "not found under" in log and "Traceback" not in log
    # only the logs, and the encoder's weights marker (its job needs no data) may exist
    made = [
        p.relative_to(workdir / "results").parts[0]
        for p in (workdir / "results").rglob("*")
        if p.is_file()
    ]
    assert set(made) <= {"logs", "weights"} and "logs" in made
