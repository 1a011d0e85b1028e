"""The ``alignfuse`` command: one subcommand per workflow rule, each a thin call into a module.

Subcommands import their modules lazily, so a job pays only for what it runs. Errors a user can
cause print one line (no traceback) and exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alignfuse.errors import AlignfuseError
from alignfuse.figures import FIGURE_TABLES, FIGURES


def json_arg(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def label_arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def synth_captions(args) -> None:
    from alignfuse.data.synthetic import write_captions

    write_captions(args.config, args.out)


def synth_features(args) -> None:
    from alignfuse.features.synthetic import write_features

    write_features(args.config, args.encoder, args.rotation, args.image_out, args.text_out)


def download(args) -> None:
    from alignfuse.data.download import LOCAL_KEY, fetch_archive

    fetch_archive(
        args.url,
        args.out,
        md5=args.md5,
        sha256=args.sha256,
        local=args.local,
        local_key=args.local_key or LOCAL_KEY,
    )


def captions(args) -> None:
    from alignfuse.data.flickr8k import write_captions

    write_captions(
        args.text_zip,
        args.images_zip,
        args.out,
        on_malformed=args.on_malformed,
        on_bad_image=args.on_bad_image,
    )


def karpathy_captions(args) -> None:
    from alignfuse.data.karpathy import write_captions

    write_captions(
        args.kind,
        args.captions_zip,
        args.images,
        args.out,
        on_malformed=args.on_malformed,
        on_bad_image=args.on_bad_image,
    )


def flickr30k_images(args) -> None:
    from alignfuse.data.repack import pack_images

    pack_images(args.source, args.out, sha256=args.sha256)


def folder_captions(args) -> None:
    from alignfuse.data.folder import write_captions

    write_captions(args.config, args.out)


def example_folder(args) -> None:
    from alignfuse.data.example_folder import make_example_folder

    images, captions = make_example_folder(
        args.out, args.images, args.captions_per_image, args.seed
    )
    print(f"images under {images}, captions in {captions}")


def pairs(args) -> None:
    from alignfuse.data.pairs import write_pairs

    write_pairs(args.captions, args.out_dir, args.seed)


def check_sizes(args) -> None:
    from alignfuse.config import check_sizes

    print(json.dumps(check_sizes(args.request)))


def fetch_weights(args) -> None:
    from alignfuse.features.encoders import fetch_weights

    print(fetch_weights(args.encoder, tuple(args.modality) or None))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(args.encoder, sort_keys=True) + "\n")


def features(args) -> None:
    import torch

    from alignfuse.features.extraction import extract_features

    torch.set_num_threads(args.threads)
    spec = (
        args.encoder if args.batch_size is None else {**args.encoder, "batch_size": args.batch_size}
    )
    extract_features(
        spec,
        args.modality,
        args.captions,
        args.out,
        images=args.images,
        device=args.device,
        workers=args.workers,
        on_bad_image=args.on_bad_image,
        tokens_out=args.tokens_out,
        image_key=args.image_key,
    )


def train(args) -> None:
    from alignfuse.parquet import write_frame
    from alignfuse.train.condition import train_condition
    from alignfuse.train.tuning import apply_chosen, read_chosen

    spec = args.spec
    if args.tuned:
        spec = apply_chosen(spec, read_chosen(args.tuned, spec["method"]))
    trained = train_condition(
        args.image_features,
        args.text_features,
        args.pairs_dir,
        args.n,
        spec,
        args.threads,
        labels=dict(args.label),
    )
    metadata = {"spec": spec, "n": args.n}
    write_frame(trained.curves, args.curves_out, metadata)
    write_frame(trained.predictions, args.predictions_out, metadata)
    write_frame(trained.fused, args.fused_out, metadata)
    write_frame(trained.runs, args.out, metadata)


def tune(args) -> None:
    from alignfuse.parquet import write_frame
    from alignfuse.train.tuning import tune, write_chosen

    tuned = tune(args.image_features, args.text_features, args.pairs_dir, args.spec, args.threads)
    frame = tuned.candidates
    for key, value in reversed(args.label):
        frame.insert(0, key, value)
    write_frame(frame, args.out, {"spec": args.spec})
    write_chosen(tuned.chosen, args.chosen_out)


def align_contrastive(args) -> None:
    from alignfuse.align.contrastive_set import write_contrastive

    write_contrastive(
        args.image,
        args.text,
        args.captions,
        args.settings,
        args.image_out,
        args.text_out,
        args.threads,
    )


def align_degrade(args) -> None:
    from alignfuse.align.degraded_set import write_degraded

    write_degraded(args.image, args.text, args.captions, args.alignment, args.seed, args.out)


def alignment_metrics(args) -> None:
    from alignfuse.align.measurements import measure, write_measurements

    write_measurements(measure(args.feature_sets, args.captions), args.out)


def pid_condition(args) -> None:
    from alignfuse.pid.stage import write_condition_pid

    write_condition_pid(
        args.image_features,
        args.text_features,
        args.captions,
        args.test_pairs,
        args.runs,
        args.predictions,
        args.fused,
        args.settings,
        dict(args.label),
        args.out,
        args.workers,
    )


def pid_table(args) -> None:
    from alignfuse.pid.stage import write_pid_table

    write_pid_table(args.conditions, args.out)


def theory(args) -> None:
    from alignfuse.theory.stage import write_theory

    write_theory(
        args.runs,
        args.comparisons,
        args.feature_sets,
        args.methods,
        args.settings,
        args.reference,
        args.out_dir,
    )


def advise(args) -> None:
    from alignfuse.theory.advise import advice_text, advise

    advice = advise(args.image_features, args.text_features, args.n, args.results, args.reference)
    print(json.dumps(advice, indent=2, default=float) if args.json else advice_text(advice))


def aggregate(args) -> None:
    from alignfuse.analysis.tables import (
        Settings,
        collect_curves,
        collect_predictions,
        collect_runs,
        trained_conditions,
        write_csv,
        write_tables,
    )
    from alignfuse.parquet import read_frame, write_frame

    if not args.test_pairs.is_file():
        raise AlignfuseError(f"{args.test_pairs}: test pairs not found; run the pairs stage first")
    test_pairs = read_frame(
        args.test_pairs, "rerun the pairs stage", columns=["image_id", "caption_id", "label"]
    )
    runs = collect_runs(args.runs)
    settings = Settings.from_config(args.settings, trained_conditions(runs))
    predictions = collect_predictions(args.runs, test_pairs)
    metrics = None
    if args.alignment_metrics:
        metrics = read_frame(args.alignment_metrics, "rerun the alignment_metrics rule")
    write_tables(runs, args.out_dir, settings, predictions, test_pairs, metrics)
    curves = collect_curves(args.runs)
    write_frame(curves, args.out_dir / "curves.parquet")
    write_csv(curves, args.out_dir / "curves.csv")


def figure(args) -> None:
    import importlib

    import pandas as pd

    from alignfuse.figures.style import save_figure

    if not args.table.is_file():
        raise AlignfuseError(
            f"{args.table}: table not found; figure {args.name!r} draws "
            f"results/<study>/tables/{FIGURE_TABLES[args.name]}.parquet (run the aggregate rule first)"
        )
    module, function = FIGURES[args.name].split(":")
    plot = getattr(importlib.import_module(module), function)
    save_figure(plot(pd.read_parquet(args.table), args.study, **args.options), args.out, args.dpi)


def summary(args) -> None:
    from alignfuse.analysis.answer import read_answer, write_answer

    answer = read_answer(
        args.claims, args.figures, args.links, args.study, args.dataset, args.confidence
    )
    write_answer(answer, args.markdown_out, args.html_out)


def schema_path() -> Path:
    """The workflow's config schema: under the working directory (a checkout's root), else
    beside this package's checkout (an editable install run from anywhere)."""
    from alignfuse.config import SCHEMA_NAME

    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / SCHEMA_NAME).is_file():
            return root / SCHEMA_NAME
    raise AlignfuseError(f"{SCHEMA_NAME}: not found; run from the repository root or pass --schema")


def cost(args) -> None:
    import yaml

    from alignfuse.config import validate_config
    from alignfuse.cost.estimate import machine_cores, study_cost

    if not args.configfile.is_file():
        raise AlignfuseError(f"{args.configfile}: config file not found; pass a study's YAML file")
    schema = args.schema or schema_path()
    config = yaml.safe_load(args.configfile.read_text(encoding="utf-8"))
    try:
        validate_config(config, schema)
    except AlignfuseError as exc:
        raise AlignfuseError(f"{args.configfile}: invalid configuration: {exc}") from None
    cores = [machine_cores()] + [n for n in args.cores if n != machine_cores()]
    estimate = study_cost(config, cores, args.best_epoch)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(estimate.rows, indent=2) + "\n")
    print(estimate.text)


def add_bad_input_options(p: argparse.ArgumentParser) -> None:
    """--on-malformed and --on-bad-image of the captions commands of released datasets."""
    p.add_argument("--on-malformed", choices=["error", "skip"], default="error")
    p.add_argument(
        "--on-bad-image",
        choices=["error", "skip"],
        default="error",
        help="skip: decode every image and drop those that are missing or damaged",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alignfuse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth-captions", help="write the synthetic dataset's captions table")
    p.add_argument("--config", type=json_arg, required=True, help="dataset.synthetic as JSON")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=synth_captions)

    p = sub.add_parser(
        "synth-features", help="write one synthetic encoder's image and text features"
    )
    p.add_argument("--config", type=json_arg, required=True, help="dataset.synthetic as JSON")
    p.add_argument("--encoder", required=True)
    p.add_argument("--rotation", type=float, required=True)
    p.add_argument("--image-out", type=Path, required=True)
    p.add_argument("--text-out", type=Path, required=True)
    p.set_defaults(func=synth_features)

    p = sub.add_parser("download", help="download (or link a local copy of) a checksummed archive")
    p.add_argument("--url", required=True)
    p.add_argument("--md5")
    p.add_argument("--sha256")
    p.add_argument("--local", type=Path, help="an archive you already have; skips the download")
    p.add_argument(
        "--local-key", help="the config key that errors name for a local copy (Flickr8k's)"
    )
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=download)

    p = sub.add_parser("captions", help="parse Flickr8k captions and official splits")
    p.add_argument("--text-zip", type=Path, required=True)
    p.add_argument("--images-zip", type=Path)
    add_bad_input_options(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=captions)

    p = sub.add_parser(
        "karpathy-captions", help="parse Flickr30k or COCO captions in Karpathy's splits"
    )
    p.add_argument("--kind", choices=["flickr30k", "coco"], required=True)
    p.add_argument("--captions-zip", type=Path, required=True, help="caption_datasets.zip")
    p.add_argument("--images", type=Path, nargs="+", help="the image zip(s)")
    add_bad_input_options(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=karpathy_captions)

    p = sub.add_parser(
        "flickr30k-images", help="pack your flickr30k-images.tar.gz (or folder) into a zip"
    )
    p.add_argument("--source", type=Path, required=True, help="a tar(.gz), zip or directory")
    p.add_argument("--sha256", help="the archive's expected sha256, checked when given")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=flickr30k_images)

    p = sub.add_parser(
        "folder-captions", help="check your captions file against your images; draw its splits"
    )
    p.add_argument("--config", type=json_arg, required=True, help="dataset.folder as JSON")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=folder_captions)

    p = sub.add_parser(
        "example-folder", help="write a small folder dataset (JPEGs of shapes and a captions CSV)"
    )
    p.add_argument("out", type=Path, help="directory to write images/ and captions.csv into")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--captions-per-image", type=int, choices=range(1, 6), default=1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=example_folder)

    p = sub.add_parser("pairs", help="balanced matching pairs per split (nested training prefixes)")
    p.add_argument("--captions", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=pairs)

    p = sub.add_parser(
        "check-sizes", help="check that every param_match target is reachable (config checks)"
    )
    p.add_argument("--request", type=json_arg, required=True, help="methods and widths as JSON")
    p.set_defaults(func=check_sizes)

    p = sub.add_parser("fetch-weights", help="download an encoder's weights into the library cache")
    p.add_argument("--encoder", type=json_arg, required=True, help="encoder spec as JSON")
    p.add_argument(
        "--modality",
        action="append",
        choices=["image", "text"],
        default=[],
        help="the towers to fetch (default: every tower the library has)",
    )
    p.add_argument("--out", type=Path, help="marker file recording the spec once fetched")
    p.set_defaults(func=fetch_weights)

    p = sub.add_parser("features", help="encode images or captions to a Parquet feature file")
    p.add_argument("--encoder", type=json_arg, required=True, help="encoder spec as JSON")
    p.add_argument("--modality", choices=["image", "text"], required=True)
    p.add_argument("--captions", type=Path, required=True)
    p.add_argument(
        "--images", type=Path, nargs="+", help="the images: a zip (or several) or a directory"
    )
    p.add_argument(
        "--image-key",
        choices=["name", "path"],
        default="name",
        help="image ids are file names, or paths relative to the zip's or directory's root",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes decoding images")
    p.add_argument("--threads", type=int, default=1, help="threads of the forward pass on CPU")
    p.add_argument("--on-bad-image", choices=["error", "skip"], default="error")
    p.add_argument(
        "--batch-size", type=int, help="images or captions per forward pass (default: the spec's)"
    )
    p.add_argument("--tokens-out", type=Path, help="write token sequences here")
    p.add_argument("--out", type=Path, help="write pooled features here")
    p.set_defaults(func=features)

    p = sub.add_parser("train", help="train the given seeds of one fusion condition together")
    p.add_argument("--image-features", type=Path, required=True)
    p.add_argument("--text-features", type=Path, required=True)
    p.add_argument("--pairs-dir", type=Path, required=True)
    p.add_argument(
        "--n", type=int, required=True, help="training pairs (a prefix of train.parquet)"
    )
    p.add_argument("--spec", type=json_arg, required=True, help="method, head, training, seeds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--label", type=label_arg, action="append", default=[], help="KEY=VALUE column")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--curves-out", type=Path, required=True)
    p.add_argument("--predictions-out", type=Path, required=True)
    p.add_argument("--fused-out", type=Path, required=True, help="fused representations")
    p.add_argument(
        "--tuned", type=Path, help="the method's chosen values (tune's JSON): train with them"
    )
    p.set_defaults(func=train)

    p = sub.add_parser(
        "tune", help="train a method's grid of training settings and choose on dev (never test)"
    )
    p.add_argument("--image-features", type=Path, required=True)
    p.add_argument("--text-features", type=Path, required=True)
    p.add_argument(
        "--pairs-dir", type=Path, required=True, help="holds train.parquet and dev.parquet"
    )
    p.add_argument(
        "--spec", type=json_arg, required=True, help="method, training, grid, scale, seeds, metric"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--label", type=label_arg, action="append", default=[], help="KEY=VALUE column")
    p.add_argument("--out", type=Path, required=True, help="every candidate's dev scores")
    p.add_argument("--chosen-out", type=Path, required=True, help="the chosen values (JSON)")
    p.set_defaults(func=tune)

    p = sub.add_parser("align-contrastive", help="fit contrastive projections; write both sides")
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--text", type=Path, required=True)
    p.add_argument("--captions", type=Path, required=True)
    p.add_argument("--settings", type=json_arg, required=True, help="alignment.contrastive as JSON")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--image-out", type=Path, required=True)
    p.add_argument("--text-out", type=Path, required=True)
    p.set_defaults(func=align_contrastive)

    p = sub.add_parser("align-degrade", help="degrade the text side of a feature set")
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--text", type=Path, required=True)
    p.add_argument("--captions", type=Path, required=True)
    p.add_argument("--alignment", required=True, help="e.g. rotation-0.5, contrastive+noise-0.25")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=align_degrade)

    p = sub.add_parser("alignment-metrics", help="measure feature sets on the test split")
    p.add_argument(
        "--feature-sets", type=json_arg, required=True, help="[{backbone, alignment, image, text}]"
    )
    p.add_argument("--captions", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help=".parquet; .csv and .md beside it")
    p.set_defaults(func=alignment_metrics)

    p = sub.add_parser("pid-condition", help="partial information decomposition of one condition")
    p.add_argument("--image-features", type=Path, required=True)
    p.add_argument("--text-features", type=Path, required=True)
    p.add_argument("--captions", type=Path, required=True)
    p.add_argument("--test-pairs", type=Path, required=True)
    p.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="the condition's run files (status)"
    )
    p.add_argument("--predictions", type=Path, nargs="+", required=True, help="one per run file")
    p.add_argument("--fused", type=Path, nargs="+", required=True, help="one per run file")
    p.add_argument("--settings", type=json_arg, required=True, help="the config's pid as JSON")
    p.add_argument("--label", type=label_arg, action="append", default=[], help="KEY=VALUE column")
    p.add_argument("--workers", type=int, default=1, help="processes for the solves")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=pid_condition)

    p = sub.add_parser("pid-table", help="the study's PID table from its conditions")
    p.add_argument("--conditions", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True, help=".parquet; .csv, .md, .html beside it")
    p.set_defaults(func=pid_table)

    p = sub.add_parser("theory", help="sample-complexity curves and learning-curve fits")
    p.add_argument("--runs", type=Path, required=True, help="the study's runs table")
    p.add_argument(
        "--comparisons", type=Path, required=True, help="the study's declared comparisons table"
    )
    p.add_argument("--feature-sets", type=json_arg, required=True)
    p.add_argument("--methods", type=json_arg, required=True, help="the config's methods as JSON")
    p.add_argument("--settings", type=json_arg, required=True, help="the config's theory as JSON")
    p.add_argument(
        "--reference", default="concat", help="the label the theory's sample counts are set against"
    )
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=theory)

    p = sub.add_parser(
        "advise", help="concat or cross-attention for your features, from a study's curves"
    )
    p.add_argument("--image-features", type=Path, required=True, help="pooled image features")
    p.add_argument("--text-features", type=Path, required=True, help="their captions', row by row")
    p.add_argument("--n", type=int, required=True, help="training pairs you have")
    p.add_argument("--results", type=Path, help="a finished study: results/<study>")
    p.add_argument("--reference", default="concat")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=advise)

    p = sub.add_parser(
        "aggregate",
        help="collect run files into the study's tables: runs, summary, paired, paper_vs_ours",
    )
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="train-stage run files")
    p.add_argument(
        "--test-pairs", type=Path, required=True, help="the test split's pairs (test.parquet)"
    )
    p.add_argument(
        "--settings",
        type=json_arg,
        required=True,
        help="the config's analysis, claims, comparisons and method labels' families and "
        "recipes as JSON (the rule's params: grid.comparison_spec)",
    )
    p.add_argument(
        "--alignment-metrics", type=Path, help="the alignment stage's metrics of the feature sets"
    )
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=aggregate)

    tables = ", ".join(f"{name}: {table}" for name, table in sorted(FIGURE_TABLES.items()))
    p = sub.add_parser("figure", help="draw one figure from the table it reads")
    p.add_argument("name", choices=sorted(FIGURES))
    p.add_argument(
        "--table",
        "--runs",
        dest="table",
        type=Path,
        required=True,
        help=f"results/<study>/tables/<table>.parquet that the figure draws ({tables})",
    )
    p.add_argument("--study", default="study")
    p.add_argument(
        "--options", type=json_arg, default={}, help="the figure's options as JSON (from its rule)"
    )
    p.add_argument("--dpi", type=int, default=200)
    p.add_argument("--out", type=Path, nargs="+", required=True, help="one path per format")
    p.set_defaults(func=figure)

    p = sub.add_parser(
        "summary", help="the study's answer: SUMMARY.md and the report's landing fragment"
    )
    p.add_argument("--claims", type=Path, required=True, help="tables/paper_vs_ours.parquet")
    p.add_argument(
        "--figures", type=Path, nargs="*", default=[], help="the figures shown (gap, alignment_gap)"
    )
    p.add_argument(
        "--links", type=Path, nargs="*", default=[], help="every table and figure file to link"
    )
    p.add_argument("--study", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--confidence", type=float, default=0.95, help="analysis.confidence")
    p.add_argument("--markdown-out", type=Path, required=True, help="results/<study>/SUMMARY.md")
    p.add_argument("--html-out", type=Path, required=True, help="the report's landing fragment")
    p.set_defaults(func=summary)

    p = sub.add_parser(
        "cost", help="a study's training cost before it runs: jobs, seed-epochs, FLOPs, wall time"
    )
    p.add_argument("--configfile", type=Path, default=Path("config.yaml"), help="the study")
    p.add_argument("--schema", type=Path, help="the config schema (default: the workflow's)")
    p.add_argument(
        "--cores",
        type=int,
        action="append",
        default=[],
        help="also the wall time on this many cores of this machine's speed (repeatable)",
    )
    p.add_argument(
        "--best-epoch",
        type=int,
        default=25,
        help="epoch at which a typical seed's dev accuracy peaks (default 25: the paper grid's "
        "concat jobs stopped after 22-35 epochs with patience 10)",
    )
    p.add_argument("--json", type=Path, help="also write the table's rows here as JSON")
    p.set_defaults(func=cost)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except AlignfuseError as exc:
        print(f"alignfuse {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
