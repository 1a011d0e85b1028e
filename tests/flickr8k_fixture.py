"""A small archive pair in Flickr8k's exact format, generated for tests.

Mirrors the public release: the image zip spells its folder ``Flicker8k_Dataset/`` and carries
``__MACOSX/`` resource-fork entries; the text zip holds ``Flickr8k.token.txt`` (``<image>#<k>\\t<caption>``,
five captions per image, plus the known stray entry whose name ends in ``.jpg.1``) and the official
``Flickr_8k.{train,dev,test}Images.txt`` split files.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignfuse.data.example_folder import COLOURS, SHAPES, captions_for, draw

STRAY = "2258277193_586949ec62.jpg.1"


@dataclass
class Flickr8kArchives:
    images_zip: Path
    text_zip: Path
    images_sha256: str
    text_sha256: str
    images_md5: str
    text_md5: str
    splits: dict[str, list[str]]

    @property
    def images_url(self) -> str:
        return self.images_zip.resolve().as_uri()

    @property
    def text_url(self) -> str:
        return self.text_zip.resolve().as_uri()


def image_name(i: int) -> str:
    return f"{1000268201 + 7919 * i}_{i:010x}.jpg"


def digest(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def make_flickr8k_archives(
    directory: Path,
    n_train: int = 24,
    n_dev: int = 8,
    n_test: int = 8,
    seed: int = 0,
    corrupt: tuple[str, ...] = (),
    image_size: int = 48,
) -> Flickr8kArchives:
    """Write ``Flickr8k_Dataset.zip`` and ``Flickr8k_text.zip`` into ``directory``.

    ``corrupt`` names images whose JPEG bytes are truncated, to exercise bad-image handling;
    ``image_size`` is the side in pixels (Flickr8k's photos are about 500×375, so 448 costs
    about as much to decode).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [image_name(i) for i in range(n_train + n_dev + n_test)]
    splits = {
        "train": names[:n_train],
        "dev": names[n_train : n_train + n_dev],
        "test": names[n_train + n_dev :],
    }
    token_lines = []
    images_zip = directory / "Flickr8k_Dataset.zip"
    with zipfile.ZipFile(images_zip, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("Flicker8k_Dataset/", b"")
        for name in names:
            colour = str(rng.choice(list(COLOURS)))
            shape = str(rng.choice(SHAPES))
            data = draw(colour, shape, rng, image_size)
            if name in corrupt:
                data = data[: len(data) // 3]
            zf.writestr(f"Flicker8k_Dataset/{name}", data)
            zf.writestr(
                f"__MACOSX/Flicker8k_Dataset/._{name}", b"\x00\x05\x16\x07mac resource fork"
            )
            token_lines += [
                f"{name}#{k}\t{c}" for k, c in enumerate(captions_for(colour, shape, rng))
            ]
    token_lines += [
        f"{STRAY}#{k}\tA stray caption of an image that is not in the archive ." for k in range(5)
    ]
    text_zip = directory / "Flickr8k_text.zip"
    with zipfile.ZipFile(text_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Flickr8k.token.txt", "\n".join(token_lines) + "\n")
        zf.writestr("Flickr8k.lemma.token.txt", "\n".join(token_lines) + "\n")
        for split, members in splits.items():
            zf.writestr(f"Flickr_8k.{split}Images.txt", "\n".join(members) + "\n")
        zf.writestr("readme.txt", "Generated for tests in the format of the Flickr8k release.\n")
        zf.writestr("__MACOSX/._Flickr8k.token.txt", b"\x00\x05\x16\x07")
    return Flickr8kArchives(
        images_zip=images_zip,
        text_zip=text_zip,
        images_sha256=digest(images_zip, "sha256"),
        text_sha256=digest(text_zip, "sha256"),
        images_md5=digest(images_zip, "md5"),
        text_md5=digest(text_zip, "md5"),
        splits=splits,
    )
