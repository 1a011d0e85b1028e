"""Scaling figure: test accuracy against training pairs, the paper's headline comparison.

It draws the summary table: points are the mean over seeds, bands the interval of ``summary.md``
(over seeds and test images), so every band matches a number in the table; a condition with one
seed has none. Only feature sets run at two or more scales are drawn; a note names the others.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

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

CHANCE = 0.5


COLUMNS = ["dataset", "backbone", "alignment", "method", "n_train", "test_accuracy_mean"]


def plot(summary: pd.DataFrame, study: str) -> Figure:
    """One panel per backbone, one line per method (line style per alignment when several).

    Applies the shared style (global rcParams) first, so the figure looks the same from any caller.
    """
    require_columns(summary, [*COLUMNS, "test_accuracy_low", "test_accuracy_high"], "summary")
    dataset = single_dataset(summary, study)
    summary, single = split_single_scale(summary)
    title = f"{study}: test accuracy vs training pairs ({dataset})"
    if summary.empty:
        return message_figure(title, single_scale_text(single, "summary"))
    apply_style()
    backbones = sorted(summary["backbone"].unique())
    colours = method_palette(summary["method"])
    linestyles = alignment_linestyles(summary["alignment"])
    scales = sorted(summary["n_train"].unique())

    note = single_scale_text(single, "summary") if single else None
    fig, axes = backbone_panels(backbones, note=note)
    for ax, backbone in zip(axes, backbones, strict=True):
        panel = summary[summary["backbone"] == backbone]
        for (method, alignment), line in panel.groupby(["method", "alignment"], sort=True):
            line = line.sort_values("n_train")
            x, mean = line["n_train"], line["test_accuracy_mean"]
            low, high = line["test_accuracy_low"], line["test_accuracy_high"]
            colour = colours[method]
            ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
            ax.plot(
                x, mean, color=colour, linestyle=linestyles[alignment], marker="o", label=method
            )
        ax.axhline(CHANCE, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_chance")
        log2_scale_axis(ax, scales)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        panel_title(ax, backbone)
        ax.set_xlabel("training pairs")
    axes[0].set_ylabel("test accuracy")
    fig.suptitle(title)

    method_handles = [Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items()]
    method_handles.append(
        Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label=f"chance ({CHANCE:.0%})")
    )
    height = side_legend(fig, method_handles, "method")
    alignment_legend(fig, linestyles, beside=height)
    return fig
