"""Flickr8k's captions and official train/dev/test splits, read in place from the text archive.

The release has known quirks (a stray ``.jpg.1`` image name, captions of images that are in no
split), so everything dropped on the way to ``captions.parquet`` is counted and reported, both on
stderr and in the file's metadata, rather than silently lost.

Split images that the image archive lacks keep their captions here: the captions table describes
the text release, and the features stage decides what a missing image means (``on_bad_image``).
They are listed in the report so that the loss is visible before any encoder runs.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path, PurePosixPath

import pandas as pd

from alignfuse.data.archives import (
    image_members,
    is_ignored,
    open_archive,
    read_member,
)
from alignfuse.data.datasets import SPLITS
from alignfuse.data.images import ImageSource, undecodable
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import write_frame

TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {split: f"Flickr_8k.{split}Images.txt" for split in SPLITS}
STRAY_SUFFIX = ".jpg.1"
COLUMNS = ["image_id", "caption_id", "caption", "split"]
MALFORMED_FIX = "fix the archive (delete it and download it again) or set dataset.flickr8k.on_malformed_line: skip"


class Malformed:
    """Collects bad lines: raises on the first one, or records it when told to skip."""

    def __init__(self, archive: Path, on_malformed: str):
        if on_malformed not in ("error", "skip"):
            raise ValueError(f"on_malformed must be 'error' or 'skip', not {on_malformed!r}")
        self.archive = archive
        self.skip = on_malformed == "skip"
        self.lines: list[dict] = []

    def __call__(self, file: str, line: int, problem: str) -> None:
        if not self.skip:
            raise AlignfuseError(
                f"{file} line {line} (in {self.archive}): {problem}; {MALFORMED_FIX}"
            )
        self.lines.append({"file": file, "line": line, "problem": problem})


def text_members(text_zip: Path) -> dict[str, str]:
    """Read the token and split files, found by file name wherever they sit in the zip."""
    wanted = [TOKEN_FILE, *SPLIT_FILES.values()]
    with open_archive(text_zip) as zf:
        found = {
            PurePosixPath(info.filename).name: info.filename
            for info in zf.infolist()
            if not info.is_dir() and not is_ignored(info.filename)
        }
        missing = [name for name in wanted if name not in found]
        if missing:
            raise AlignfuseError(
                f"{text_zip}: no {', '.join(missing)} in the archive; it is not Flickr8k_text.zip. "
                "Delete it and download it again, or point dataset.flickr8k.archives.text at the right file"
            )
        texts = {}
        for name in wanted:
            try:
                texts[name] = read_member(zf, found[name]).decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise AlignfuseError(
                    f"{name} (in {text_zip}) is not UTF-8 text ({exc}); delete the archive and download it again"
                ) from None
    return texts


def numbered_lines(text: str):
    """(1-based line number, line) of every non-blank line; tolerates \\r\\n."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def parse_tokens(
    text: str, malformed: Malformed, strays: dict[str, int]
) -> dict[str, dict[int, str]]:
    """Captions by image and index k from ``<image>.jpg#<k>\\t<caption>`` lines."""
    captions: dict[str, dict[int, str]] = defaultdict(dict)
    seen: dict[tuple[str, int], int] = {}
    for number, line in numbered_lines(text):
        key, tab, caption = line.partition("\t")
        image, hash_, k = key.strip().rpartition("#")
        caption = caption.strip()
        if not tab:
            malformed(TOKEN_FILE, number, "no tab between '<image>#<k>' and the caption")
        elif not hash_ or not k.isdigit():
            malformed(TOKEN_FILE, number, f"'{key}' is not '<image>.jpg#<k>' with a number k")
        elif image.endswith(STRAY_SUFFIX):
            strays[image] = strays.get(image, 0) + 1
        elif not image.endswith(".jpg"):
            malformed(TOKEN_FILE, number, f"image name '{image}' does not end in .jpg")
        elif not caption:
            malformed(TOKEN_FILE, number, f"'{key}' has an empty caption")
        elif (image, int(k)) in seen:
            first = seen[(image, int(k))]
            malformed(TOKEN_FILE, number, f"caption id '{image}#{int(k)}' repeats line {first}")
        else:
            seen[(image, int(k))] = number
            captions[image][int(k)] = caption
    return captions


def parse_splits(texts: dict[str, str], text_zip: Path, malformed: Malformed) -> dict[str, str]:
    """Map each split image to its split; an image in two splits is an error."""
    split_of: dict[str, str] = {}
    for split, file in SPLIT_FILES.items():
        for number, line in numbered_lines(texts[file]):
            image = line.strip()
            if not image.endswith(".jpg") or "\t" in image or "#" in image:
                malformed(file, number, f"'{image}' is not an image file name")
            elif image in split_of:
                raise AlignfuseError(
                    f"{file} line {number} (in {text_zip}): '{image}' is already listed in the "
                    f"{split_of[image]} split; the official split files are disjoint. "
                    "Delete the archive and download it again"
                )
            else:
                split_of[image] = split
    return split_of


def read_captions(
    text_zip: Path,
    images_zip: Path | None,
    on_malformed: str = "error",
    on_bad_image: str = "error",
) -> tuple[pd.DataFrame, dict]:
    """The captions table (image_id, caption_id, caption, split) and a report of what was dropped.

    With ``on_bad_image="skip"`` every image is decoded here, and images that are missing from the
    archive or cannot be decoded are dropped with their captions, so that pairs and features are
    built from the same images (the features stage would otherwise skip images the pairs use).
    """
    text_zip = Path(text_zip)
    texts = text_members(text_zip)
    malformed = Malformed(text_zip, on_malformed)
    strays: dict[str, int] = {}
    captions = parse_tokens(texts[TOKEN_FILE], malformed, strays)
    split_of = parse_splits(texts, text_zip, malformed)

    without_captions = sorted(image for image in split_of if image not in captions)
    if without_captions and not malformed.skip:
        example = without_captions[0]
        raise AlignfuseError(
            f"{SPLIT_FILES[split_of[example]]} (in {text_zip}) lists {len(without_captions)} image(s) "
            f"with no captions in {TOKEN_FILE}, e.g. '{example}'; {MALFORMED_FIX}"
        )
    not_in_split = sorted(image for image in captions if image not in split_of)

    rank = {split: i for i, split in enumerate(SPLITS)}
    rows = sorted(
        (rank[split_of[image]], image, k, caption)
        for image, by_k in captions.items()
        if image in split_of
        for k, caption in by_k.items()
    )
    frame = pd.DataFrame(
        {
            "image_id": [image for _, image, _, _ in rows],
            "caption_id": [f"{image}#{k}" for _, image, k, _ in rows],
            "caption": [caption for _, _, _, caption in rows],
            "split": [SPLITS[r] for r, _, _, _ in rows],
        },
        columns=COLUMNS,
    )
    for split in SPLITS:
        if not (frame["split"] == split).any():
            raise AlignfuseError(
                f"{text_zip}: no captions left for the {split} split; the archive is not Flickr8k's "
                "text release: delete it and download it again"
            )

    missing, bad_images = None, {}
    if images_zip is not None:
        in_archive = image_members(images_zip)
        missing = sorted(set(frame["image_id"]) - in_archive.keys())
        if on_bad_image == "skip":
            bad_images = {name: "is missing from the archive" for name in missing}
            names = sorted(set(frame["image_id"]) & in_archive.keys())
            bad_images |= undecodable(ImageSource(images_zip), {n: in_archive[n] for n in names})
            frame = frame[~frame["image_id"].isin(bad_images)].reset_index(drop=True)
            missing = []
    kept = frame[["image_id", "split"]].drop_duplicates()["split"].value_counts()
    report = {
        "text_archive": text_zip.name,
        "images_archive": None if images_zip is None else Path(images_zip).name,
        "captions": {split: int((frame["split"] == split).sum()) for split in SPLITS},
        "images": {split: int(kept.get(split, 0)) for split in SPLITS},
        "captions_per_image": {
            str(n): int(count)
            for n, count in frame["image_id"].value_counts().value_counts().sort_index().items()
        },
        "strays_dropped": {
            "images": sorted(strays),
            "captions": sum(strays.values()),
            "reason": f"image names ending in '{STRAY_SUFFIX}' are a known defect of {TOKEN_FILE}; "
            "no such image is in the archive or in any split",
        },
        "malformed_skipped": {"count": len(malformed.lines), "lines": malformed.lines},
        "not_in_split": {
            "images": len(not_in_split),
            "captions": sum(len(captions[image]) for image in not_in_split),
            "names": not_in_split,
        },
        "split_images_without_captions": without_captions,
        "missing_from_image_archive": missing,
        "bad_images_dropped": bad_images,
    }
    return frame, report


def summary(report: dict) -> str:
    """The report as a few readable lines for the job's log."""
    lines = [
        f"Flickr8k captions from {report['text_archive']}:",
        "  kept: "
        + ", ".join(
            f"{split} {report['captions'][split]} captions of {report['images'][split]} images"
            for split in SPLITS
        ),
    ]
    if len(report["captions_per_image"]) > 1:
        lines.append(f"  captions per image vary: {report['captions_per_image']} (images by count)")
    strays = report["strays_dropped"]
    if strays["captions"]:
        lines.append(
            f"  dropped {strays['captions']} captions of stray entries {', '.join(strays['images'])} "
            f"({strays['reason']})"
        )
    outside = report["not_in_split"]
    if outside["images"]:
        lines.append(
            f"  dropped {outside['captions']} captions of {outside['images']} images in no official "
            f"split, e.g. {', '.join(outside['names'][:3])}"
        )
    skipped = report["malformed_skipped"]
    if skipped["count"]:
        lines.append(f"  skipped {skipped['count']} malformed lines:")
        lines += [
            f"    {b['file']} line {b['line']}: {b['problem']}" for b in skipped["lines"][:10]
        ]
    if report["split_images_without_captions"]:
        lines.append(
            f"  dropped {len(report['split_images_without_captions'])} split images without captions, "
            f"e.g. {', '.join(report['split_images_without_captions'][:3])}"
        )
    bad = report["bad_images_dropped"]
    if bad:
        lines.append(
            f"  dropped {len(bad)} images that are missing or cannot be decoded (on_bad_image: "
            f"skip), with their captions: "
            + "; ".join(f"{name} {reason}" for name, reason in list(bad.items())[:5])
        )
    missing = report["missing_from_image_archive"]
    if missing:
        lines.append(
            f"  warning: {len(missing)} split images are missing from {report['images_archive']}, "
            f"e.g. {', '.join(missing[:3])}; their captions are kept and the features stage "
            "handles them according to dataset.flickr8k.on_bad_image"
        )
    return "\n".join(lines)


def write_captions(
    text_zip: Path,
    images_zip: Path | None,
    out: Path,
    on_malformed: str = "error",
    on_bad_image: str = "error",
) -> dict:
    """Write ``captions.parquet`` atomically with the report in its metadata; return the report."""
    frame, report = read_captions(text_zip, images_zip, on_malformed, on_bad_image)
    print(summary(report), file=sys.stderr)
    write_frame(frame, out, {"dataset": "flickr8k", "report": report})
    return report
