"""The pairs of the matching task: is this caption about this image?

Per split, every caption is a positive once, with its own image, in a seeded random order; negative
k pairs the image of positive k with the caption of positive sigma(k), sigma a seeded permutation
that never returns a caption of the same image. Rows interleave [pos_0, neg_0, pos_1, neg_1, ...],
so every even-length prefix is balanced and every training scale is a prefix of one file. Each
caption and each image occur equally often with either label, so neither modality alone beats
chance. Rows outside the train, dev and test splits are not used; ids are opaque strings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

import alignfuse
from alignfuse.data.datasets import SPLITS
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import write_frame

COLUMNS = ("image_id", "caption_id", "split")


def check_captions(captions: pd.DataFrame) -> None:
    missing = [c for c in COLUMNS if c not in captions.columns]
    if missing:
        raise AlignfuseError(f"captions table lacks column(s) {missing}; rerun the data stage")
    duplicated = captions["caption_id"][captions["caption_id"].duplicated()]
    if len(duplicated):
        raise AlignfuseError(
            f"caption id '{duplicated.iloc[0]}' occurs more than once; caption ids must be unique "
            "(rerun the data stage)"
        )
    used = captions[captions["split"].isin(SPLITS)]
    splits_per_image = used.groupby("image_id")["split"].nunique()
    shared = splits_per_image[splits_per_image > 1]
    if len(shared):
        raise AlignfuseError(
            f"image '{shared.index[0]}' has captions in more than one split; every image must "
            "belong to exactly one split (check the split files and rerun the data stage)"
        )


def negative_permutation(images: np.ndarray, rng: np.random.Generator, split: str) -> np.ndarray:
    """A seeded permutation sigma with images[sigma[k]] != images[k] for every k.

    A random permutation, then each collision k is swapped with a random j whose image and whose
    partner's image both differ from k's: that repairs k (and j, if it collided) and breaks nothing.
    Such a j exists whenever no image holds more than half of the captions.
    """
    _, codes, counts = np.unique(images, return_inverse=True, return_counts=True)
    if len(counts) < 2:
        raise AlignfuseError(
            f"split '{split}' holds {len(counts)} image(s); negatives need captions of at least "
            "2 images (give the split more images)"
        )
    if 2 * counts.max() > len(codes):
        raise AlignfuseError(
            f"split '{split}': one image holds {counts.max()} of {len(codes)} captions, more than "
            "half, so its captions cannot all get negatives from other images (give the split "
            "more images)"
        )
    sigma = rng.permutation(len(codes))
    for k in np.flatnonzero(codes[sigma] == codes):
        own = codes[k]
        if codes[sigma[k]] != own:  # repaired as an earlier collision's partner
            continue
        candidates = np.flatnonzero((codes != own) & (codes[sigma] != own))
        j = rng.choice(candidates)
        sigma[k], sigma[j] = sigma[j], sigma[k]
    return sigma


def split_pairs(captions: pd.DataFrame, rng: np.random.Generator, split: str) -> pd.DataFrame:
    """The interleaved positive and negative pairs of one split's captions."""
    order = rng.permutation(len(captions))
    images = captions["image_id"].to_numpy()[order]
    caption_ids = captions["caption_id"].to_numpy()[order]
    sigma = negative_permutation(images, rng, split)
    n = len(order)
    return pd.DataFrame(
        {
            "image_id": np.repeat(images, 2),
            "caption_id": np.stack([caption_ids, caption_ids[sigma]], axis=1).reshape(-1),
            "label": np.tile(np.array([1, 0], dtype=np.int8), n),
        }
    )


def make_pairs(captions: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """Pairs (image_id, caption_id, label int8) for each of train, dev and test.

    Captions are put in caption-id order first, so the result depends only on the captions and
    ``seed``, not on row order; each split draws from its own generator.
    """
    check_captions(captions)
    captions = captions.sort_values("caption_id", kind="stable")
    pairs = {}
    for index, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, index])
        pairs[split] = split_pairs(captions[captions["split"] == split], rng, split)
    return pairs


def write_pairs(captions_path: Path, out_dir: Path, seed: int) -> None:
    """Write out_dir/{train,dev,test}.parquet from the captions file of a data stage."""
    captions_path, out_dir = Path(captions_path), Path(out_dir)
    if not captions_path.is_file():
        raise AlignfuseError(f"{captions_path}: captions file not found; run the data stage first")
    try:
        captions = pd.read_parquet(captions_path)
    except (OSError, pa.ArrowException) as exc:
        raise AlignfuseError(
            f"{captions_path}: not a readable Parquet file ({exc}); rerun the data stage"
        ) from None
    try:
        pairs = make_pairs(captions, seed)
    except AlignfuseError as exc:
        raise AlignfuseError(f"{captions_path}: {exc}") from None
    for split, frame in pairs.items():
        metadata = {"seed": seed, "split": split, "alignfuse": alignfuse.__version__}
        write_frame(frame, out_dir / f"{split}.parquet", metadata)
