"""Gap figure: concat − cross-attention against training pairs, the paper's claim at a glance.

It draws the paired table (``statistics.paired_differences``): each point is the mean over seeds of
the same-seed difference, each band its 95% Student t interval, so the figure and ``paired.md``
show the same numbers. The paper's 4.1–5.1 point range is shaded on the ``clip`` panel.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from alignfuse.analysis.paper import (
    CLIP_GAP,
    METRIC,
    PAPER_BACKBONE,
    PAPER_SCALES,
    POINTS,
    REFERENCE,
    is_cross_attention,
)
from alignfuse.errors import AlignfuseError
from alignfuse.figures.style import (
    REFERENCE_COLOUR,
    alignment_legend,
    alignment_linestyles,
    apply_style,
    backbone_panels,
    log2_scale_axis,
    message_figure,
    method_palette,
    single_dataset,
)

REQUIRED = ["dataset", "backbone", "alignment", "n_train", "metric", "reference", "method", "head"]
PAPER_COLOUR = "#555555"


def gap_rows(paired: pd.DataFrame) -> pd.DataFrame:
    """The test-accuracy rows of concat − each cross-attention method."""
    missing = [c for c in [*REQUIRED, "mean_diff", "ci_low", "ci_high"] if c not in paired]
    if missing:
        raise AlignfuseError(
            f"paired table lacks columns {', '.join(missing)}; pass results/tables/paired.parquet "
            "(rerun the aggregate rule)"
        )
    keep = (
        (paired["metric"] == METRIC)
        & (paired["reference"] == REFERENCE)
        & paired["head"].map(is_cross_attention)
    )
    return paired[keep]


def shade_paper_band(ax, scales: list[int]) -> bool:
    """Shade the paper's range over the part of our x range where the paper made its claim."""
    low = max(min(scales), PAPER_SCALES[0])
    high = min(max(scales), PAPER_SCALES[-1])
    if low > high:
        return False
    x = [low, high] if low < high else [low / 1.1, high * 1.1]
    ax.fill_between(
        x,
        *CLIP_GAP,
        facecolor="none",
        edgecolor=PAPER_COLOUR,
        hatch="////",
        linewidth=0,
        zorder=1,
        label="_paper",
    )
    for bound in CLIP_GAP:  # drawn over the interval bands, so the range stays visible
        ax.plot(x, [bound, bound], color=PAPER_COLOUR, linestyle=":", zorder=4, label="_paper")
    return True


def plot(paired: pd.DataFrame, study: str) -> Figure:
    """One panel per backbone, one line per cross-attention method (style per alignment)."""
    rows = gap_rows(paired)
    title = f"{study}: concat − cross-attention"
    if rows.empty:
        return message_figure(
            title,
            f"No paired runs of {REFERENCE} and a cross-attention method (xattn*) in this study.",
        )
    dataset = single_dataset(rows, study)
    apply_style()
    backbones = sorted(rows["backbone"].unique())
    colours = method_palette(rows["method"])
    linestyles = alignment_linestyles(rows["alignment"])
    scales = sorted(rows["n_train"].unique())

    fig, axes = backbone_panels(backbones)
    shaded = False
    for ax, backbone in zip(axes, backbones, strict=True):
        panel = rows[rows["backbone"] == backbone]
        if backbone == PAPER_BACKBONE:
            shaded |= shade_paper_band(ax, scales)
        for (method, alignment), line in panel.groupby(["method", "alignment"], sort=True):
            line = line.sort_values("n_train")
            x = line["n_train"]
            colour = colours[method]
            ax.fill_between(
                x,
                line["ci_low"] * POINTS,
                line["ci_high"] * POINTS,
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
        ax.set_title(backbone)
        ax.set_xlabel("training pairs")
    axes[0].set_ylabel(f"{REFERENCE} − cross-attention\n(accuracy points)")
    fig.suptitle(f"{title} ({dataset})")

    handles = [Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items()]
    handles.append(Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label="no difference"))
    if shaded:
        handles.append(
            Patch(
                facecolor="none",
                edgecolor=PAPER_COLOUR,
                hatch="////",
                linestyle=":",
                label=f"paper: {CLIP_GAP[0]}–{CLIP_GAP[1]}",
            )
        )
    fig.legend(handles=handles, title="concat −", loc="outside right upper")
    alignment_legend(fig, linestyles)
    return fig
