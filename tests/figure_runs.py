"""The condition grid of the figure tests' runs tables, and a reader of their plotted lines."""

from __future__ import annotations


def condition_grid(backbones, alignments, methods, scales, seeds: int = 3) -> list[dict]:
    """A runs table's key columns, one dict per (backbone, alignment, method, n_train, seed).

    The order is fixed (seeds innermost), so a table built from it draws its noise the same way
    every time.
    """
    return [
        {
            "dataset": "flickr8k",
            "backbone": backbone,
            "alignment": alignment,
            "method": method,
            "head": method,
            "n_train": n,
            "seed": seed,
        }
        for backbone in backbones
        for alignment in alignments
        for method in methods
        for n in scales
        for seed in range(seeds)
    ]


def data_lines(ax):
    """The lines of an axes that stand for data (matplotlib names helper lines ``_...``)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]
