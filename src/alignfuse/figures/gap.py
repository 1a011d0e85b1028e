"""Gap figure: the reference (concat) − each cross-attention method against training pairs.

It draws the paired table (``statistics.paired_differences``): each point is the mean over seeds of
the same-seed difference, each band its interval over seeds and test images, so the figure and
``paired.md`` show the same numbers. Each claimed range that its rule passes in (the study's
``claims``) is shaded on its backbone's panel, over the scales it was claimed at. Only feature
sets run at two or more scales are drawn; a note names the others.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from alignfuse.figures.style import (
    REFERENCE_COLOUR,
    alignment_legend,
    alignment_linestyles,
    apply_style,
    backbone_panels,
    log2_scale_axis,
    message_figure,
    method_palette,
    panel_title,
    require_columns,
    side_legend,
    single_dataset,
    single_scale_text,
    split_single_scale,
)
from alignfuse.fusion import CROSS_ATTENTION_HEADS

METRIC = "test_accuracy"
POINTS = 100.0
REQUIRED = ["dataset", "backbone", "alignment", "n_train", "metric", "reference", "method", "head"]
BAND_COLOUR = "#555555"


def gap_rows(paired: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The test-accuracy rows of ``reference`` − each cross-attention method."""
    require_columns(paired, [*REQUIRED, "mean_diff", "low", "high"], "paired")
    keep = (
        (paired["metric"] == METRIC)
        & (paired["reference"] == reference)
        & paired["head"].isin(CROSS_ATTENTION_HEADS)
    )
    return paired[keep]


def shade_band(ax, band: dict, scales: list[int]) -> bool:
    """Shade a claimed range over the part of our x range where it was claimed."""
    low = max(min(scales), min(band["scales"]))
    high = min(max(scales), max(band["scales"]))
    if low > high:
        return False
    x = [low, high] if low < high else [low / 1.1, high * 1.1]
    ax.fill_between(
        x,
        band["low"],
        band["high"],
        facecolor="none",
        edgecolor=BAND_COLOUR,
        hatch="////",
        linewidth=0,
        zorder=1,
        label="_band",
    )
    for bound in (band["low"], band["high"]):  # over the interval bands, so it stays visible
        ax.plot(x, [bound, bound], color=BAND_COLOUR, linestyle=":", zorder=4, label="_band")
    return True


def plot(
    paired: pd.DataFrame, study: str, reference: str = "concat", bands: list[dict] = ()
) -> Figure:
    """One panel per backbone, one line per cross-attention method (style per alignment).

    ``bands``: claimed ranges to shade, each {backbone, low, high, scales, label} in points.
    """
    rows = gap_rows(paired, reference)
    title = f"{study}: {reference} − cross-attention"
    if rows.empty:
        return message_figure(
            title,
            f"No paired runs of {reference} and a cross-attention method "
            f"({', '.join(CROSS_ATTENTION_HEADS)}) in this study.",
        )
    dataset = single_dataset(rows, study)
    rows, single = split_single_scale(rows)
    if rows.empty:
        return message_figure(f"{title} ({dataset})", single_scale_text(single, "paired"))
    apply_style()
    backbones = sorted(rows["backbone"].unique())
    colours = method_palette(rows["method"])
    linestyles = alignment_linestyles(rows["alignment"])
    scales = sorted(rows["n_train"].unique())

    note = single_scale_text(single, "paired") if single else None
    fig, axes = backbone_panels(backbones, note=note)
    shaded = {}
    for ax, backbone in zip(axes, backbones, strict=True):
        panel = rows[rows["backbone"] == backbone]
        for band in bands:
            if band["backbone"] == backbone and shade_band(ax, band, scales):
                shaded[band["label"]] = band
        for (method, alignment), line in panel.groupby(["method", "alignment"], sort=True):
            line = line.sort_values("n_train")
            x = line["n_train"]
            colour = colours[method]
            ax.fill_between(
                x,
                line["low"] * POINTS,
                line["high"] * POINTS,
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
            ax.plot(
                x,
                line["mean_diff"] * POINTS,
                color=colour,
                linestyle=linestyles[alignment],
                marker="o",
                label=method,
            )
        ax.axhline(0, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_zero")
        log2_scale_axis(ax, scales)
        panel_title(ax, backbone)
        ax.set_xlabel("training pairs")
    axes[0].set_ylabel(f"{reference} − cross-attention\n(accuracy points)")
    fig.suptitle(f"{title} ({dataset})")

    handles = [Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items()]
    handles.append(Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label="no difference"))
    for label, band in shaded.items():
        handles.append(
            Patch(
                facecolor="none",
                edgecolor=BAND_COLOUR,
                hatch="////",
                linestyle=":",
                label=f"{label}: {band['low']:g}–{band['high']:g}",
            )
        )
    height = side_legend(fig, handles, f"{reference} −")
    alignment_legend(fig, linestyles, beside=height)
    return fig
