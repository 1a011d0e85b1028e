"""Flickr30k's and COCO's captions in Karpathy's splits, read in place from caption_datasets.zip.

Karpathy's ``caption_datasets.zip`` (https://cs.stanford.edu/people/karpathy/deepimagesent/) holds
one ``dataset_<name>.json`` per dataset in the layout of karpathy/neuraltalk2's preprocessing:
``{"dataset": name, "images": [entry, ...]}``, each entry with ``filename``, ``imgid``, ``split``
(train, restval, val or test), ``sentences`` (``[{"raw", "tokens", "imgid", "sentid"}]``) and
``sentids``; COCO entries also carry ``filepath`` (train2014 or val2014) and ``cocoid``. As in the
retrieval literature, restval (COCO's val2014 images outside val and test) joins train, and val
is our dev split. Image ids are file names (``1000092795.jpg``, ``COCO_val2014_000000391895.jpg``),
looked up by name in the image archive(s).

Each malformed image entry stops the job with a message naming the file, the entry and the fix, or
with ``on_malformed: skip`` is left out and reported. Images missing from the archives are listed
before any encoder runs: an error, or with ``on_bad_image: skip`` left out with their captions
(which then also decodes every image and leaves out those that fail).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

import pandas as pd

from alignfuse.data.archives import is_ignored, open_archive, read_member
from alignfuse.data.datasets import SPLITS, kept_lines, split_counts
from alignfuse.data.folder import listed
from alignfuse.data.images import ImageSource, undecodable
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import write_frame

KINDS = ("flickr30k", "coco")
MEMBER = {kind: f"dataset_{kind}.json" for kind in KINDS}
# Karpathy's split names -> ours: restval is training data in every retrieval paper since VSE++.
SPLIT_OF = {"train": "train", "restval": "train", "val": "dev", "test": "test"}
REQUIRED = {
    "flickr30k": ("filename", "split", "sentences"),
    "coco": ("filepath", "filename", "split", "sentences"),
}
COLUMNS = ["image_id", "caption_id", "caption", "split"]


def malformed_fix(kind: str) -> str:
    return (
        "delete caption_datasets.zip and download it again, or set "
        f"dataset.{kind}.on_malformed: skip to leave such images out"
    )


def read_json(captions_zip: Path, kind: str) -> tuple[str, list]:
    """The member's name and its list of image entries, found by file name in the zip."""
    name = MEMBER[kind]
    with open_archive(captions_zip) as zf:
        found = [
            info.filename
            for info in zf.infolist()
            if PurePosixPath(info.filename).name == name and not is_ignored(info.filename)
        ]
        if not found:
            raise AlignfuseError(
                f"{captions_zip}: no {name} in the archive; it is not Karpathy's "
                f"caption_datasets.zip. Download it again, or point dataset.{kind}.archives."
                "captions at the right file"
            )
        data = read_member(zf, found[0])
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlignfuseError(
            f"{name} (in {captions_zip}) is not valid UTF-8 JSON ({exc}); delete the archive "
            "and download it again"
        ) from None
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, list):
        raise AlignfuseError(
            f"{name} (in {captions_zip}): no 'images' list at the top level; it is not "
            "Karpathy's file. Delete the archive and download it again"
        )
    if document.get("dataset", kind) != kind:
        raise AlignfuseError(
            f"{name} (in {captions_zip}) describes dataset '{document['dataset']}', not "
            f"'{kind}'; delete the archive and download it again"
        )
    return name, images


def entry_problem(entry, kind: str) -> str | None:
    """Why one image entry cannot be used (None when it can)."""
    if not isinstance(entry, dict):
        return "is not a JSON object"
    missing = [key for key in REQUIRED[kind] if key not in entry]
    if missing:
        return f"has no {', '.join(repr(k) for k in missing)}"
    filename, split, sentences = entry["filename"], entry["split"], entry["sentences"]
    if not isinstance(filename, str) or "/" in filename or not filename.endswith(".jpg"):
        return f"filename {filename!r} is not an image file name"
    if split not in SPLIT_OF:
        return f"split {split!r} is not one of {', '.join(SPLIT_OF)}"
    if not isinstance(sentences, list) or not sentences:
        return "has no sentences"
    for k, sentence in enumerate(sentences):
        raw = sentence.get("raw") if isinstance(sentence, dict) else None
        if not isinstance(raw, str) or not raw.strip():
            return f"sentence {k} has no 'raw' text"
    return None


def parse_entries(
    images: list, kind: str, where: str, on_malformed: str
) -> tuple[dict[str, tuple[str, list[str]]], list[dict]]:
    """(image name -> (our split, captions)) and the entries skipped, each with its problem."""
    if on_malformed not in ("error", "skip"):
        raise ValueError(f"on_malformed must be 'error' or 'skip', not {on_malformed!r}")
    parsed: dict[str, tuple[str, list[str]]] = {}
    first: dict[str, int] = {}
    skipped = []
    for i, entry in enumerate(images):
        problem = entry_problem(entry, kind)
        name = entry.get("filename") if isinstance(entry, dict) else None
        if problem is None and name in first:
            problem = f"repeats images[{first[name]}]"
        if problem:
            if on_malformed == "error":
                label = f" ('{name}')" if isinstance(name, str) else ""
                raise AlignfuseError(
                    f"{where} images[{i}]{label}: {problem}; {malformed_fix(kind)}"
                )
            skipped.append({"entry": i, "filename": name, "problem": problem})
            continue
        first[name] = i
        # captions as written, with runs of white space (COCO has stray newlines) made one space
        parsed[name] = (
            SPLIT_OF[entry["split"]],
            [" ".join(s["raw"].split()) for s in entry["sentences"]],
        )
    return parsed, skipped


def read_captions(
    kind: str,
    captions_zip: Path,
    images: Path | list[Path] | None,
    on_malformed: str = "error",
    on_bad_image: str = "error",
) -> tuple[pd.DataFrame, dict]:
    """The captions table (image_id, caption_id, caption, split) and a report of what was dropped."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    captions_zip = Path(captions_zip)
    name, entries = read_json(captions_zip, kind)
    where = f"{name} (in {captions_zip})"
    parsed, skipped = parse_entries(entries, kind, where, on_malformed)
    karpathy_splits = pd.Series(
        [e["split"] for e in entries if isinstance(e, dict) and e.get("filename") in parsed]
    ).value_counts()

    missing, bad = [], {}
    if images is not None:
        source = ImageSource(images, "name")
        found, problems = source.locate(sorted(parsed))
        missing = sorted(problems)
        if missing and on_bad_image == "error":
            raise AlignfuseError(
                f"{source.where}: {len(missing)} image(s) of {name} are missing: "
                f"{listed(missing)}; use the complete archive(s), or set "
                f"dataset.{kind}.on_bad_image: skip to leave them out with their captions"
            )
        if on_bad_image == "skip":
            bad = {image: "is missing from the archive" for image in missing}
            bad |= undecodable(source, found)
            parsed = {image: v for image, v in parsed.items() if image not in bad}

    rank = {split: i for i, split in enumerate(SPLITS)}
    order = sorted(parsed, key=lambda image: (rank[parsed[image][0]], image))
    rows = [
        (image, f"{image}#{k}", caption, parsed[image][0])
        for image in order
        for k, caption in enumerate(parsed[image][1])
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for split in SPLITS:
        if not (frame["split"] == split).any():
            raise AlignfuseError(
                f"{where}: no images left in the {split} split; the archive is not Karpathy's "
                "caption_datasets.zip: delete it and download it again"
            )
    report = {
        "captions_archive": captions_zip.name,
        "member": name,
        "images_archives": (
            None
            if images is None
            else [Path(p).name for p in (images if isinstance(images, list) else [images])]
        ),
        "karpathy_splits": {split: int(n) for split, n in karpathy_splits.sort_index().items()},
        **split_counts(frame),
        "malformed_skipped": {"count": len(skipped), "entries": skipped},
        "bad_images_dropped": bad,
    }
    return frame, report


def summary(report: dict) -> str:
    """The report as a few readable lines for the job's log."""
    lines = [
        f"captions from {report['member']} in {report['captions_archive']} "
        f"(Karpathy's splits {report['karpathy_splits']}; restval joins train, val is dev):",
        *kept_lines(report),
    ]
    skipped = report["malformed_skipped"]
    if skipped["count"]:
        lines.append(f"  skipped {skipped['count']} malformed image entries:")
        lines += [
            f"    images[{e['entry']}] ({e['filename']}): {e['problem']}"
            for e in skipped["entries"][:10]
        ]
    bad = report["bad_images_dropped"]
    if bad:
        lines.append(
            f"  dropped {len(bad)} images that are missing or cannot be decoded (on_bad_image: "
            "skip), with their captions: "
            + "; ".join(f"{image} {why}" for image, why in list(bad.items())[:5])
        )
    return "\n".join(lines)


def write_captions(
    kind: str,
    captions_zip: Path,
    images: Path | list[Path] | None,
    out: Path,
    on_malformed: str = "error",
    on_bad_image: str = "error",
) -> dict:
    """Write ``captions.parquet`` atomically with the report in its metadata; return the report."""
    frame, report = read_captions(kind, captions_zip, images, on_malformed, on_bad_image)
    print(summary(report), file=sys.stderr)
    write_frame(frame, out, {"dataset": kind, "report": report})
    return report
