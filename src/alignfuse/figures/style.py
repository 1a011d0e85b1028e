"""The look every figure shares: theme, a fixed colour per method, and reproducible saving.

A method keeps its colour in every figure (concat is always blue), so a reader can compare
figures at a glance; saved files are byte-identical when the figure is.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import TextToPath
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
NOTE_COLOUR = "#555555"  # grey, and dark enough to read in small type
LINESTYLES = ["solid", "dashed", "dotted", "dashdot", (0, (5, 1, 1, 1, 1, 1))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
# PDFs carry no creation date, so the same figure saves to the same bytes.
SAVE_OPTIONS = {".pdf": {"metadata": {"CreationDate": None}}, ".png": {}}


# seaborn's paper theme with PALETTE, written out as a style sheet: importing seaborn took longer
# than drawing most figures, and every figure is a job of its own
THEME = Path(__file__).with_name("paper.mplstyle")


def apply_style() -> None:
    """Seaborn's paper theme with the colour-blind palette; fonts embedded as editable TrueType."""
    matplotlib.style.use(THEME)


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


def comparison_palette(methods: Iterable[str], comparisons: Iterable[str]) -> dict[str, str]:
    """Hex colour per comparison (a reference − method label): its method's colour of
    :func:`method_palette` where each method is in one comparison only, so a head keeps its
    colour across figures; else one colour per comparison."""
    pairs = sorted(set(zip(methods, comparisons, strict=True)))
    labels = [comparison for _, comparison in pairs]
    by_method = [method for method, _ in pairs]
    if len(set(by_method)) == len(pairs):
        colours = method_palette(by_method)
        return {comparison: colours[method] for method, comparison in pairs}
    return method_palette(labels)


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
TITLE_ROOM = 0.5  # inches the suptitle and the layout's padding take from a side legend's height
EDGE_ROOM = 0.2  # inches a legend or note keeps from the figure's edges
TICK_ANGLE = 30  # degrees of slant of category tick labels
LINE_SPACING = 1.2  # matplotlib's text line spacing, in font heights


def text_size(text: str, size) -> tuple[float, float]:
    """Width and height (inches) of ``text`` drawn at font ``size`` (points or a size name)."""
    prop = FontProperties(size=size)
    lines = [
        TextToPath().get_text_width_height_descent(line, prop, ismath=False)
        for line in text.split("\n")
    ]
    width = max(w for w, _, _ in lines)
    height = (1 + LINE_SPACING * (len(lines) - 1)) * max(h + d for _, h, d in lines)
    return width / 72, height / 72


def legend_size(labels: list[str], title: str | None, ncols: int) -> tuple[float, float]:
    """Width and height (inches) of a legend of ``labels`` in ``ncols`` columns, padding outside
    its frame included, as matplotlib lays it out: the rcParams' spacings, columns filled in turn
    (``np.array_split``), each as wide as its longest label."""
    rc = plt.rcParams
    font = FontProperties(size=rc["legend.fontsize"]).get_size_in_points() / 72
    sizes = [text_size(label, rc["legend.fontsize"]) for label in labels]
    handle = (rc["legend.handlelength"] + rc["legend.handletextpad"]) * font
    columns = [c for c in np.array_split(np.arange(len(labels)), ncols) if len(c)]
    width = sum(handle + max(sizes[i][0] for i in column) for column in columns)
    width += rc["legend.columnspacing"] * font * (len(columns) - 1)
    rows = max(len(column) for column in columns)
    row = max([rc["legend.handleheight"] * font, *(h for _, h in sizes)])
    height = rows * row + (rows - 1) * rc["legend.labelspacing"] * font
    if title:
        title_width, title_height = text_size(title, rc["legend.title_fontsize"])
        width = max(width, title_width)
        height += title_height + rc["legend.labelspacing"] * font
    pad = 2 * (rc["legend.borderpad"] + rc["legend.borderaxespad"]) * font
    return width + pad, height + pad


def backbone_panels(
    backbones: list[str], sharex: bool = True, note: str | None = None
) -> tuple[Figure, list]:
    """A row of panels, one per backbone, sharing the y axis (and the x axis unless told not),
    and under them the ``note`` in small type, wrapped to their width, where one is given.

    The figure holds the panels and the note alone; ``side_legend`` and ``bottom_legend`` grow it
    by the room their legends take, so panels keep their size whatever the number and length of
    labels. The note sits in an axes of its own, for which the constrained layout keeps room
    (it would put a figure-level text on top of a bottom legend)."""
    width = 1.0 + PANEL_WIDTH * len(backbones)
    rows = [PANEL_HEIGHT]
    if note:
        size = plt.rcParams["legend.fontsize"]
        per_character = text_size(note, size)[0] / len(note)
        note = textwrap.fill(note, int(PANEL_WIDTH * len(backbones) / per_character))
        rows.append(text_size(note, size)[1])
    fig = Figure(figsize=(width, sum(rows)), layout="constrained")
    grid = fig.add_gridspec(len(rows), 1, height_ratios=rows)
    panels = grid[0].subgridspec(1, len(backbones))
    axes = panels.subplots(sharex=sharex, sharey=True, squeeze=False)[0]
    if note:
        note_axes = fig.add_subplot(grid[1])
        note_axes.set_axis_off()
        note_axes.text(
            0.5, 0.5, note, ha="center", va="center", fontsize=size, color=NOTE_COLOUR,
            transform=note_axes.transAxes,
        )  # fmt: skip
    return fig, list(axes)


def panel_title(ax, title: str, width: float = PANEL_WIDTH) -> None:
    """The panel's title, wrapped to the panel's ``width`` (inches) so long feature-set names
    neither run into the next panel nor off the figure."""
    size = plt.rcParams["axes.titlesize"]
    per_character = text_size(title, size)[0] / max(len(title), 1)
    ax.set_title(textwrap.fill(title, max(8, int(0.9 * width / per_character))))


def side_legend(fig: Figure, handles: list, title: str) -> float:
    """The legend outside the panels on the right, centred so it clears the title.

    It takes as many columns as the figure's height needs, and the figure widens by its width.
    Returns its height (inches), which a bottom legend added later must stay below."""
    labels = [handle.get_label() for handle in handles]
    room = fig.get_figheight() - TITLE_ROOM
    ncols = 1
    while ncols < len(labels) and legend_size(labels, title, ncols)[1] > room:
        ncols += 1
    width, height = legend_size(labels, title, ncols)
    fig.set_figwidth(fig.get_figwidth() + width)
    fig.legend(handles=handles, title=title, loc="outside right center", ncols=ncols)
    return height


def bottom_legend(fig: Figure, handles: list, title: str, beside: float = 0.0) -> None:
    """A legend below the panels in as many columns as the figure's width holds (one row where it
    holds all); the figure grows by its height, and further where a side legend ``beside`` inches
    tall, centred on the figure, would reach down to it. Add it after the side legend, which
    widens the figure."""
    labels = [handle.get_label() for handle in handles]
    room = fig.get_figwidth() - 2 * EDGE_ROOM
    ncols = len(labels)
    while ncols > 1 and legend_size(labels, title, ncols)[0] > room:
        ncols -= 1
    height = legend_size(labels, title, ncols)[1]
    fig.set_figheight(max(fig.get_figheight() + height, beside + 2 * height + 2 * EDGE_ROOM))
    fig.legend(handles=handles, title=title, loc="outside lower center", ncols=ncols)


def slanted_ticks(ax, positions, labels) -> None:
    """Category labels under a panel, slanted so neighbours do not run together."""
    ax.set_xticks(positions, labels, rotation=TICK_ANGLE, ha="right")


def room_for_slanted_ticks(fig: Figure, labels) -> None:
    """Grow the figure by the height the longest slanted label takes, so long method names do
    not squash the panels."""
    size = plt.rcParams["xtick.labelsize"]
    longest = max((text_size(label, size)[0] for label in labels), default=0.0)
    fig.set_figheight(fig.get_figheight() + longest * np.sin(np.radians(TICK_ANGLE)))


def name_list(names: list[str], limit: int = 6) -> str:
    """``a, b and c``; past ``limit`` names, the first ones and how many more."""
    if len(names) > limit:
        names = [*names[: limit - 1], f"{len(names) - limit + 1} more"]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def split_single_scale(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows of feature sets (backbone@alignment) run at two or more training scales, and the
    names of those run at one: a curve against training pairs needs two points, and a set run at
    one scale (a degradation sub-grid's) is drawn against its degradation level instead."""
    scales = table.groupby(["backbone", "alignment"])["n_train"].transform("nunique")
    single = table[scales < 2]
    return table[scales >= 2], sorted((single["backbone"] + "@" + single["alignment"]).unique())


def single_scale_text(names: list[str], table: str) -> str:
    """Where the feature sets a figure against training pairs leaves out are to be found."""
    count = f"{len(names)} feature set{'s' if len(names) > 1 else ''}"
    return (
        f"Not drawn: {count} run at a single training scale ({name_list(names)}); their "
        f"results are in the {table} table, the degraded ones in the alignment_gap figure."
    )


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


def alignment_legend(fig: Figure, linestyles: dict[str, str | tuple], beside: float = 0.0) -> None:
    """A legend of line styles below the panels, only when there is more than one alignment
    (``beside``: the height of the side legend, as ``bottom_legend`` takes it)."""
    if len(linestyles) < 2:
        return
    handles = [Line2D([], [], color="black", linestyle=s, label=a) for a, s in linestyles.items()]
    bottom_legend(fig, handles, "alignment", beside)
