"""PID shares: the image's share of the unique information in each head's fused view,
CI = U_img / (U_img + U_txt) (the text's is 100 − CI), per method with its seed interval."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alignfuse.figures.style import (
    REFERENCE_COLOUR,
    apply_style,
    backbone_panels,
    message_figure,
    method_palette,
    panel_title,
    require_columns,
    room_for_slanted_ticks,
    side_legend,
    slanted_ticks,
)


def plot(table: pd.DataFrame, study: str) -> Figure:
    """One panel per feature set; a marker per method and k with its interval; methods whose
    share is undefined (unique information below noise) are listed, not drawn."""
    require_columns(table, ["backbone", "alignment", "method", "view", "k", "CI"], "pid")
    title = f"{study}: image share of the unique information (fused view)"
    rows = table[(table["view"] == "fused") & table["CI"].notna()]
    if rows.empty:
        return message_figure(
            title, "No defined image/text shares: unique information is below noise everywhere."
        )
    apply_style()
    panels = sorted((rows["backbone"] + "@" + rows["alignment"]).unique())
    colours = method_palette(rows["method"])
    fig, axes = backbone_panels(panels, sharex=False)
    for ax, panel in zip(axes, panels, strict=True):
        part = rows[rows["backbone"] + "@" + rows["alignment"] == panel]
        methods = sorted(part["method"].unique())
        for i, method in enumerate(methods):
            for offset, (_, row) in enumerate(part[part["method"] == method].iterrows()):
                low, high = row["CI_low"], row["CI_high"]
                ax.errorbar(
                    i + 0.15 * offset,
                    100 * row["CI"],
                    yerr=None
                    if pd.isna(low)
                    else [[100 * (row["CI"] - low)], [100 * (high - row["CI"])]],
                    color=colours[method],
                    marker="o",
                    capsize=2,
                    label=f"{method} k={row['k']}",
                )
        ax.axhline(50, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_equal")
        slanted_ticks(ax, range(len(methods)), methods)
        ax.set_ylim(0, 100)
        panel_title(ax, panel)
    room_for_slanted_ticks(fig, colours)
    axes[0].set_ylabel("image share CI (%)")
    fig.suptitle(title)
    handles = [
        Line2D([], [], color=c, marker="o", linestyle="none", label=m) for m, c in colours.items()
    ]
    handles.append(Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label="equal shares"))
    side_legend(fig, handles, "method")
    return fig
