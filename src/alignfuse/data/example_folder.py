"""A small folder dataset to try the ``folder`` kind on: JPEGs of coloured shapes and a CSV.

Each image is one coloured shape on a noisy grey background, filed under a folder per shape
(``images/circle/0007.jpg``), so the captions file names images by relative path as a user's own
data would; its captions say the colour and the shape, so matching is learnable from pixels.
``workflow/presets/folder_example.yaml`` runs the study on it, and the tests use it too.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {
    "red": (200, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 60, 200),
    "yellow": (220, 200, 40),
}
SHAPES = ("square", "circle", "stripe")
TEMPLATES = (
    "A {c} {s} on a grey background .",
    "There is a {c} {s} in the middle .",
    "A picture of a {s} coloured {c} .",
    "The {s} is {c} .",
    "Someone drew a {c} {s} .",
)


def draw(colour: str, shape: str, rng: np.random.Generator, size: int = 48) -> bytes:
    """A JPEG of one coloured shape on a noisy grey background."""
    pixels = rng.integers(90, 140, size=(size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    mask = {
        "square": (abs(yy - c) < size // 4) & (abs(xx - c) < size // 4),
        "circle": (yy - c) ** 2 + (xx - c) ** 2 < (size // 3) ** 2,
        "stripe": abs(yy - c) < size // 8,
    }[shape]
    pixels[mask] = COLOURS[colour]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def captions_for(colour: str, shape: str, rng: np.random.Generator) -> list[str]:
    """Five different captions of one image, in a random order."""
    return [t.format(c=colour, s=shape) for t in rng.permutation(TEMPLATES)]


def make_example_folder(
    directory: str | Path,
    n_images: int = 200,
    captions_per_image: int = 1,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write ``images/<shape>/<i>.jpg`` and ``captions.csv`` (image, caption) under ``directory``;
    return (images root, captions file)."""
    if not 1 <= captions_per_image <= len(TEMPLATES):
        raise ValueError(f"captions_per_image must be 1 to {len(TEMPLATES)}")
    directory = Path(directory)
    images = directory / "images"
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
        relative = f"{shape}/{i:04d}.jpg"
        (images / shape).mkdir(parents=True, exist_ok=True)
        (images / relative).write_bytes(draw(colour, shape, rng))
        rows += [(relative, c) for c in captions_for(colour, shape, rng)[:captions_per_image]]
    captions = directory / "captions.csv"
    with open(captions, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        writer.writerows(rows)
    return images, captions
