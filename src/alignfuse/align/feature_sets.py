"""A feature set as the alignment stage reads it: a backbone's image and text feature files,
ordered and split by the captions table (which says each caption's image and split).

Each alignment job (contrastive projections, degradations, metrics) reads its inputs through this
module and lives in a module of its own, so that editing one job's code reruns only that job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alignfuse.data.datasets import SPLITS
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import read_embeddings, read_frame

CAPTIONS_FIX = "rerun the workflow's data stage"


@dataclass
class FeatureSet:
    """One backbone's features with the captions' structure: rows of V are images, rows of T
    captions, ``caption_image[j]`` the row of caption j's image; splits name each row's split."""

    image_ids: np.ndarray
    V: np.ndarray
    caption_ids: np.ndarray
    T: np.ndarray
    caption_image: np.ndarray
    image_split: np.ndarray
    caption_split: np.ndarray

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(V, T, caption_image) of one split, caption_image indexing that split's images."""
        images = np.flatnonzero(self.image_split == name)
        captions = np.flatnonzero(self.caption_split == name)
        position = np.full(len(self.V), -1)
        position[images] = np.arange(len(images))
        return self.V[images], self.T[captions], position[self.caption_image[captions]]


def read_feature_set(image_path: Path, text_path: Path, captions_path: Path) -> FeatureSet:
    """A backbone's two feature files, ordered and split by the captions table."""
    captions = read_frame(captions_path, CAPTIONS_FIX, columns=["image_id", "caption_id", "split"])
    captions = captions[captions["split"].isin(SPLITS)]
    image_ids, V = read_embeddings(image_path)
    caption_ids, T = read_embeddings(text_path)
    image_row = pd.Index(image_ids).get_indexer(captions["image_id"])
    caption_row = pd.Index(caption_ids).get_indexer(captions["caption_id"])
    if (image_row < 0).any() or (caption_row < 0).any():
        raise AlignfuseError(
            f"{image_path}, {text_path}: the feature files lack images or captions of "
            f"{captions_path}; the features and captions come from different data, rebuild them "
            "together"
        )
    splits = dict(zip(captions["image_id"], captions["split"], strict=False))
    return FeatureSet(
        image_ids=image_ids,
        V=V,
        caption_ids=caption_ids[caption_row],
        T=T[caption_row],
        caption_image=image_row,
        image_split=np.array([splits.get(i, "") for i in image_ids]),
        caption_split=captions["split"].to_numpy(),
    )
