"""Alignment-gap figure: the reference's lead over each method as alignment degrades.

It draws the alignment study table, whose rows are the declared comparisons on degraded feature
sets: one panel per degradation kind, the gap (points) against the degradation level with its seed
interval, one line per comparison; level 0 is the undegraded set.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alignfuse.figures.style import (
    REFERENCE_COLOUR,
    alignment_linestyles,
    apply_style,
    backbone_panels,
    comparison_palette,
    message_figure,
    panel_title,
    require_columns,
    side_legend,
)

COLUMNS = ["backbone", "base", "degradation", "level", "reference", "method", "n_train"]
MIXED = "mixed recipe"
GAP = ["gap_pts", "gap_low_pts", "gap_high_pts", "trend"]


def plot(study_table: pd.DataFrame, study: str) -> Figure:
    """One panel per degradation kind; a line per comparison (line style per feature set)."""
    require_columns(study_table, [*COLUMNS, *GAP], "alignment_study")
    title = f"{study}: the lead as alignment degrades"
    if study_table.empty:
        return message_figure(title, "No degraded feature sets in this study (see `grids`).")
    apply_style()
    mixed = study_table.get("mixed_recipe", pd.Series(False, index=study_table.index))
    table = study_table.assign(
        feature_set=study_table["backbone"] + "@" + study_table["base"],
        comparison=study_table["reference"]
        + " − "
        + study_table["method"]
        + mixed.map({True: f" ({MIXED})", False: ""}),
    )
    kinds = sorted(table["degradation"].unique())
    colours = comparison_palette(table["method"], table["comparison"])
    styles = alignment_linestyles(table["feature_set"])
    fig, axes = backbone_panels(kinds, sharex=False)
    for ax, kind in zip(axes, kinds, strict=True):
        panel = table[table["degradation"] == kind]
        for (comparison, feature_set, n), line in panel.groupby(
            ["comparison", "feature_set", "n_train"], sort=True
        ):
            line = line.sort_values("level")
            colour = colours[comparison]
            ax.fill_between(
                line["level"],
                line["gap_low_pts"],
                line["gap_high_pts"],
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
            ax.plot(
                line["level"],
                line["gap_pts"],
                color=colour,
                linestyle=styles[feature_set],
                marker="o",
                label=f"{comparison} {feature_set} n={n}: {line['trend'].iloc[0]}",
            )
        ax.axhline(0, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_zero")
        panel_title(ax, kind)
        ax.set_xlabel(f"{kind} level (0 = undegraded)")
    axes[0].set_ylabel("reference − method\n(accuracy points)")
    fig.suptitle(title)
    handles = [Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items()]
    handles += [Line2D([], [], color="black", linestyle=s, label=f) for f, s in styles.items()]
    handles.append(Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label="no difference"))
    side_legend(fig, handles, "reference − method")
    return fig
