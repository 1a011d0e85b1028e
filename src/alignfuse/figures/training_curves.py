"""Training curves: dev accuracy per epoch for every seed, and how uniform attention is.

A head that never leaves chance, or leaves it late, shows here seed by seed; the second row shows
why for attention heads: attention entropy over its ceiling (log of the number of keys) stays at 1
while attention is uniform and ignores the query. Drawn at each backbone's largest scale on one
alignment, so every line is one trained seed of a condition in ``summary.md``.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from alignfuse.figures.style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    REFERENCE_COLOUR,
    apply_style,
    method_palette,
    panel_title,
    require_columns,
    side_legend,
    single_dataset,
)

CHANCE = 0.5
COLUMNS = [
    "dataset",
    "backbone",
    "alignment",
    "method",
    "n_train",
    "seed",
    "epoch",
    "dev_accuracy",
    "attention_entropy",
    "attention_ceiling",
]


def drawn_curves(curves: pd.DataFrame, alignment: str | None) -> tuple[pd.DataFrame, str]:
    """The curves of one alignment (``raw`` where the study has it) at each backbone's largest
    training-pair count."""
    alignments = sorted(curves["alignment"].unique())
    if alignment is None:
        alignment = "raw" if "raw" in alignments else alignments[0]
    curves = curves[curves["alignment"] == alignment]
    largest = curves.groupby("backbone")["n_train"].transform("max")
    return curves[curves["n_train"] == largest], alignment


def plot(curves: pd.DataFrame, study: str, alignment: str | None = None) -> Figure:
    """A column per backbone; dev accuracy per epoch and, for attention heads, normalised
    attention entropy, one thin line per seed coloured by method."""
    require_columns(curves, COLUMNS, "curves")
    dataset = single_dataset(curves, study)
    apply_style()
    curves, alignment = drawn_curves(curves, alignment)
    backbones = sorted(curves["backbone"].unique())
    colours = method_palette(curves["method"])
    attention = curves.dropna(subset=["attention_entropy", "attention_ceiling"])
    rows = 2 if not attention.empty else 1
    fig = Figure(
        figsize=(1.0 + PANEL_WIDTH * len(backbones), PANEL_HEIGHT * rows), layout="constrained"
    )
    axes = fig.subplots(rows, len(backbones), sharex="col", sharey="row", squeeze=False)
    for column, backbone in enumerate(backbones):
        panel = curves[curves["backbone"] == backbone]
        n_train = int(panel["n_train"].iloc[0])
        top = axes[0][column]
        for (method, seed), line in panel.groupby(["method", "seed"], sort=True):
            line = line.sort_values("epoch")
            style = {"color": colours[method], "linewidth": 0.9, "label": f"{method} seed {seed}"}
            top.plot(line["epoch"], line["dev_accuracy"], **style)
            if rows == 2 and line["attention_entropy"].notna().any():
                ratio = line["attention_entropy"] / line["attention_ceiling"]
                axes[1][column].plot(line["epoch"], ratio, **style)
        top.axhline(CHANCE, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_chance")
        top.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        panel_title(top, f"{backbone}@{alignment}, n = {n_train}")
        axes[-1][column].set_xlabel("epoch")
    axes[0][0].set_ylabel("dev accuracy")
    if rows == 2:
        for ax in axes[1]:
            ax.axhline(1.0, color=REFERENCE_COLOUR, linestyle="--", linewidth=1, label="_uniform")
        axes[1][0].set_ylabel("attention entropy\n/ log keys (1: uniform)")
    fig.suptitle(f"{study}: training curves, one line per seed ({dataset})")
    handles = [Line2D([], [], color=c, label=m) for m, c in colours.items()]
    handles.append(
        Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label=f"chance ({CHANCE:.0%})")
    )
    side_legend(fig, handles, "method")
    return fig
