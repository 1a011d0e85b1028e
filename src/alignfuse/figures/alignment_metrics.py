"""Alignment-metrics figure: what each degradation does to each measure of alignment.

It draws the alignment study table: one panel per metric (cosine gap, text-to-image R@1, mutual
k-NN, debiased CKA), the metric against the degradation level, one line per degradation kind.
Rotation keeps the information and destroys the coordinate correspondence, so CKA and mutual k-NN
stay flat under it while cosine and retrieval fall: coordinate alignment is not shared information.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alignfuse.figures.style import (
    PALETTE,
    REFERENCE_COLOUR,
    alignment_linestyles,
    apply_style,
    backbone_panels,
    message_figure,
    panel_title,
    require_columns,
    side_legend,
)

METRICS = {
    "cosine_gap": "cosine gap",
    "text_to_image_R@1": "text→image R@1",
    "mutual_knn": "mutual k-NN (k = 10)",
    "cka": "debiased CKA",
}
KIND_COLOURS = dict(zip(("noise", "rotation", "shuffle"), PALETTE[1:4], strict=True))


def plot(study_table: pd.DataFrame, study: str) -> Figure:
    """One panel per metric; a line per degradation kind (line style per feature set)."""
    require_columns(
        study_table, ["backbone", "base", "degradation", "level", *METRICS], "alignment_study"
    )
    title = f"{study}: alignment metrics as alignment degrades"
    if study_table.empty:
        return message_figure(title, "No degraded feature sets in this study (see `grids`).")
    apply_style()
    table = study_table.assign(
        feature_set=study_table["backbone"] + "@" + study_table["base"]
    ).drop_duplicates(["feature_set", "degradation", "level"])
    kinds = sorted(table["degradation"].unique())
    styles = alignment_linestyles(table["feature_set"])
    fig, axes = backbone_panels(list(METRICS.values()), sharex=False)
    for ax, (metric, name) in zip(axes, METRICS.items(), strict=True):
        for (kind, feature_set), line in table.groupby(["degradation", "feature_set"]):
            line = line.sort_values("level")
            ax.plot(
                line["level"],
                line[metric],
                color=KIND_COLOURS.get(kind, PALETTE[0]),
                linestyle=styles[feature_set],
                marker="o",
                label=f"{kind} {feature_set}",
            )
        chance = table.get(f"{metric}_chance")
        if chance is not None and chance.notna().any() and chance.nunique() == 1:
            ax.axhline(
                chance.iloc[0], color=REFERENCE_COLOUR, linestyle=":", linewidth=1, label="_chance"
            )
        panel_title(ax, name)
        ax.set_xlabel("degradation level")
    fig.suptitle(title)
    handles = [
        Line2D([], [], color=KIND_COLOURS.get(k, PALETTE[0]), marker="o", label=k) for k in kinds
    ]
    handles += [Line2D([], [], color="black", linestyle=s, label=f) for f, s in styles.items()]
    handles.append(Line2D([], [], color=REFERENCE_COLOUR, linestyle=":", label="chance"))
    side_legend(fig, handles, "degradation")
    return fig
