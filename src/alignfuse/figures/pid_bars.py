"""PID bars: how each head's fused representation splits into redundant, unique and synergistic
information about it from the image and the text (bits), one stacked bar per method."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from alignfuse.figures.style import (
    PALETTE,
    apply_style,
    backbone_panels,
    message_figure,
    panel_title,
    require_columns,
    room_for_slanted_ticks,
    side_legend,
    slanted_ticks,
)

TERMS = {"R": "redundant", "U_img": "unique to image", "U_txt": "unique to text", "S": "synergy"}
COLOURS = dict(zip(TERMS, (PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[4]), strict=True))


def plot(table: pd.DataFrame, study: str, view: str = "fused") -> Figure:
    """One panel per backbone; a stacked bar per method (the smallest k of the table); terms
    below their noise floor are drawn hatched and faint."""
    require_columns(table, ["backbone", "alignment", "method", "view", "k", *TERMS], "pid")
    title = f"{study}: information decomposition of the heads' {view} view"
    rows = table[table["view"] == view]
    if rows.empty:
        return message_figure(title, f"No PID rows of the {view} view in this study.")
    apply_style()
    rows = rows[rows["k"] == rows["k"].min()]
    panels = sorted((rows["backbone"] + "@" + rows["alignment"]).unique())
    fig, axes = backbone_panels(panels, sharex=False)
    for ax, panel in zip(axes, panels, strict=True):
        part = rows[rows["backbone"] + "@" + rows["alignment"] == panel].sort_values("method")
        bottom = np.zeros(len(part))
        x = np.arange(len(part))
        for term in TERMS:
            height = part[term].clip(lower=0).to_numpy()
            above = part[f"{term}_above_noise"].to_numpy(bool)
            for i in range(len(part)):
                ax.bar(
                    x[i],
                    height[i],
                    bottom=bottom[i],
                    color=COLOURS[term],
                    alpha=1.0 if above[i] else 0.35,
                    hatch=None if above[i] else "///",
                    edgecolor="white",
                    label=f"_{term}",
                )
            bottom += height
        slanted_ticks(ax, x, part["method"])
        panel_title(ax, f"{panel} (k = {part['k'].iloc[0]})")
    room_for_slanted_ticks(fig, rows["method"].unique())
    axes[0].set_ylabel("bits")
    fig.suptitle(title)
    handles = [Patch(color=COLOURS[t], label=name) for t, name in TERMS.items()]
    handles.append(Patch(facecolor="lightgrey", hatch="///", label="below noise"))
    side_legend(fig, handles, "information")
    return fig
