"""The contrastive alignment job: fit projections on a backbone's train split and write both sides
of every row projected, as a feature set in the features' contract.

It measures nothing beyond the fit's own dev R@1 (in the record): the alignment metrics job
measures every feature set the study trains on, so editing the metrics re-measures without
refitting the projections (and retraining what trains on them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import alignfuse
from alignfuse.align.contrastive import fit_projections
from alignfuse.align.feature_sets import read_feature_set
from alignfuse.parquet import read_metadata, write_embeddings


def write_contrastive(
    image_path: Path,
    text_path: Path,
    captions_path: Path,
    settings: dict,
    out_image: Path,
    out_text: Path,
    threads: int = 1,
) -> dict:
    """Fit contrastive projections on the train split (dev picks the epoch; test is never fitted
    on) and write every row projected, with provenance: sources, settings, and the fit's record
    (loss curve, dev R@1 and temperature per epoch, the best epoch)."""
    features = read_feature_set(image_path, text_path, captions_path)
    v_train, t_train, ci_train = features.split("train")
    v_dev, t_dev, ci_dev = features.split("dev")
    projection = fit_projections(
        v_train, t_train, ci_train, v_dev, t_dev, ci_dev, threads=threads, **settings
    )
    V, T = projection.project_image(features.V), projection.project_text(features.T)
    record = projection.record
    provenance = {
        "alignment": "contrastive",
        "settings": settings,
        "sources": {"image": str(image_path), "text": str(text_path)},
        "source_provenance": {"image": read_metadata(image_path), "text": read_metadata(text_path)},
        "record": record,
        "alignfuse": alignfuse.__version__,
    }
    print(
        f"contrastive: best epoch {record['best_epoch']} of {record['epochs']}, temperature "
        f"{record['final_temperature']:.4f}, dev text->image R@1 "
        f"{record['dev_text_to_image_R@1'][record['best_epoch'] - 1]:.4f}",
        file=sys.stderr,
    )
    write_embeddings(out_image, "image_id", features.image_ids, V, provenance)
    write_embeddings(out_text, "caption_id", features.caption_ids, T, provenance)
    return provenance
