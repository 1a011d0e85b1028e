"""Theory curves: the excess risk the paper's argument predicts against training pairs, one line
per method (and per bilinear count for cross-attention), log-log, one panel per pair of feature
widths (feature sets of equal widths have the same predictions)."""

from __future__ import annotations

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

STYLES = {"full": "solid", "factored": "dashed"}


def plot(curves: pd.DataFrame, study: str) -> Figure:
    """Predicted excess risk C·sqrt(p_eff·log n / n) (C = 1) against n for every method."""
    require_columns(
        curves, ["feature_set", "method", "head", "p_eff", "n", "excess_risk"], "theory_curves"
    )
    title = f"{study}: predicted excess risk (theory, C = 1)"
    if curves.empty:
        return message_figure(title, "No methods to predict for.")
    apply_style()
    table = curves.assign(
        label=curves["method"].str.replace(r" \((full|factored)\)$", "", regex=True),
        count=curves["method"].str.extract(r"\((full|factored)\)$")[0].fillna("full"),
        widths=curves["d_image"].astype(str) + "/" + curves["d_text"].astype(str) + "-d",
    )
    panels = sorted(table["widths"].unique())
    colours = method_palette(table["label"])
    fig, axes = backbone_panels(panels, sharex=False)
    for ax, panel in zip(axes, panels, strict=True):
        part = table[table["widths"] == panel]
        first = part[part["feature_set"] == part["feature_set"].iloc[0]]
        for (label, count), line in first.groupby(["label", "count"]):
            ax.plot(line["n"], line["excess_risk"], color=colours[label], linestyle=STYLES[count])
        ax.set_xscale("log")
        ax.set_yscale("log")
        sets = part["feature_set"].nunique()
        panel_title(ax, f"{panel} features ({sets} feature set{'s' if sets > 1 else ''})")
        ax.set_xlabel("training pairs n")
    axes[0].set_ylabel("predicted excess risk")
    fig.suptitle(title)
    handles = [Line2D([], [], color=c, label=m) for m, c in colours.items()]
    handles += [
        Line2D([], [], color="black", linestyle=s, label=f"{k} bilinear score")
        for k, s in STYLES.items()
    ]
    side_legend(fig, handles, "method")
    return fig
