"""A matching task as the workflow's files (features and pairs), for tests of training jobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alignfuse.parquet import write_embeddings, write_frame


def write_matching_task(root: Path) -> Path:
    """Items split 400/100/100; each image has its own caption (image + noise).

    Positives pair an image with its caption, negatives with another item's caption of the same
    split, so either modality alone is uninformative (both marginals match) and only their
    agreement decides the label. Writes image.parquet, text.parquet and pairs/{split}.parquet
    under ``root`` and returns it.
    """
    rng = np.random.default_rng(0)
    items, d = (400, 100, 100), 8
    image = rng.standard_normal((sum(items), d)).astype(np.float32)
    text = (image + 0.1 * rng.standard_normal(image.shape)).astype(np.float32)
    write_embeddings(
        root / "image.parquet", "image_id", [f"i{k}" for k in range(len(image))], image
    )
    write_embeddings(root / "text.parquet", "caption_id", [f"c{k}" for k in range(len(text))], text)
    start = 0
    for split, m in zip(("train", "dev", "test"), items, strict=True):
        own = np.arange(start, start + m)
        other = own[(np.arange(m) + rng.integers(1, m, m)) % m]
        pairs = pd.DataFrame(
            {
                "image_id": [f"i{i}" for i in np.concatenate([own, own])],
                "caption_id": [f"c{j}" for j in np.concatenate([own, other])],
                "label": np.repeat([1, 0], m),
            }
        ).sample(frac=1, random_state=0)
        write_frame(pairs, root / "pairs" / f"{split}.parquet")
        start += m
    return root
