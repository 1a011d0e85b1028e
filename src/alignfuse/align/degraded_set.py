"""The degradation job: the text side of a feature set degraded as an alignment name says
(rotation, noise or shuffle at one level), written in the features' contract.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import alignfuse
from alignfuse.align.degrade import degrade
from alignfuse.align.feature_sets import read_feature_set
from alignfuse.align.names import parse_alignment
from alignfuse.data.datasets import SPLITS
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import read_metadata, write_embeddings


def write_degraded(
    image_path: Path,
    text_path: Path,
    captions_path: Path,
    alignment: str,
    seed: int,
    out_text: Path,
) -> dict:
    """Degrade the text side of a feature set as ``alignment`` names, split by split (noise is
    fitted on train captions; shuffling draws replacements within the caption's own split)."""
    recipe = parse_alignment(alignment)
    if not recipe.degraded:
        raise AlignfuseError(f"alignment '{alignment}' names no degradation; nothing to write")
    features = read_feature_set(image_path, text_path, captions_path)
    T = np.empty_like(features.T)
    train_rows = np.flatnonzero(features.caption_split == "train")
    for index, split in enumerate(SPLITS):
        rows = np.flatnonzero(features.caption_split == split)
        if recipe.kind == "noise":  # per-coordinate statistics of the train captions
            both = np.concatenate([train_rows, rows])
            noisy = degrade(
                "noise",
                features.T[both],
                recipe.level,
                seed + index,
                None,
                np.arange(len(train_rows)),
            )
            T[rows] = noisy[len(train_rows) :]
        elif recipe.kind == "shuffle":
            _, caption_image = np.unique(features.caption_image[rows], return_inverse=True)
            T[rows] = degrade(
                "shuffle", features.T[rows], recipe.level, seed + index, caption_image
            )
        else:  # one rotation for every split
            T[rows] = degrade("rotation", features.T[rows], recipe.level, seed)
    provenance = {
        "alignment": alignment,
        "degradation": {"kind": recipe.kind, "level": recipe.level, "seed": seed},
        "source": str(text_path),
        "source_provenance": read_metadata(text_path),
        "alignfuse": alignfuse.__version__,
    }
    write_embeddings(out_text, "caption_id", features.caption_ids, T, provenance)
    return provenance
