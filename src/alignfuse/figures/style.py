"""The look every figure shares: theme, a fixed colour per method, and reproducible saving.

A method keeps its colour in every figure (concat is always blue), so a reader can compare
figures at a glance; saved files are byte-identical when the figure is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from alignfuse.errors import AlignfuseError
from alignfuse.parquet import atomic_path

# seaborn's "colorblind" palette (Okabe-Ito hues) without grey (kept for reference lines) and
# yellow (too faint on white), then Paul Tol's muted hues for methods beyond eight, spelled out so a
# seaborn release cannot change a method's colour.
PALETTE = [
    "#0173b2",
    "#de8f05",
    "#029e73",
    "#d55e00",
    "#cc78bc",
    "#ca9161",
    "#fbafe4",
    "#56b4e9",
    "#332288",
    "#117733",
    "#882255",
    "#44aa99",
    "#999933",
    "#aa4499",
]
# The study's methods, pinned: cross-attention in warm hues, the other fusions in cool ones, the
# unimodal baselines in neutral dark tones. ``xattn`` is the old name of ``xattn_txt2img``.
METHOD_COLOURS = {
    "concat": "#0173b2",
    "xattn": "#d55e00",
    "xattn_txt2img": "#d55e00",
    "xattn_img2txt": "#de8f05",
    "xattn_bidir": "#cc78bc",
    "gated_sum": "#029e73",
    "weighted_sum": "#56b4e9",
    "late": "#ca9161",
    "image_only": "#555555",
    "text_only": "#000000",
}
SPARE_COLOURS = [c for c in PALETTE if c not in METHOD_COLOURS.values()]
REFERENCE_COLOUR = "#949494"
LINESTYLES = ["solid", "dashed", "dotted", "dashdot", (0, (5, 1, 1, 1, 1, 1))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
# PDFs carry no creation date, so the same figure saves to the same bytes.
SAVE_OPTIONS = {".pdf": {"metadata": {"CreationDate": None}}, ".png": {}}


def apply_style() -> None:
    """Seaborn's paper theme with the colour-blind palette; fonts embedded as editable TrueType."""
    sns.set_theme(
        context="paper",
        style="whitegrid",
        palette=PALETTE,
        rc={"pdf.fonttype": 42, "ps.fonttype": 42},
    )


def method_palette(methods: Iterable[str]) -> dict[str, str]:
    """Hex colour per method (sorted by name), the same in every figure.

    Methods named in METHOD_COLOURS have theirs; any other takes a spare colour chosen by a hash of
    its name, moving on to the next free one if that colour is taken in this figure (colours repeat
    only beyond len(PALETTE) methods). Add a method to METHOD_COLOURS to pin its colour for good.
    """
    palette: dict[str, str] = {}
    for method in sorted(set(methods), key=lambda m: (m not in METHOD_COLOURS, m)):
        if method in METHOD_COLOURS:
            palette[method] = METHOD_COLOURS[method]
            continue
        start = int(hashlib.sha256(method.encode()).hexdigest(), 16) % len(SPARE_COLOURS)
        ring = SPARE_COLOURS[start:] + SPARE_COLOURS[:start]
        free = [c for c in ring if c not in palette.values()]
        palette[method] = free[0] if free else ring[0]
    return dict(sorted(palette.items()))


def alignment_linestyles(alignments: Iterable[str]) -> dict[str, str | tuple]:
    """Line style per alignment: ``raw`` solid, the others in name order (cycling past five)."""
    ordered = sorted(set(alignments), key=lambda a: (a != "raw", a))
    return {a: LINESTYLES[i % len(LINESTYLES)] for i, a in enumerate(ordered)}


def alignment_markers(alignments: Iterable[str]) -> dict[str, str]:
    """Marker per alignment in the order of ``alignment_linestyles`` (``raw`` a circle)."""
    ordered = sorted(set(alignments), key=lambda a: (a != "raw", a))
    return {a: MARKERS[i % len(MARKERS)] for i, a in enumerate(ordered)}


def save_figure(fig: Figure, outputs: list[Path], dpi: int) -> None:
    """Write the figure once per output (format from the suffix), each atomically; then close it.

    The layout is computed once and then frozen: a layout engine refines positions on every draw,
    so without this each format, and each save, would place things slightly differently.
    """
    try:
        for output in map(Path, outputs):
            if output.suffix.lower() not in SAVE_OPTIONS:
                raise AlignfuseError(
                    f"{output}: unsupported figure format; name outputs ending in "
                    f"{' or '.join(SAVE_OPTIONS)}"
                )
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
        for output in map(Path, outputs):
            suffix = output.suffix.lower()
            with atomic_path(output) as tmp:
                fig.savefig(tmp, format=suffix[1:], dpi=dpi, **SAVE_OPTIONS[suffix])
    finally:
        plt.close(fig)


def message_figure(title: str, message: str) -> Figure:
    """A figure that says why there is nothing to draw, so a study without a figure's methods
    still finishes (the figure explains itself instead of the workflow failing)."""
    apply_style()
    fig = Figure(figsize=(4.5, 2.2), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    fig.suptitle(title)
    return fig


PANEL_WIDTH = 2.6  # inches per backbone panel
PANEL_HEIGHT = 2.8
CHARACTER = 0.075  # inches per character of legend text at the paper context's font size
LEGEND_ROW = 0.2  # inches per legend entry


def backbone_panels(
    backbones: list[str], legend: list[str], sharex: bool = True
) -> tuple[Figure, list]:
    """A row of panels, one per backbone, sharing the y axis (and the x axis unless told not),
    in a figure wide and tall enough for a legend of the ``legend`` labels at its right, so
    long method labels neither squeeze the panels nor reach the title."""
    legend_width = 0.7 + CHARACTER * max((len(label) for label in legend), default=0)
    width = 1.0 + PANEL_WIDTH * len(backbones) + legend_width
    height = max(PANEL_HEIGHT, 1.2 + LEGEND_ROW * len(legend))
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, len(backbones), sharex=sharex, sharey=True, squeeze=False)[0]
    return fig, list(axes)


def side_legend(fig: Figure, handles: list, title: str) -> None:
    """The method legend, outside the panels on the right, centred so it clears the title."""
    fig.legend(handles=handles, title=title, loc="outside right center")


def log2_scale_axis(ax, scales: Iterable[int]) -> None:
    """Training pairs on a log2 axis, ticked and labelled at the study's scales only."""
    scales = sorted(set(scales))
    ax.set_xscale("log", base=2)
    ax.set_xticks(scales, labels=[str(n) for n in scales])
    ax.xaxis.set_minor_locator(NullLocator())


def require_columns(table, columns: list[str], name: str) -> None:
    """Refuse a table that is not the one a figure draws, naming it and how to rebuild it."""
    missing = [c for c in columns if c not in table]
    if missing:
        raise AlignfuseError(
            f"{name} table lacks columns {', '.join(missing)}; pass "
            f"results/<study>/tables/{name}.parquet (rerun the aggregate rule)"
        )


def single_dataset(runs, study: str) -> str:
    """The one dataset a figure draws: an empty table or one that mixes datasets is refused."""
    if runs.empty:
        raise AlignfuseError(f"study {study!r}: no runs to plot; the runs table is empty")
    datasets = sorted(runs["dataset"].unique())
    if len(datasets) > 1:
        raise AlignfuseError(
            f"study {study!r}: runs span datasets {', '.join(datasets)}; plot one dataset at a time"
        )
    return datasets[0]


def alignment_legend(fig: Figure, linestyles: dict[str, str | tuple]) -> None:
    """A legend of line styles below the panels, only when there is more than one alignment."""
    if len(linestyles) < 2:
        return
    handles = [Line2D([], [], color="black", linestyle=s, label=a) for a, s in linestyles.items()]
    fig.legend(handles=handles, title="alignment", loc="outside lower center", ncols=len(handles))
