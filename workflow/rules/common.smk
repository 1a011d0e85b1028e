"""Validation, the condition grid, wildcard constraints and the functions that compute targets."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from alignfuse import grid
from alignfuse.align.names import parse_alignment
from alignfuse.codehash import code_hash, plugin_hash
from alignfuse.config import validate_config
from alignfuse.data.datasets import SPLITS
from alignfuse.errors import AlignfuseError
from alignfuse.figures import FIGURES as FIGURE_REGISTRY
from alignfuse.fusion import FUSION_METHODS, head_reference, is_plugin, method_module

try:
    validate_config(
        config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
    )
except AlignfuseError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None

DATASET = config["dataset"]["name"]
# Every (backbone, alignment) feature set the study trains on, and the alignments among them.
FEATURE_SETS = grid.feature_sets(config)
ALIGNMENTS = sorted({alignment for _, alignment in FEATURE_SETS})
DEGRADED = [a for a in ALIGNMENTS if parse_alignment(a).degraded]
# A study's own outputs (runs, tables, figures, their logs) live under results/{study}/, so two
# studies never overwrite each other's files; data, pairs and features are shared by dataset.
STUDY = config["study"]
# The figures that answer the question, shown on the report's landing page and in SUMMARY.md.
ANSWER_FIGURES = ["gap", "alignment_gap"]
# The seed blocks that training jobs train (names such as "0-4"; see training.seed_block).
SEED_BLOCKS = sorted(
    {b.name for m in config["methods"] for b in grid.seed_blocks(config, m)}
)
# Where the features stage reads images: a folder dataset's own directory or zip (ids are paths
# relative to it), else the downloaded or linked archive (ids are file names).
# COCO's images stay in its two zips (ids are unique file names across them).
KIND = config["dataset"]["kind"]
DATASET_CONFIG = config["dataset"].get(KIND, {})
if KIND == "folder":
    IMAGES, IMAGE_KEY = config["dataset"]["folder"]["images"], "path"
    ON_BAD_IMAGE = config["dataset"]["folder"]["on_bad_image"]
elif KIND == "coco":
    IMAGES = [
        f"results/data/{DATASET}/archives/{a}.zip" for a in ("train2014", "val2014")
    ]
    IMAGE_KEY, ON_BAD_IMAGE = "name", DATASET_CONFIG["on_bad_image"]
else:
    IMAGES, IMAGE_KEY = f"results/data/{DATASET}/archives/images.zip", "name"
    ON_BAD_IMAGE = config["dataset"][KIND if KIND == "flickr30k" else "flickr8k"][
        "on_bad_image"
    ]
# The archives the download rule fetches (or links) for each released dataset.
DOWNLOADS = {
    "flickr8k": ["images", "text"],
    "flickr30k": ["captions"],
    "coco": ["captions", "train2014", "val2014"],
}.get(KIND, [])
# The jobs' environment for --sdm conda (relative to the rule files).
CONDA_ENV = "../../envs/alignfuse.yaml"


def one_of(names):
    """A wildcard regex matching exactly ``names``; none matches nothing (not everything)."""
    return "|".join(re.escape(str(name)) for name in names) or "(?!)"


wildcard_constraints:
    study=re.escape(STUDY),
    dataset=re.escape(DATASET),
    backbone=one_of(config["backbones"]),
    alignment=one_of(ALIGNMENTS),
    method=one_of(config["methods"]),
    encoder=one_of(config["encoders"]),
    modality="image|text",
    split=one_of(SPLITS),
    n=r"\d+",
    block=one_of(SEED_BLOCKS),


def as_json(value):
    return json.dumps(value, sort_keys=True)


def feature_files(dataset, backbone, alignment, suffix=""):
    """The image and text files of a feature set: an encoder's own for ``raw``; the alignment
    stage's under the study for the others (a degraded set keeps its base's image side).
    """
    encoders = config["backbones"][backbone]
    recipe = parse_alignment(alignment)
    if recipe.base == "raw":
        files = {
            m: f"results/features/{dataset}/{encoders[m]}/{m}{suffix}.parquet"
            for m in ("image", "text")
        }
    else:
        files = {
            m: f"results/{STUDY}/aligned/{dataset}/{backbone}@{recipe.base}/{m}.parquet"
            for m in ("image", "text")
        }
    if recipe.degraded:
        files["text"] = (
            f"results/{STUDY}/aligned/{dataset}/{backbone}@{alignment}/text.parquet"
        )
    return files


def features_for(wildcards):
    """The image and text feature files a method trains on: its feature set's pooled features,
    or the encoders' token sequences for a head with ``token_source: encoder`` (raw only).
    """
    tokens = config["methods"][wildcards.method].get("token_source") == "encoder"
    return feature_files(
        wildcards.dataset,
        wildcards.backbone,
        wildcards.alignment,
        "_tokens" if tokens else "",
    )


def base_features(wildcards):
    """The feature set a degraded one is made from (raw or contrastive), with the captions."""
    base = parse_alignment(wildcards.alignment).base
    return {
        **feature_files(wildcards.dataset, wildcards.backbone, base),
        "captions": f"results/data/{wildcards.dataset}/captions.parquet",
    }


def measured_feature_sets():
    """Every feature set the study trains on, as the alignment metrics rule reads them."""
    return [
        {"backbone": b, "alignment": a, **feature_files(DATASET, b, a)}
        for b, a in FEATURE_SETS
    ]


def head_of(wildcards):
    """What builds a method label's head: its registry name, or a plug-in's module:Class."""
    return head_reference(config["methods"][wildcards.method])


def head_code(stage, wildcards):
    """Hash of a stage's code (``train.condition``, ``train.tuning``) and of the head's source
    (a registry head's module, or the plug-in's), with what names its class: pointing a
    registry name or a plug-in's ``model`` at another class reruns its methods.
    """
    reference = head_of(wildcards)
    if is_plugin(reference):
        source = plugin_hash(reference.partition(":")[0])
        return f"{code_hash(stage)}:{source}:{reference}"
    return f"{code_hash(stage, method_module(reference))}:{FUSION_METHODS[reference]}"


def train_code(wildcards):
    """Hash of the training code and of the head (see :func:`head_code`)."""
    return head_code("train.condition", wildcards)


def tuning_features(wildcards):
    """The feature files a method's tuning trains on: ``tuning``'s feature set, as
    :func:`features_for` gives them (token sequences for an encoder-token head)."""
    target = grid.tuning_target(config)
    tokens = config["methods"][wildcards.method].get("token_source") == "encoder"
    return feature_files(
        wildcards.dataset,
        target["backbone"],
        target["alignment"],
        "_tokens" if tokens else "",
    )


def tuned_values(wildcards):
    """A tuned method's chosen values, as an input of its training jobs (none if untuned)."""
    if wildcards.method not in grid.tuned_methods(config):
        return {}
    return {
        "tuned": f"results/{STUDY}/tuning/{wildcards.dataset}/{wildcards.method}.json"
    }


def tuned_arg(wildcards):
    """The training command's ``--tuned`` argument for a tuned method (empty if untuned)."""
    chosen = tuned_values(wildcards)
    return f"--tuned {shlex.quote(chosen['tuned'])}" if chosen else ""


def tune_code(wildcards):
    """Hash of the tuning and training code and of the head (see :func:`head_code`)."""
    return head_code("train.tuning", wildcards)


def run_files(suffix=""):
    """Every condition's run files, one per seed block (or, with a suffix such as
    ".predictions", their siblings)."""
    return [
        f for c in grid.conditions(config) for f in grid.run_paths(config, c, suffix)
    ]


def pid_inputs(wildcards):
    """A condition's feature files, captions, test pairs, and per seed block its runs (each
    seed's status), predictions and fused representations."""
    w = wildcards
    condition = grid.Condition(w.backbone, w.alignment, w.method, int(w.n))
    return {
        **feature_files(w.dataset, w.backbone, w.alignment),
        "captions": f"results/data/{w.dataset}/captions.parquet",
        "test_pairs": f"results/pairs/{w.dataset}/test.parquet",
        "runs": grid.run_paths(config, condition),
        "predictions": grid.run_paths(config, condition, ".predictions"),
        "fused": grid.run_paths(config, condition, ".fused"),
    }


def pid_files():
    """Every PID condition's decomposition."""
    return [
        f"results/{STUDY}/pid/{DATASET}/{c.backbone}@{c.alignment}/{c.method}/n{c.n}.parquet"
        for c in grid.pid_conditions(config)
    ]


def gap_options():
    """The gap figure's options: the gap claims' test-accuracy ranges to shade."""
    bands = [
        {
            "backbone": claim["backbone"],
            "low": claim["band"][0],
            "high": claim["band"][1],
            "scales": claim["scales"],
            "label": claim.get("source") or claim["id"],
        }
        for claim in config["claims"]
        # a trend's band is the gap across degradation levels, drawn by alignment_gap
        if claim["kind"] == "gap" and claim["metric"] == "test_accuracy"
    ]
    return {"bands": bands}


def figure_files(name, for_report=False, study="{study}"):
    """A figure's files, one per configured format (under the ``{study}`` wildcard, or the named
    study's root); with ``for_report`` the one the report shows (PNG when configured, else the
    first format) carries the caption workflow/report/{name}.rst.
    """
    formats = config["figures"]["formats"]
    files = [f"results/{study}/figures/{name}.{ext}" for ext in formats]
    if not for_report:
        return files
    shown = files[formats.index("png")] if "png" in formats else files[0]
    # the caption's path is relative to workflow/rules/, where the figure rules are
    marked = report(shown, caption=f"../report/{name}.rst", category="Figures")
    return [marked if f == shown else f for f in files]


def all_targets():
    """Every table (with the .md and .html of the report tables), every figure and the summary."""
    tables = [
        f"results/{STUDY}/tables/{t}.{ext}"
        for t in TABLES
        for ext in ("parquet", "csv")
    ]
    tables += [
        f"results/{STUDY}/tables/{t}.{ext}"
        for t in REPORT_TABLES
        for ext in ("md", "html")
    ]
    figures = [
        f
        for name in FIGURES
        if name not in PID_FIGURES or pid_files()
        for f in figure_files(name, study=STUDY)
    ]
    alignment = [
        f"results/{STUDY}/alignment/{DATASET}.{ext}" for ext in ("parquet", "csv", "md")
    ]
    return tables + figures + alignment + token_files() + summary_files()


def summary_files(study=STUDY):
    """SUMMARY.md and the report's landing fragment."""
    return [f"results/{study}/SUMMARY.md", f"results/{study}/answer.html"]


def shown_figure(name):
    """The file of a figure that the report and SUMMARY.md show (PNG when configured)."""
    files = figure_files(name, study=STUDY)
    return next((f for f in files if f.endswith(".png")), files[0])


def summary_links():
    """Every table and figure file of the study, for SUMMARY.md's links."""
    files = [
        f
        for f in all_targets()
        if f.startswith((f"results/{STUDY}/tables/", f"results/{STUDY}/figures/"))
    ]
    files.append(f"results/{STUDY}/tables/theory.md")
    if pid_files():
        files.append(f"results/{STUDY}/tables/pid.md")
    return files


def token_files():
    """Token sequences of the encoders that ask for them, for the modalities backbones use."""
    if config["dataset"]["kind"] == "synthetic":
        return []
    return sorted(
        {
            f"results/features/{DATASET}/{backbone[m]}/{m}_tokens.parquet"
            for backbone in config["backbones"].values()
            for m in ("image", "text")
            if config["encoders"][backbone[m]]["tokens"]
        }
    )


def download_args(archive):
    """CLI arguments of the download rule: URL, checksums and the user's local copy, if any
    (and, for kinds other than Flickr8k, the config key that names such a copy)."""
    source = DATASET_CONFIG[archive]
    args = ["--url", source["url"]]
    for algo in ("md5", "sha256"):
        if source.get(algo):
            args += [f"--{algo}", source[algo]]
    local = DATASET_CONFIG["archives"][archive]
    if local:
        args += ["--local", str(Path(local).resolve())]
    if KIND != "flickr8k":
        args += ["--local-key", f"dataset.{KIND}.archives.{archive}"]
    return shlex.join(args)


def weights_file_input(wildcards):
    """An encoder's local weights file, as an input: replacing it reruns what it encodes."""
    weights_file = config["encoders"][wildcards.encoder].get("checkpoint")
    return {"weights_file": weights_file} if weights_file else {}


def encoder_plugin_hash(wildcards):
    """For a plug-in encoder (``library: python``), a hash of its module's source."""
    spec = config["encoders"][wildcards.encoder]
    if spec["library"] != "python":
        return ""
    return plugin_hash(spec["model"].partition(":")[0])


def feature_inputs(wildcards):
    inputs = {
        "captions": f"results/data/{wildcards.dataset}/captions.parquet",
        "weights": f"results/weights/{wildcards.encoder}.json",
        **weights_file_input(wildcards),
    }
    if wildcards.modality == "image":
        inputs["images"] = IMAGES
    return inputs


def print_cost():
    """At the start of a run that trains: the study's training cost (``alignfuse cost``: jobs,
    seed-epochs and wall time measured on this machine). ALIGNFUSE_COST_ON_START=0 skips it;
    if it fails, the run goes on with a warning."""
    if os.environ.get("ALIGNFUSE_COST_ON_START", "1").strip() == "0":
        return
    if not any(job.rule.name == "train" for job in workflow.dag.needrun_jobs()):
        return
    study = Path(".snakemake/alignfuse/cost-config.json")
    study.parent.mkdir(parents=True, exist_ok=True)
    study.write_text(as_json(config))
    schema = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
    command = [
        sys.executable,
        "-m",
        "alignfuse.cli",
        "cost",
        "--configfile",
        str(study),
    ]
    done = subprocess.run(
        [*command, "--schema", str(schema)], capture_output=True, text=True
    )
    if done.returncode == 0:
        logger.info(
            f"Expected cost of the study's training (alignfuse cost):\n{done.stdout}"
        )
    else:
        lines = done.stderr.strip().splitlines() or ["no output"]
        logger.warning(f"alignfuse cost failed, the run goes on: {lines[-1]}")
