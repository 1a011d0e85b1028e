"""Aligned, degraded and measured feature sets as files, in the features stage's Parquet contract.

The alignment stage reads a backbone's image and text feature files with the captions table (which
says each caption's image and split), writes new feature sets that the training grid consumes
unchanged, and measures every feature set the study trains on, on the test split.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import alignfuse
from alignfuse.align.contrastive import fit_projections
from alignfuse.align.degrade import degrade
from alignfuse.align.metrics import alignment_metrics, retrieval_recalls
from alignfuse.align.names import parse_alignment
from alignfuse.data.datasets import SPLITS
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import (
    atomic_path,
    read_embeddings,
    read_frame,
    read_metadata,
    write_embeddings,
    write_frame,
)

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


def recalls(features: FeatureSet, split: str, V=None, T=None) -> dict:
    """Retrieval R@1/5/10 both ways on a split (of ``V``/``T`` if given: projected rows)."""
    v, t, caption_image = features.split(split)
    if V is not None:
        images = features.image_split == split
        captions = features.caption_split == split
        v, t = V[images], T[captions]
    if v.shape[1] != t.shape[1]:
        return {}
    return {k: float(x) for k, x in retrieval_recalls(v, t, caption_image).items()}


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
    on) and write every row projected, with provenance: sources, loss curve, temperature and
    retrieval before and after."""
    features = read_feature_set(image_path, text_path, captions_path)
    v_train, t_train, ci_train = features.split("train")
    v_dev, t_dev, ci_dev = features.split("dev")
    projection = fit_projections(
        v_train, t_train, ci_train, v_dev, t_dev, ci_dev, threads=threads, **settings
    )
    V, T = projection.project_image(features.V), projection.project_text(features.T)
    provenance = {
        "alignment": "contrastive",
        "settings": settings,
        "sources": {"image": str(image_path), "text": str(text_path)},
        "source_provenance": {"image": read_metadata(image_path), "text": read_metadata(text_path)},
        "record": projection.record,
        "retrieval_before": {s: recalls(features, s) for s in ("dev", "test")},
        "retrieval_after": {s: recalls(features, s, V, T) for s in ("dev", "test")},
        "alignfuse": alignfuse.__version__,
    }
    print(
        f"contrastive: best epoch {projection.record['best_epoch']} of "
        f"{projection.record['epochs']}, temperature {projection.record['final_temperature']:.4f}, "
        f"test text->image R@1 {provenance['retrieval_before']['test'].get('text_to_image_R@1')} "
        f"-> {provenance['retrieval_after']['test']['text_to_image_R@1']:.4f}",
        file=sys.stderr,
    )
    write_embeddings(out_image, "image_id", features.image_ids, V, provenance)
    write_embeddings(out_text, "caption_id", features.caption_ids, T, provenance)
    return provenance


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


def measure(feature_sets: list[dict], captions_path: Path, split: str = "test") -> pd.DataFrame:
    """Every alignment metric of every feature set on ``split``: one row per (backbone,
    alignment, metric) with its value, chance level and note. ``feature_sets`` holds dicts with
    backbone, alignment, image and text (paths)."""
    rows = []
    for entry in feature_sets:
        features = read_feature_set(Path(entry["image"]), Path(entry["text"]), captions_path)
        recipe = parse_alignment(entry["alignment"])
        V, T, caption_image = features.split(split)
        for row in alignment_metrics(V, T, caption_image):
            rows.append(
                {
                    "backbone": entry["backbone"],
                    "alignment": entry["alignment"],
                    "base": recipe.base,
                    "degradation": recipe.kind or "none",
                    "level": recipe.level,
                    "split": split,
                    "images": len(V),
                    "captions": len(T),
                    **row,
                }
            )
    return pd.DataFrame(rows)


def write_measurements(frame: pd.DataFrame, out: Path) -> None:
    """The metrics as Parquet at ``out``, and beside it as CSV and a Markdown table (one row per
    feature set, one column per metric, chance levels in the last row of each column's note)."""
    out = Path(out)
    write_frame(frame, out, {"alignfuse": alignfuse.__version__})
    with atomic_path(out.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp, index=False)
    shown = frame.assign(
        feature_set=frame["backbone"] + "@" + frame["alignment"],
        cell=["–" if np.isnan(v) else f"{v:.3f}" for v in frame["value"].to_numpy(dtype=float)],
    )
    table = shown.pivot(index="feature_set", columns="metric", values="cell")
    table = table[list(dict.fromkeys(frame["metric"]))]
    chance = frame.drop_duplicates("metric").set_index("metric")["chance"]
    table.loc["chance"] = ["–" if np.isnan(c) else f"{c:.3f}" for c in chance[table.columns]]
    notes = sorted({n for n in frame["note"] if n})
    text = table.reset_index().to_markdown(index=False, disable_numparse=True)
    text += (
        "\n\nAlignment metrics on the test split (chance level in the last row). Cosine gap, "
        "modality gap and retrieval need a shared space: they compare coordinates, so a rotation "
        "of one side destroys them. Mutual k-NN and debiased CKA compare the two spaces' "
        "neighbourhoods and similarity structure: they are invariant to rotations, so they "
        "separate coordinate alignment from shared information.\n"
    )
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(text, encoding="utf-8")
