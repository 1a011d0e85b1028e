"""Gap figure: each declared reference − cross-attention comparison against training pairs.

It draws the paired table (``statistics.paired_differences``), whose rows are the study's declared
comparisons: those whose compared method is of the attention family. Each point is the mean over
seeds of the same-seed difference, each band its interval over seeds and test images, so the figure
and ``paired.md`` show the same numbers; a comparison of two recipes says "mixed recipe" in its
legend. Each claimed range that its rule passes in (the study's gap claims) is shaded on its
backbone's panel, over the scales it was claimed at. Only feature sets run at two or more scales
are drawn; a note names the others.
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
    comparison_palette,
    log2_scale_axis,
    message_figure,
    panel_title,
    require_columns,
    side_legend,
    single_dataset,
    single_scale_text,
    split_single_scale,
)
from alignfuse.fusion import ATTENTION

METRIC = "test_accuracy"
POINTS = 100.0
REQUIRED = [
    "dataset",
    "backbone",
    "alignment",
    "n_train",
    "metric",
    "reference",
    "method",
    "family",
    "mixed_recipe",
]
BAND_COLOUR = "#555555"
MIXED = "mixed recipe"


def gap_rows(paired: pd.DataFrame) -> pd.DataFrame:
    """The test-accuracy rows of every declared comparison with an attention-family method,
    each with its ``comparison`` label (reference − method, and whether the recipes differ)."""
    require_columns(paired, [*REQUIRED, "mean_diff", "low", "high"], "paired")
    rows = paired[(paired["metric"] == METRIC) & (paired["family"] == ATTENTION)]
    label = rows["reference"] + " − " + rows["method"]
    mixed = rows["mixed_recipe"].astype(bool).map({True: f" ({MIXED})", False: ""})
    return rows.assign(comparison=label + mixed)


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


def plot(paired: pd.DataFrame, study: str, bands: list[dict] = ()) -> Figure:
    """One panel per backbone, one line per declared comparison (style per alignment).

    ``bands``: claimed ranges to shade, each {backbone, low, high, scales, label} in points.
    """
    rows = gap_rows(paired)
    title = f"{study}: reference − cross-attention"
    if rows.empty:
        return message_figure(
            title,
            f"No declared comparison of a method of the {ATTENTION} family in this study "
            "(analysis.reference, claims or comparisons).",
        )
    dataset = single_dataset(rows, study)
    rows, single = split_single_scale(rows)
    if rows.empty:
        return message_figure(f"{title} ({dataset})", single_scale_text(single, "paired"))
    apply_style()
    backbones = sorted(rows["backbone"].unique())
    colours = comparison_palette(rows["method"], rows["comparison"])
    linestyles = alignment_linestyles(rows["alignment"])
    scales = sorted(rows["n_train"].unique())

    note = single_scale_text(single, "paired") if single else None
    fig, axes = backbone_panels(backbones, note=note)
    shaded = {}
    for ax, backbone in zip(axes, backbones, strict=True):
        panel = rows[rows["backbone"] == backbone]
        drawn = set()
        for band in bands:
            region = (band["low"], band["high"], tuple(band["scales"]))
            if band["backbone"] != backbone:
                continue
            if region in drawn or shade_band(ax, band, scales):
                drawn.add(region)
                shaded.setdefault(region, []).append(band["label"])
        for (comparison, alignment), line in panel.groupby(["comparison", "alignment"], sort=True):
            line = line.sort_values("n_train")
            x = line["n_train"]
            colour = colours[comparison]
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
                label=comparison,
            )
        ax.axhline(0, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_zero")
        log2_scale_axis(ax, scales)
        panel_title(ax, backbone)
        ax.set_xlabel("training pairs")
    axes[0].set_ylabel("reference − cross-attention\n(accuracy points)")
    fig.suptitle(f"{title} ({dataset})")

    handles = [Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items()]
    handles.append(Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label="no difference"))
    for (low, high, _), labels in shaded.items():
        handles.append(
            Patch(
                facecolor="none",
                edgecolor=BAND_COLOUR,
                hatch="////",
                linestyle=":",
                label=f"{', '.join(dict.fromkeys(labels))}: {low:g}–{high:g}",
            )
        )
    height = side_legend(fig, handles, "reference − method")
    alignment_legend(fig, linestyles, beside=height)
    return fig
