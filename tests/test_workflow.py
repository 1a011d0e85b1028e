"""End-to-end: the real workflow through Snakemake, in a temporary directory."""

import copy
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_runner import ROOT, dry_run, load_preset, planned_jobs, snakemake, write_config

from alignfuse import grid
from alignfuse.config import validate_config
from alignfuse.figures import FIGURES

pytestmark = pytest.mark.slow


def study_config(preset: str) -> dict:
    """A preset as the workflow reads it: validated, with the schema's defaults filled in."""
    return validate_config(load_preset(preset), ROOT / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def smoke(smoke_study):
    return smoke_study


def test_smoke_study_writes_tables_and_figures(smoke):
    workdir, _ = smoke
    runs = pd.read_parquet(workdir / "results/smoke/tables/runs.parquet")
    config = study_config("smoke")
    conditions = len(grid.conditions(config))  # the main grid and the alignment sub-grids
    assert len(runs) == conditions * len(config["seeds"])
    assert set(runs["method"]) == set(config["methods"])
    assert set(runs["backbone"]) == {"aligned", "unaligned"}
    assert runs["test_accuracy"].between(0, 1).all()
    summary = pd.read_csv(workdir / "results/smoke/tables/summary.csv")
    assert len(summary) == conditions
    for name in FIGURES:
        for ext in ("pdf", "png"):
            assert (workdir / f"results/smoke/figures/{name}.{ext}").stat().st_size > 1000


def test_smoke_study_tunes_its_tuned_labels_and_the_tables_show_the_chosen_values(smoke):
    """The smoke preset tunes concat_tuned and xattn_txt2img_tuned over two learning rates on
    dev; their training jobs use the chosen ones, the runs, the summary and its Markdown say so,
    and the untuned labels keep the shared recipe."""
    workdir, _ = smoke
    tuning = workdir / "results/smoke/tuning/smoke"
    summary = pd.read_parquet(workdir / "results/smoke/tables/summary.parquet")
    tuned_labels = ["concat_tuned", "xattn_txt2img_tuned"]
    tuned = summary["method"].isin(tuned_labels)
    assert summary.loc[tuned, "tuned"].all() and not summary.loc[~tuned, "tuned"].any()
    table = (workdir / "results/smoke/tables/summary.md").read_text()
    for method in tuned_labels:
        candidates = pd.read_parquet(tuning / f"{method}.parquet")
        assert sorted(candidates["lr"]) == [0.001, 0.003] and candidates["chosen"].sum() == 1
        chosen = json.loads((tuning / f"{method}.json").read_text())
        assert chosen["values"] == {"lr": candidates.loc[candidates["chosen"], "lr"].item()}
        mine = summary["method"] == method
        assert set(summary.loc[mine, "tuned_values"]) == {json.dumps(chosen["values"])}
        recipes = summary.loc[mine, "training"].map(json.loads)
        assert (recipes.map(lambda t: t["lr"]) == chosen["values"]["lr"]).all()
        assert f"lr {chosen['values']['lr']:g} · wd 0.01 · constant (tuned: lr)" in table


def test_second_run_has_nothing_to_do(smoke):
    workdir, configfile = smoke
    result = snakemake(workdir, "-n", "--configfile", str(configfile))
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_methods_learning_rate_reruns_only_its_jobs_and_downstream(smoke):
    workdir, _ = smoke
    config = load_preset("smoke")
    method = "gated_sum"  # in no claim: on its own rate it is no longer compared with concat
    config["methods"][method]["training"] = {"lr": 0.005}
    changed = write_config(workdir / "changed.yaml", config)
    jobs = planned_jobs(workdir, "--configfile", str(changed))
    # downstream of its runs: the tables, the figures, its heads' PID, the theory's fits and the
    # summary that shows them
    downstream = {"aggregate", "all", "pid", "pid_table", "theory", "study_summary"}
    assert set(jobs) == {"train"} | downstream | {f"figure_{name}" for name in FIGURES}
    study = study_config("smoke")
    assert len(jobs["train"]) == sum(c.method == method for c in grid.conditions(study))
    assert len(jobs["pid"]) == sum(c.method == method for c in grid.pid_conditions(study))
    assert all(f"/{method}/" in outputs for outputs in jobs["train"] + jobs["pid"])


def test_changing_the_figure_resolution_redraws_only_figures(smoke):
    workdir, _ = smoke
    config = load_preset("smoke")
    config["figures"] = {"dpi": 100}
    jobs = planned_jobs(workdir, "--configfile", str(write_config(workdir / "dpi.yaml", config)))
    # and the summary, which shows the answer's figures
    assert set(jobs) == {"all", "study_summary"} | {f"figure_{name}" for name in FIGURES}


def test_invalid_config_fails_before_any_job_with_one_message(tmp_path):
    config = load_preset("smoke")
    config["training"]["lr"] = "fast"
    result = snakemake(
        tmp_path,
        "-n",
        "--configfile",
        str(write_config(tmp_path / "bad.yaml", config)),
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "config key 'training.lr': 'fast' is not of type 'number'" in output
    assert "Traceback" not in output
    assert not (tmp_path / "results").exists()


def test_default_study_plans_download_features_pairs_training_and_figures(tmp_path):
    jobs = planned_jobs(tmp_path, "--configfile", str(ROOT / "config.yaml"))
    assert len(jobs["download"]) == 2
    assert len(jobs["fetch_weights"]) == 2
    # resnet18 images, clip images and clip captions: the CLIP text features serve both backbones
    assert sorted(jobs["features"]) == [
        "results/features/flickr8k/clip/image.parquet",
        "results/features/flickr8k/clip/text.parquet",
        "results/features/flickr8k/resnet18/image.parquet",
    ]
    assert len(jobs["pairs"]) == 1
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    methods, scales = len(paper["grids"]["paper"]["methods"]), len(paper["scales"])
    degradation, tuned = paper["grids"]["degradation"], paper["grids"]["tuned"]
    degraded = len(degradation["alignments"]) - 1
    # the paper grid, its contrastive copy on resnet18, the degradation sub-grid (not a product)
    # and the tuned heads on clip at the paper's scales, each tuned once
    assert len(jobs["train"]) == (
        3 * methods * scales
        + degraded * len(degradation["methods"])
        + len(tuned["methods"]) * len(tuned["scales"])
    )
    assert sorted(jobs["tune"]) == sorted(
        f"results/paper/tuning/flickr8k/{m}.parquet, results/paper/tuning/flickr8k/{m}.json"
        for m in tuned["methods"]
    )
    assert len(jobs["align_degrade"]) == degraded and len(jobs["align_contrastive"]) == 1
    assert {"captions", "aggregate", "alignment_metrics", "figure_alignment_gap", "all"} <= set(
        jobs
    )


def test_tokens_are_cached_only_where_asked_and_feed_only_encoder_token_heads(tmp_path):
    paper = yaml.safe_load((ROOT / "config.yaml").read_text())
    paper["encoders"]["clip"]["tokens"] = True
    configfile = write_config(tmp_path / "clip_tokens.yaml", paper)
    jobs = planned_jobs(tmp_path, "--configfile", str(configfile))
    assert sorted(jobs["tokens"]) == [
        f"results/features/flickr8k/clip/{m}_tokens.parquet" for m in ("image", "text")
    ]
    assert len(jobs["features"]) == 3  # pooled features in jobs of their own

    paper["encoders"]["resnet18"]["tokens"] = True
    paper["methods"]["xattn_img2txt"]["token_source"] = "encoder"
    paper["grids"] = {"paper": {"alignments": ["raw"]}}  # token sequences exist for raw only
    configfile = write_config(tmp_path / "encoder_tokens.yaml", paper)
    train = [
        job for job in dry_run(tmp_path, "--configfile", str(configfile)) if job.rule == "train"
    ]
    inputs = {job.outputs[0].split("/")[5]: set() for job in train}
    for job in train:
        inputs[job.outputs[0].split("/")[5]].update(f for f in job.inputs if "/features/" in f)
    assert inputs["xattn_img2txt"] == {
        "results/features/flickr8k/resnet18/image_tokens.parquet",
        "results/features/flickr8k/clip/image_tokens.parquet",
        "results/features/flickr8k/clip/text_tokens.parquet",
    }
    assert inputs["xattn_txt2img"] == {
        "results/features/flickr8k/resnet18/image.parquet",
        "results/features/flickr8k/clip/image.parquet",
        "results/features/flickr8k/clip/text.parquet",
    }


def test_lint_and_format_are_clean():
    bin_dir = Path(sys.executable).parent
    fmt = subprocess.run(
        [bin_dir / "snakefmt", "--check", "Snakefile", "workflow"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stderr
    lint = snakemake(ROOT, "--lint", check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def flickr8k_study(archives, scales=(16, 32)) -> dict:
    config = copy.deepcopy(yaml.safe_load((ROOT / "config.yaml").read_text()))
    config["study"] = "fixture"
    config["dataset"]["name"] = "fixture"
    config["dataset"]["flickr8k"]["images"] = {
        "url": archives.images_url,
        "sha256": archives.images_sha256,
    }
    config["dataset"]["flickr8k"]["text"] = {
        "url": archives.text_url,
        "sha256": archives.text_sha256,
    }
    for encoder in config["encoders"].values():
        encoder["pretrained"] = False
        encoder["batch_size"] = 8
    for encoder in config["encoders"].values():
        encoder["tokens"] = True
    config["scales"] = list(scales)
    config["seeds"] = [0, 1]
    config["training"] = {"max_epochs": 3, "batch_size": 8, "patience": 2}
    # smoke's heads at these 512-d features; its param_match target is sized for 32-d ones
    config["methods"] = {  # its heads, not their tuned copies
        name: {k: v for k, v in spec.items() if k != "param_match"}
        for name, spec in load_preset("smoke")["methods"].items()
        if "head" not in spec
    }
    config["methods"]["xattn_img2txt"] = {
        **config["methods"]["xattn_txt2img"],
        "token_source": "encoder",
    }
    config["threads"] = {"train": 1, "features": 1}
    config["grids"] = {}  # one grid: every backbone, method and scale on raw features
    config["claims"] = []
    config["comparisons"] = []
    config["tuning"] = {}  # the paper's tuned labels are not among these methods
    return config


# One image of the archive is damaged: on_bad_image: skip (what the error message recommends)
DAMAGED = 2


@pytest.fixture(scope="module")
def flickr8k_run(tmp_path_factory):
    """One Flickr8k-format study run offline from file:// archives, with one damaged image.

    Both end-to-end Flickr8k tests read it, so the suite pays for one such run: every backbone,
    method (pseudo and encoder tokens) and scale on raw features, PID of two clip heads, and the
    scaling figure. The theory, the other figures and the summary read the same tables as on any
    dataset (the smoke and folder studies draw them).
    """
    from flickr8k_fixture import image_name, make_flickr8k_archives

    tmp_path = tmp_path_factory.mktemp("flickr8k")
    # 8/4/4 images: the smallest archive whose training split still pairs to the larger scale
    archives = make_flickr8k_archives(
        tmp_path / "mirror", n_train=8, n_dev=4, n_test=4, corrupt=(image_name(DAMAGED),)
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = flickr8k_study(archives)
    config["dataset"]["flickr8k"]["on_bad_image"] = "skip"
    config["pid"] = {
        "k": [4],
        "dims": 4,  # at most the 7 training images' rows
        "repeats": 2,
        "conditions": {"backbones": ["clip"], "methods": ["concat", "xattn_img2txt"]},
    }
    configfile = write_config(workdir / "study.yaml", config)
    targets = [f"results/fixture/tables/{t}.parquet" for t in ("runs", "pid")]
    targets.append("results/fixture/figures/scaling.pdf")
    # targets first: --configfile takes every value after it
    snakemake(workdir, *targets, "--cores", "2", "--configfile", str(configfile))
    return workdir, config


def test_flickr8k_format_study_runs_end_to_end_offline(flickr8k_run):
    workdir, config = flickr8k_run
    captions = pd.read_parquet(workdir / "results/data/fixture/captions.parquet")
    assert captions.groupby("split")["image_id"].nunique().to_dict() == {
        "dev": 4,
        "test": 4,
        "train": 7,  # 8 less the damaged image
    }
    image = pd.read_parquet(workdir / "results/features/fixture/resnet18/image.parquet")
    assert len(image) == 15 and len(image["emb"].iloc[0]) == 512
    # tokens: 49 CLIP patches or ResNet18 layer4 positions per image, the caption's own tokens
    for encoder in ("clip", "resnet18"):
        tokens = pd.read_parquet(
            workdir / f"results/features/fixture/{encoder}/image_tokens.parquet"
        )
        assert len(tokens) == 15 and len(tokens["tokens"].iloc[0]) == 49
    assert (workdir / "results/features/fixture/clip/text_tokens.parquet").exists()
    runs = pd.read_parquet(workdir / "results/fixture/tables/runs.parquet")
    assert len(runs) == 2 * len(config["methods"]) * 2 * 2
    sources = runs.groupby("method")["token_source"].unique().map(list).to_dict()
    assert sources == {
        "concat": ["pooled"],
        "gated_sum": ["pooled"],
        "xattn_txt2img": ["pseudo"],
        "xattn_img2txt": ["encoder"],
    }
    attended = runs[runs["method"] == "xattn_img2txt"]
    assert (attended["image_tokens"] == 49).all() and (attended["text_tokens"] > 5).all()
    pid = pd.read_parquet(workdir / "results/fixture/tables/pid.parquet")
    assert set(pid["method"]) == {"concat", "xattn_img2txt"}
    assert (workdir / "results/fixture/figures/scaling.pdf").exists()


def test_skipping_a_damaged_image_leaves_it_out_of_captions_pairs_and_features(flickr8k_run):
    """The damaged image is dropped before pairs are built, so no job finds pairs without
    features, and every run trains to the end."""
    from flickr8k_fixture import image_name

    workdir, _ = flickr8k_run
    damaged = image_name(DAMAGED)
    captions = pd.read_parquet(workdir / "results/data/fixture/captions.parquet")
    pairs = pd.read_parquet(workdir / "results/pairs/fixture/train.parquet")
    assert damaged not in set(captions["image_id"]) | set(pairs["image_id"])
    for encoder in ("clip", "resnet18"):
        image = pd.read_parquet(workdir / f"results/features/fixture/{encoder}/image.parquet")
        assert damaged not in set(image["image_id"]) and len(image) == 15
    runs = pd.read_parquet(workdir / "results/fixture/tables/runs.parquet")
    assert (runs["status"] == "ok").all()


def test_the_gap_figure_shades_gap_claims_only(tmp_path):
    """A trend claim's band is the gap across degradation levels (alignment_gap's business):
    shading it on the raw features' gap figure would draw a claim nobody made."""
    configfile = ROOT / "workflow/presets/synthetic.yaml"
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(configfile)).stdout
    (command,) = [line for line in out.splitlines() if "alignfuse figure gap" in line]
    options = json.loads(shlex.split(command)[shlex.split(command).index("--options") + 1])
    claims = {c["id"]: c for c in load_preset("synthetic")["claims"]}
    assert claims["degradation_trend"]["kind"] == "trend"
    assert options["bands"] == [
        {
            "backbone": gap["backbone"],
            "low": gap["band"][0],
            "high": gap["band"][1],
            "scales": gap["scales"],
            "label": gap["source"],
        }
        for gap in (claims["aligned_gap"], claims["aligned_gap_tuned"])
    ]
