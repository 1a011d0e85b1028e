"""Sample complexity in the feature width: the training pairs each head needs to reach a fixed
share of the learnable gap against d (log-log), with the fitted slope beta beside the theory's
(1 for concat's linear projection, 2 for a full-rank bilinear attention score)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alignfuse.figures.style import (
    apply_style,
    backbone_panels,
    message_figure,
    method_palette,
    panel_title,
    require_columns,
    side_legend,
)


def plot(points: pd.DataFrame, study: str) -> Figure:
    """One panel per family (aligned, rotated); per method the median n_needed over seeds at each
    d (seeds as small dots) and the least-squares line of log n_needed on log d."""
    require_columns(
        points, ["family", "method", "d", "seed", "n_needed"], "sample_complexity_points"
    )
    title = f"{study}: training pairs needed against feature width"
    reached = points[np.isfinite(points["n_needed"])] if len(points) else points
    if reached.empty:
        return message_figure(title, "No family of feature sets that differ only in width d.")
    apply_style()
    panels = sorted(reached["family"].unique())
    colours = method_palette(reached["method"])
    labels = {}
    fig, axes = backbone_panels(panels)
    for ax, fam in zip(axes, panels, strict=True):
        part = reached[reached["family"] == fam]
        for method, rows in part.groupby("method"):
            colour = colours[method]
            ax.scatter(rows["d"], rows["n_needed"], color=colour, s=8, alpha=0.4)
            median = rows.groupby("d")["n_needed"].median()
            ax.plot(median.index, median.to_numpy(), color=colour, marker="o", linestyle="none")
            if rows["d"].nunique() >= 2:
                slope, intercept = np.polyfit(np.log(rows["d"]), np.log(rows["n_needed"]), 1)
                d = np.geomspace(rows["d"].min(), rows["d"].max(), 20)
                ax.plot(d, np.exp(intercept) * d**slope, color=colour)
                labels[method] = f"{method}: slope {slope:.2f}"
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        panel_title(ax, fam)
        ax.set_xlabel("feature width d (d_v = d_t)")
    axes[0].set_ylabel("training pairs needed")
    fig.suptitle(title)
    handles = [
        Line2D([], [], color=c, marker="o", label=labels.get(m, m)) for m, c in colours.items()
    ]
    side_legend(fig, handles, "method (fitted slope; theory: 1 linear, 2 bilinear)")
    return fig
