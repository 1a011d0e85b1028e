"""The alignment metrics job: every alignment metric of every feature set the study trains on,
measured on the test split, written as Parquet, CSV and a Markdown table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import alignfuse
from alignfuse.align.feature_sets import read_feature_set
from alignfuse.align.metrics import alignment_metrics
from alignfuse.align.names import parse_alignment
from alignfuse.parquet import atomic_path, write_frame


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
