"""A user's own image-caption data: a folder (or zip) of images and a CSV or JSON Lines file.

The captions file has an ``image`` column (a path relative to the images root) and a ``caption``
column, and optionally ``split`` (train/dev/test). Without it, images (never captions: an image's
captions stay together) are split by a seeded shuffle with configured fractions. The table is
checked when the workflow starts (columns, duplicates, splits, their sizes), and the captions job
checks every image (it exists under the root and decodes) before any features are computed, so
bad input fails in the first job with one message naming the file and line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from alignfuse.data.datasets import SPLITS, kept_lines, split_counts, synthetic_split_images
from alignfuse.data.images import ImageSource, escape_reason, undecodable
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import write_frame

KEY = "dataset.folder"
REQUIRED = ("image", "caption")
SHOWN = 5  # problems listed in one message before "and N more"
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def listed(items: list[str]) -> str:
    """The first few of ``items`` joined, with how many more there are."""
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


def read_csv(path: Path) -> tuple[pd.DataFrame, list[int]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AlignfuseError(
            f"{path}: not a readable CSV file ({' '.join(str(exc).split())}); save it as UTF-8 "
            "CSV with a header row naming the columns image and caption"
        ) from None
    # the header is line 1 (a row whose caption spans lines shifts later numbers)
    return frame, list(range(2, len(frame) + 2))


def read_jsonl(path: Path) -> tuple[pd.DataFrame, list[int]]:
    rows, lines = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AlignfuseError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AlignfuseError(
                f"{path} line {number}: not valid JSON ({exc}); write one JSON object per line"
            ) from None
        if not isinstance(row, dict):
            raise AlignfuseError(
                f"{path} line {number}: not a JSON object; write one object per line, such as "
                '{"image": "photos/1.jpg", "caption": "A dog on a beach."}'
            )
        rows.append({k: "" if v is None else str(v) for k, v in row.items()})
        lines.append(number)
    return pd.DataFrame(rows, dtype=str).fillna(""), lines


def read_table(path: str | Path) -> pd.DataFrame:
    """The captions file as strings (image, caption[, split]) with each row's ``line``."""
    path = Path(path)
    if not path.is_file():
        raise AlignfuseError(
            f"config key '{KEY}.captions': {path} is not a file; give the path of your CSV or "
            "JSON Lines file of image,caption rows"
        )
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        frame, lines = read_csv(path)
    elif suffix in JSONL_SUFFIXES:
        frame, lines = read_jsonl(path)
    else:
        raise AlignfuseError(
            f"config key '{KEY}.captions': {path} is neither .csv nor .jsonl; save the captions "
            "as CSV (a header row image,caption) or JSON Lines (one object per line)"
        )
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise AlignfuseError(
            f"{path}: no column(s) {', '.join(missing)} (found: {', '.join(frame.columns) or 'none'}); "
            "the captions file needs 'image' (a path relative to dataset.folder.images) and "
            "'caption', and may have 'split' (train, dev or test)"
        )
    columns = [c for c in (*REQUIRED, "split") if c in frame.columns]
    frame = frame[columns].apply(lambda column: column.str.strip())
    frame.insert(0, "line", lines)
    return frame


def check_rows(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Refuse empty cells, unsafe image paths, duplicate rows and unknown or shared splits, by
    line; return the rows with image paths normalised (``./a.jpg`` is ``a.jpg``)."""
    for column in frame.columns.drop("line"):
        empty = frame.loc[frame[column] == "", "line"].tolist()
        if empty:
            raise AlignfuseError(
                f"{path}: empty '{column}' on line(s) {listed([str(n) for n in empty])}; "
                "fill them in or delete those rows"
            )
    unsafe = [
        f"'{image}' (line {line}) {reason}"
        for line, image in zip(frame["line"], frame["image"], strict=True)
        if (reason := escape_reason(image))
    ]
    if unsafe:
        raise AlignfuseError(
            f"{path}: image path(s) that would leave the images root: {listed(unsafe)}; "
            "write each image as a path relative to dataset.folder.images, with '/' separators"
        )
    frame = frame.assign(image=[str(PurePosixPath(image)) for image in frame["image"]])
    duplicated = frame[frame.duplicated(["image", "caption"], keep=False)]
    if len(duplicated):
        first = duplicated.groupby(["image", "caption"], sort=False)["line"].apply(list)
        (image, _), lines = next(iter(first.items()))
        raise AlignfuseError(
            f"{path}: {len(duplicated) - len(first)} duplicate row(s), e.g. lines "
            f"{', '.join(map(str, lines))} repeat image '{image}' with the same caption; "
            "delete the repeats (a repeated pair would be both a training and a test example "
            "of itself)"
        )
    if "split" in frame.columns:
        unknown = frame.loc[~frame["split"].isin(SPLITS)]
        if len(unknown):
            row = unknown.iloc[0]
            raise AlignfuseError(
                f"{path} line {row['line']}: split '{row['split']}' is not one of "
                f"{', '.join(SPLITS)} ({len(unknown)} such row(s)); rename it, or drop the "
                "split column to split images by dataset.folder.split"
            )
        splits = frame.groupby("image")["split"].nunique()
        shared = splits[splits > 1]
        if len(shared):
            image = shared.index[0]
            lines = frame.loc[frame["image"] == image, ["line", "split"]]
            where = ", ".join(f"line {n}: {s}" for n, s in lines.itertuples(index=False))
            raise AlignfuseError(
                f"{path}: image '{image}' is in more than one split ({where}); every image's "
                "captions must be in one split, or the test set would share images with training"
            )
    return frame


def seeded_splits(images: list[str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Each image's split: a shuffle of the sorted images from ``seed``, cut by ``fractions``
    (train and dev rounded down, test takes the rest), so it depends on the image set alone."""
    ordered = sorted(images)
    sizes = synthetic_split_images(len(ordered), fractions)
    shuffled = np.random.default_rng(seed).permutation(len(ordered))
    labels = np.repeat(SPLITS, [sizes[s] for s in SPLITS])
    return {ordered[i]: str(label) for i, label in zip(shuffled, labels, strict=True)}


def split_table(cfg: dict) -> tuple[pd.DataFrame, bool]:
    """The checked captions file (line, image, caption, split), with seeded splits where it has
    no split column (the flag says whether it had one)."""
    path = Path(cfg["captions"])
    frame = check_rows(read_table(path), path)
    given = "split" in frame.columns
    if not given:
        split_of = seeded_splits(frame["image"].unique().tolist(), cfg["split"], cfg["seed"])
        frame["split"] = frame["image"].map(split_of)
    return frame, given


def check_split_sizes(frame: pd.DataFrame, path: Path, given: bool) -> None:
    """Every split can be paired: two or more images, none holding half of the split's captions."""
    for split in SPLITS:
        rows = frame[frame["split"] == split]
        counts = rows["image"].value_counts()
        fix = (
            "add rows for this split to the captions file"
            if given
            else f"add images, or raise '{KEY}.split.{split}'"
        )
        if len(counts) < 2:
            raise AlignfuseError(
                f"{path}: the {split} split gets {len(counts)} image(s), but matching pairs need "
                f"captions of at least 2 images; {fix}"
            )
        if 2 * counts.iloc[0] > len(rows):
            raise AlignfuseError(
                f"{path}: in the {split} split, image '{counts.index[0]}' holds {counts.iloc[0]} "
                f"of {len(rows)} captions, more than half, so its captions cannot all get "
                f"negatives from other images; {fix}"
            )


def split_captions(cfg: dict) -> dict[str, int]:
    """Captions per split of a folder dataset, checked, as the captions job will write them."""
    frame, given = split_table(cfg)
    check_split_sizes(frame, Path(cfg["captions"]), given)
    return {split: int((frame["split"] == split).sum()) for split in SPLITS}


def read_captions(cfg: dict) -> tuple[pd.DataFrame, dict]:
    """The captions table (image_id, caption_id, caption, split) and a report of what was dropped.

    Every image is looked up and decoded here: a missing one is an error (the file names it); an
    undecodable one is an error, or with ``on_bad_image: skip`` dropped with its captions, after
    the split is drawn (so one bad file does not reshuffle the others).
    """
    path, images_root = Path(cfg["captions"]), Path(cfg["images"])
    frame, given = split_table(cfg)
    source = ImageSource(images_root, key="path")
    found, missing = source.locate(sorted(frame["image"].unique()))
    bad = undecodable(source, found)
    first_line = frame.groupby("image")["line"].min()
    if missing:
        shown = [f"'{image}' (line {first_line[image]}) {why}" for image, why in missing.items()]
        raise AlignfuseError(
            f"{path}: {len(missing)} image path(s) not found under {images_root}: "
            f"{listed(shown)}; fix the paths (relative to '{KEY}.images') or add the images"
        )
    if bad and cfg["on_bad_image"] == "error":
        shown = [f"'{image}' (line {first_line[image]}) {why}" for image, why in bad.items()]
        raise AlignfuseError(
            f"{images_root}: {len(bad)} image(s) cannot be decoded: {listed(shown)}; "
            f"replace them, or set '{KEY}.on_bad_image: skip' to leave them out with their captions"
        )
    frame = frame[~frame["image"].isin(bad)]
    check_split_sizes(frame, path, given)

    frame = frame.assign(k=frame.groupby("image").cumcount(), rank=frame["split"].map(SPLITS.index))
    frame = frame.sort_values(["rank", "image", "k"], kind="stable")
    table = pd.DataFrame(
        {
            "image_id": frame["image"].to_numpy(),
            "caption_id": (frame["image"] + "#" + frame["k"].astype(str)).to_numpy(),
            "caption": frame["caption"].to_numpy(),
            "split": frame["split"].to_numpy(),
        }
    )
    report = {
        "captions_file": path.name,
        "images_root": images_root.name,
        "split_from": "the split column" if given else f"seeded (seed {cfg['seed']})",
        **split_counts(table),
        "bad_images_dropped": bad,
    }
    return table, report


def summary(report: dict) -> str:
    """The report as a few readable lines for the job's log."""
    lines = [
        f"captions from {report['captions_file']}, images under {report['images_root']} "
        f"(splits: {report['split_from']}):",
        *kept_lines(report),
    ]
    bad = report["bad_images_dropped"]
    if bad:
        lines.append(
            f"  dropped {len(bad)} images that cannot be decoded (on_bad_image: skip), with "
            "their captions: " + "; ".join(f"{n} {why}" for n, why in list(bad.items())[:SHOWN])
        )
    return "\n".join(lines)


def write_captions(cfg: dict, out: Path) -> dict:
    """Write ``captions.parquet`` atomically with the report in its metadata; return the report."""
    table, report = read_captions(cfg)
    print(summary(report), file=sys.stderr)
    write_frame(table, out, {"dataset": "folder", "report": report})
    return report
