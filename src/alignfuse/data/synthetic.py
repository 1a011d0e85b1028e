"""The synthetic dataset's images, captions and splits: ids only, no pixels or words.

A synthetic study replaces Flickr8k by a latent-variable generator (its features are made by the
``synthetic`` encoder library, :mod:`alignfuse.features.synthetic`). This module writes the same
captions table as the Flickr8k data stage, so pairs and every later stage are shared. Images are
numbered img00000, img00001, ... and fill the train, dev and test splits in that order (sizes from
``datasets.synthetic_split_images``); caption j of image i has id ``<image id>#j``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alignfuse.data.datasets import SPLITS, check_synthetic, synthetic_split_images
from alignfuse.parquet import write_frame


def image_ids(cfg: dict) -> np.ndarray:
    return np.array([f"img{i:05d}" for i in range(cfg["n_images"])])


def caption_ids(cfg: dict) -> np.ndarray:
    return np.array([f"{i}#{j}" for i in image_ids(cfg) for j in range(cfg["captions_per_image"])])


def synthetic_captions(cfg: dict) -> pd.DataFrame:
    """The captions table (image_id, caption_id, caption, split) of the synthetic dataset."""
    check_synthetic(cfg)
    sizes = synthetic_split_images(cfg["n_images"], cfg["split"])
    image_split = np.repeat(SPLITS, [sizes[s] for s in SPLITS])
    per_image = cfg["captions_per_image"]
    images = np.repeat(image_ids(cfg), per_image)
    number = np.tile(np.arange(per_image), cfg["n_images"])
    return pd.DataFrame(
        {
            "image_id": images,
            "caption_id": caption_ids(cfg),
            "caption": [
                f"synthetic caption {j} of {i}" for i, j in zip(images, number, strict=True)
            ],
            "split": np.repeat(image_split, per_image),
        }
    )


def write_captions(cfg: dict, out: Path) -> None:
    write_frame(synthetic_captions(cfg), out, metadata={"generator": cfg})
