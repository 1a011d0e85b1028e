"""Theory against measurement: each method's measured test error (mean over seeds, t interval)
against training pairs, with its fitted learning curve e_inf + b·n^-c where the scales identify
one, log-scaled pairs, one panel per feature set."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from alignfuse.figures.style import (
    apply_style,
    backbone_panels,
    log2_scale_axis,
    message_figure,
    method_palette,
    panel_title,
    require_columns,
    side_legend,
)


def measured_scales(part: pd.DataFrame) -> list[int]:
    return sorted(int(n) for n in part.loc[part["kind"] == "measured", "n"].unique())


def plot(points: pd.DataFrame, study: str) -> Figure:
    """Measured points with intervals, fitted curves as lines."""
    require_columns(
        points,
        ["feature_set", "method", "kind", "n", "error", "low", "high"],
        "theory_learning_curves",
    )
    title = f"{study}: measured learning curves and their fits"
    if points.empty:
        return message_figure(title, "No learning curves (a method needs several scales).")
    apply_style()
    panels = sorted(points["feature_set"].unique())
    colours = method_palette(points["method"])
    fits = bool((points["kind"] == "fitted").any())
    fit_label = "fitted e_inf + b n^-c" if fits else "no fitted curve (not identified)"
    fig, axes = backbone_panels(panels, sharex=False)
    for ax, panel in zip(axes, panels, strict=True):
        part = points[points["feature_set"] == panel]
        for method, rows in part.groupby("method"):
            measured = rows[rows["kind"] == "measured"].sort_values("n")
            fitted = rows[rows["kind"] == "fitted"].sort_values("n")
            colour = colours[method]
            ax.errorbar(
                measured["n"],
                100 * measured["error"],
                yerr=[
                    100 * (measured["error"] - measured["low"]),
                    100 * (measured["high"] - measured["error"]),
                ],
                color=colour,
                marker="o",
                linestyle="none",
                capsize=2,
            )
            if len(fitted):
                ax.plot(fitted["n"], 100 * fitted["error"], color=colour, linewidth=1)
        log2_scale_axis(ax, measured_scales(part))
        ax.set_ylim(bottom=max(0.0, ax.get_ylim()[0]), top=min(100.0, ax.get_ylim()[1]))
        panel_title(ax, panel)
        ax.set_xlabel("training pairs")
    axes[0].set_ylabel("test error (%)")
    fig.suptitle(title)
    handles = [
        Line2D([], [], color=c, marker="o", linestyle="none", label=m) for m, c in colours.items()
    ]
    handles.append(
        Line2D([], [], color="black", label=fit_label, linestyle="-" if fits else "none")
    )
    side_legend(fig, handles, "method")
    return fig
