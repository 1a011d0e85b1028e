"""Scaling figure: test accuracy against training pairs, the paper's headline comparison.

Bands are the 95% Student t intervals of ``analysis.summarize`` (mean ± ci95 across seeds), not a
bootstrap, so every band matches the number in ``summary.md``; a condition with one seed has none.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from alignfuse.analysis.tables import summarize
from alignfuse.figures.style import (
    REFERENCE_COLOUR,
    alignment_legend,
    alignment_linestyles,
    apply_style,
    backbone_panels,
    log2_scale_axis,
    method_palette,
    single_dataset,
)

CHANCE = 0.5


def plot(runs: pd.DataFrame, study: str) -> Figure:
    """One panel per backbone, one line per method (line style per alignment when several).

    Applies the shared style (global rcParams) first, so the figure looks the same from any caller.
    """
    dataset = single_dataset(runs, study)
    apply_style()
    summary = summarize(runs)
    backbones = sorted(summary["backbone"].unique())
    colours = method_palette(summary["method"])
    linestyles = alignment_linestyles(summary["alignment"])
    scales = sorted(summary["n_train"].unique())

    fig, axes = backbone_panels(backbones)
    for ax, backbone in zip(axes, backbones, strict=True):
        panel = summary[summary["backbone"] == backbone]
        for (method, alignment), line in panel.groupby(["method", "alignment"], sort=True):
            x = line["n_train"]
            mean, half = line["test_accuracy_mean"], line["test_accuracy_ci95"]
            colour = colours[method]
            ax.fill_between(x, mean - half, mean + half, color=colour, alpha=0.2, linewidth=0)
            ax.plot(
                x, mean, color=colour, linestyle=linestyles[alignment], marker="o", label=method
            )
        ax.axhline(CHANCE, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_chance")
        log2_scale_axis(ax, scales)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        ax.set_title(backbone)
        ax.set_xlabel("training pairs")
    axes[0].set_ylabel("test accuracy")
    fig.suptitle(f"{study}: test accuracy vs training pairs ({dataset})")

    method_handles = [Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items()]
    method_handles.append(
        Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label=f"chance ({CHANCE:.0%})")
    )
    fig.legend(handles=method_handles, title="method", loc="outside right upper")
    alignment_legend(fig, linestyles)
    return fig
