"""The pairing every alignment computation assumes: ``V`` holds one row per image, ``T`` one row
per caption, and ``caption_image[c]`` is the row in ``V`` of caption ``c``'s image.

Its check lives apart from the metrics so that the contrastive fit, which needs the check but no
metric, does not rerun when a metric changes.
"""

from __future__ import annotations

import numpy as np

from alignfuse.errors import AlignfuseError


def check_pairing(V: np.ndarray, T: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """``caption_image`` as int64, after checking it pairs every caption with an existing image."""
    if V.ndim != 2 or T.ndim != 2:
        raise AlignfuseError(
            f"features must be matrices (rows x width); got image {V.shape} and text {T.shape}"
        )
    caption_image = np.asarray(caption_image, dtype=np.int64)
    if caption_image.shape != (len(T),):
        raise AlignfuseError(
            f"caption_image has {caption_image.size} entries but there are {len(T)} captions: "
            "give the image row of every caption"
        )
    if len(T) and (caption_image.min() < 0 or caption_image.max() >= len(V)):
        raise AlignfuseError(
            f"caption_image refers to image rows outside 0..{len(V) - 1}: "
            "image and text features do not come from the same set of images"
        )
    missing = np.flatnonzero(np.bincount(caption_image, minlength=len(V)) == 0)
    if missing.size:
        raise AlignfuseError(
            f"{missing.size} image(s) have no caption (first: row {missing[0]}): "
            "keep only images that have captions"
        )
    return caption_image
