"""Parameter figure: test accuracy against head size at the largest training scale.

The paper's heads are not parameter-matched (cross-attention has about 2.5× concat's parameters),
so this figure shows whether a method's accuracy follows its size. It draws the summary table:
points are means over seeds and error bars the intervals of ``summary.md``.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter, PercentFormatter

from alignfuse.figures.style import (
    REFERENCE_COLOUR,
    alignment_markers,
    apply_style,
    backbone_panels,
    bottom_legend,
    method_palette,
    panel_title,
    require_columns,
    side_legend,
    single_dataset,
)

CHANCE = 0.5


def largest_scale(summary: pd.DataFrame) -> pd.DataFrame:
    """Each backbone's conditions at the largest number of training pairs it was run with."""
    largest = summary.groupby("backbone")["n_train"].transform("max")
    return summary[summary["n_train"] == largest]


def parameter_axis(ax, params: pd.Series) -> None:
    """Log-scaled parameter counts in engineering notation (2.6k, 630k); within less than a decade
    the ticks at 2 and 5 times a power of ten are labelled too, so the axis never goes bare."""
    ax.set_xscale("log")
    ax.margins(x=0.12)  # markers at the extremes keep their error bars clear of the frame
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    if params.max() < 10 * params.min():
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_minor_formatter(EngFormatter(sep=""))
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())


COLUMNS = ["dataset", "backbone", "alignment", "method", "n_train", "params_mean"]


def plot(summary: pd.DataFrame, study: str) -> Figure:
    """One panel per backbone, one marker per method (marker shape per alignment when several)."""
    require_columns(
        summary,
        [*COLUMNS, "test_accuracy_mean", "test_accuracy_low", "test_accuracy_high"],
        "summary",
    )
    dataset = single_dataset(summary, study)
    apply_style()
    summary = largest_scale(summary)
    backbones = sorted(summary["backbone"].unique())
    colours = method_palette(summary["method"])
    markers = alignment_markers(summary["alignment"])

    fig, axes = backbone_panels(backbones, sharex=False)
    for ax, backbone in zip(axes, backbones, strict=True):
        panel = summary[summary["backbone"] == backbone]
        for point in panel.itertuples():
            mean, low, high = (
                point.test_accuracy_mean,
                point.test_accuracy_low,
                point.test_accuracy_high,
            )
            ax.errorbar(
                point.params_mean,
                mean,
                yerr=None if pd.isna(low) else [[mean - low], [high - mean]],
                color=colours[point.method],
                marker=markers[point.alignment],
                markersize=6,
                linestyle="none",
                capsize=2,
                label=point.method,
            )
        ax.axhline(CHANCE, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_chance")
        parameter_axis(ax, panel["params_mean"])
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        panel_title(ax, f"{backbone} (n = {panel['n_train'].iloc[0]})")
        ax.set_xlabel("parameters")
    axes[0].set_ylabel("test accuracy")
    fig.suptitle(f"{study}: test accuracy vs head parameters ({dataset})")

    handles = [
        Line2D([], [], color=c, marker="o", linestyle="none", label=m) for m, c in colours.items()
    ]
    handles.append(
        Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label=f"chance ({CHANCE:.0%})")
    )
    height = side_legend(fig, handles, "method")
    if len(markers) > 1:
        marker_handles = [
            Line2D([], [], color="black", marker=m, linestyle="none", label=a)
            for a, m in markers.items()
        ]
        bottom_legend(fig, marker_handles, "alignment", beside=height)
    return fig
