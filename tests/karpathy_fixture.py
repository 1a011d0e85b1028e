"""Small archives of Flickr30k and COCO in their real layouts, with Karpathy's caption JSON.

- ``caption_datasets.zip`` holds ``dataset_flickr30k.json``, ``dataset_coco.json`` and
  ``dataset_flickr8k.json`` at its root, each ``{"images": [...], "dataset": name}`` with entries
  of ``filename``, ``imgid``, ``split`` (train, restval, val, test), ``sentences`` (``raw``,
  ``tokens``, ``imgid``, ``sentid``) and ``sentids``, COCO's also ``filepath`` and ``cocoid``
  (the layout karpathy/neuraltalk2's preprocessing reads).
- ``flickr30k-images.tar.gz``: ``flickr30k-images/<flickr id>.jpg`` and a readme.
- ``train2014.zip`` and ``val2014.zip``: ``train2014/COCO_train2014_<12-digit id>.jpg`` (and
  val2014 alike) with their folder entries; restval, val and test images are all in val2014.
COCO images get 5 to 7 captions, as the real ones do.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flickr8k_fixture import digest

from alignfuse.data.example_folder import COLOURS, SHAPES, captions_for, draw

EXTRA = ("Here is a {c} {s} .", "A {s} , {c} .")


@dataclass
class KarpathyArchives:
    directory: Path
    captions_zip: Path
    flickr30k_tar: Path
    train2014_zip: Path
    val2014_zip: Path
    # our split -> image names, per kind
    splits: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    captions: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @staticmethod
    def url(path: Path) -> str:
        return Path(path).resolve().as_uri()

    @staticmethod
    def sha256(path: Path) -> str:
        return digest(Path(path), "sha256")

    @staticmethod
    def md5(path: Path) -> str:
        return digest(Path(path), "md5")


def sentences(texts: list[str], imgid: int, first_sentid: int) -> list[dict]:
    return [
        {
            "tokens": text.lower().replace(" .", "").split(),
            "raw": text,
            "imgid": imgid,
            "sentid": first_sentid + k,
        }
        for k, text in enumerate(texts)
    ]


def image_and_captions(rng, per_image: int, size: int) -> tuple[bytes, list[str]]:
    colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
    texts = captions_for(colour, shape, rng)
    texts += [t.format(c=colour, s=shape) for t in EXTRA[: per_image - len(texts)]]
    return draw(colour, shape, rng, size), texts


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("flickr30k-images")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_zip(path: Path, folder: str, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{folder}/", b"")
        for name, data in members.items():
            zf.writestr(name, data)


def make_karpathy_archives(
    directory: Path,
    flickr30k: dict[str, int] | None = None,
    coco: dict[str, int] | None = None,
    seed: int = 0,
    corrupt: tuple[str, ...] = (),
    image_size: int = 32,
) -> KarpathyArchives:
    """Write the caption zip, Flickr30k's image tar and COCO's two image zips into ``directory``.

    ``flickr30k`` and ``coco`` give images per Karpathy split (train, restval, val, test);
    ``corrupt`` names images whose JPEG bytes are cut short.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flickr30k = flickr30k or {"train": 24, "val": 8, "test": 8}
    coco = coco or {"train": 16, "restval": 8, "val": 8, "test": 8}
    rng = np.random.default_rng(seed)
    ours = {"train": "train", "restval": "train", "val": "dev", "test": "test"}
    archives = KarpathyArchives(
        directory=directory,
        captions_zip=directory / "caption_datasets.zip",
        flickr30k_tar=directory / "flickr30k-images.tar.gz",
        train2014_zip=directory / "train2014.zip",
        val2014_zip=directory / "val2014.zip",
    )
    documents, members = {}, {"flickr30k": {}, "train2014": {}, "val2014": {}}
    for kind, counts in (("flickr30k", flickr30k), ("coco", coco)):
        entries, sentid = [], 0
        archives.splits[kind] = {"train": [], "dev": [], "test": []}
        archives.captions[kind] = {}
        for split, n in counts.items():
            for _ in range(n):
                imgid = len(entries)
                per_image = 5 if kind == "flickr30k" else 5 + (imgid % 7 == 3) + (imgid % 11 == 5)
                data, texts = image_and_captions(rng, per_image, image_size)
                entry = {"sentids": list(range(sentid, sentid + len(texts))), "imgid": imgid}
                if kind == "flickr30k":
                    name = f"{1000092795 + 7919 * imgid}.jpg"
                    member, folder = f"flickr30k-images/{name}", "flickr30k"
                else:
                    folder = "train2014" if split == "train" else "val2014"
                    cocoid = 9 + 31 * imgid
                    name = f"COCO_{folder}_{cocoid:012d}.jpg"
                    member = f"{folder}/{name}"
                    entry |= {"filepath": folder, "cocoid": cocoid}
                entry |= {
                    "sentences": sentences(texts, imgid, sentid),
                    "split": split,
                    "filename": name,
                }
                sentid += len(texts)
                entries.append(entry)
                members[folder][member] = data[: len(data) // 3] if name in corrupt else data
                archives.splits[kind][ours[split]].append(name)
                archives.captions[kind][name] = texts
        documents[kind] = {"images": entries, "dataset": kind}
    documents["flickr8k"] = {"images": [], "dataset": "flickr8k"}
    with zipfile.ZipFile(archives.captions_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        for kind, document in documents.items():
            zf.writestr(f"dataset_{kind}.json", json.dumps(document))
    members["flickr30k"]["flickr30k-images/readme.txt"] = b"Flickr30k images, for tests.\n"
    write_tar(archives.flickr30k_tar, members["flickr30k"])
    write_zip(archives.train2014_zip, "train2014", members["train2014"])
    write_zip(archives.val2014_zip, "val2014", members["val2014"])
    return archives


def edit_captions_zip(captions_zip: Path, out: Path, kind: str, edit) -> Path:
    """A copy of the caption zip with ``edit(document)`` applied to one kind's JSON (it edits the
    document in place, or returns a new one, or bytes to store as they are)."""
    member = f"dataset_{kind}.json"
    with zipfile.ZipFile(captions_zip) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == member:
                document = json.loads(data)
                edited = edit(document)
                edited = edited if isinstance(edited, dict | bytes) else document
                data = edited if isinstance(edited, bytes) else json.dumps(edited).encode()
            dst.writestr(info.filename, data)
    return out
