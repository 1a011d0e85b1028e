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

from alignfuse.errors import AlignfuseError
from alignfuse.parquet import atomic_path

# seaborn's "colorblind" palette (Okabe-Ito hues) without grey (kept for reference lines) and
# yellow (too faint on white), spelled out so a seaborn release cannot change a method's colour.
PALETTE = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#56b4e9"]
METHOD_COLOURS = {"concat": "#0173b2", "xattn": "#d55e00"}
SPARE_COLOURS = [c for c in PALETTE if c not in METHOD_COLOURS.values()]
REFERENCE_COLOUR = "#949494"
LINESTYLES = ["solid", "dashed", "dotted", "dashdot", (0, (5, 1, 1, 1, 1, 1))]
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
