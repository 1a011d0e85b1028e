"""From discrete codes of two views and a label to PID rows with a shuffled-target noise floor.

Plug-in PID on clustered features is biased upward (a finite sample always shows some
information), so every term is reported next to the same term computed with the label permuted:
only what clears that floor is read as a contribution of the image or the text.
"""

from __future__ import annotations

import math

import numpy as np

from alignfuse.errors import AlignfuseError
from alignfuse.pid.broja import GAP_TOL, broja

TERMS = ("R", "U_img", "U_txt", "S", "I")
# Below this many bits of unique information (image plus text) the split CI/CT is undefined.
SHARE_EPS = 1e-3
# The noise floor's decompositions are certified to this many bits: a floor is a quantile of a
# few permutations, whose spread is orders of magnitude wider, and the looser gap lets
# alternating minimisation answer big tables in a fraction of the cone program's time.
FLOOR_GAP_TOL = 1e-4


def joint_table(
    x1, x2, y, n_x1: int | None = None, n_x2: int | None = None, n_y: int | None = None
) -> np.ndarray:
    """Empirical (plug-in) joint probability p[x1, x2, y] of three aligned code arrays.

    The sizes default to the largest code + 1; pass them to keep codes that happen not to occur.
    """
    x1, x2, y = _codes(x1, "x1"), _codes(x2, "x2"), _codes(y, "y")
    if not x1.size == x2.size == y.size:
        raise AlignfuseError(
            f"PID: x1, x2 and y must be codes of the same rows, got {x1.size}, {x2.size} and "
            f"{y.size} rows."
        )
    if x1.size == 0:
        raise AlignfuseError("PID: no rows to estimate a joint distribution from.")
    shape = []
    for codes, size, name in ((x1, n_x1, "n_x1"), (x2, n_x2, "n_x2"), (y, n_y, "n_y")):
        size = int(codes.max()) + 1 if size is None else int(size)
        if codes.max() >= size:
            raise AlignfuseError(
                f"PID: a code {int(codes.max())} is out of range for {name}={size}."
            )
        shape.append(size)
    flat = (x1 * shape[1] + x2) * shape[2] + y
    counts = np.bincount(flat, minlength=math.prod(shape)).reshape(shape)
    return counts / x1.size


def null_floor(
    x1,
    x2,
    y,
    n_x1: int | None = None,
    n_x2: int | None = None,
    n_y: int | None = None,
    repeats: int = 20,
    seed: int = 0,
    quantile: float = 0.95,
    gap_tol: float = FLOOR_GAP_TOL,
) -> dict:
    """The ``quantile`` of each term (R, U_img, U_txt, S, I and U = U_img + U_txt) over
    ``repeats`` decompositions with y permuted: the values a label unrelated to the views reaches.

    Permuting y keeps the marginal of y and the joint of (x1, x2) and breaks only their relation.
    Each decomposition is certified to ``gap_tol`` bits.
    """
    _check_quantile(quantile)
    tables = null_tables(x1, x2, y, n_x1, n_x2, n_y, repeats, seed)
    return floor_of([broja(table, gap_tol) for table in tables], quantile)


def null_tables(x1, x2, y, n_x1, n_x2, n_y, repeats: int, seed: int) -> list[np.ndarray]:
    """The joint tables of ``repeats`` permutations of y, drawn from ``seed``."""
    if repeats < 1:
        raise AlignfuseError(f"PID: the null needs repeats >= 1, got {repeats}.")
    y = _codes(y, "y")
    rng = np.random.default_rng(seed)
    return [joint_table(x1, x2, rng.permutation(y), n_x1, n_x2, n_y) for _ in range(repeats)]


def floor_of(decompositions: list[dict], quantile: float = 0.95) -> dict:
    """The ``quantile`` of each term, and of U = U_img + U_txt, over the null's decompositions."""
    _check_quantile(quantile)
    draws = {name: [values[name] for values in decompositions] for name in TERMS}
    draws["U"] = [values["U_img"] + values["U_txt"] for values in decompositions]
    return {name: float(np.quantile(values, quantile)) for name, values in draws.items()}


def decomposition_tasks(
    x1,
    x2,
    y,
    n_x1: int | None = None,
    n_x2: int | None = None,
    n_y: int | None = None,
    repeats: int = 20,
    seed: int = 0,
) -> list[tuple[np.ndarray, float]]:
    """The (table, gap) solves :func:`decompose` rests on: the estimate's table to GAP_TOL
    first, then the null's permuted tables to FLOOR_GAP_TOL; solve them with :func:`broja`
    anywhere, in this order, and pass the results to :func:`decomposition_row`."""
    table = joint_table(x1, x2, y, n_x1, n_x2, n_y)
    nulls = null_tables(x1, x2, y, *table.shape, repeats, seed)
    return [(table, GAP_TOL), *((null, FLOOR_GAP_TOL) for null in nulls)]


def decomposition_row(
    solved: list[dict], rows: int, quantile: float = 0.95, share_eps: float = SHARE_EPS
) -> dict:
    """The row :func:`decompose` returns, from the decompositions of its tasks in their order."""
    values, floor = dict(solved[0]), floor_of(solved[1:], quantile)
    values["U"] = values["U_img"] + values["U_txt"]
    row = {}
    for name in (*TERMS, "U"):
        row[name] = float(values[name])
        row[f"{name}_floor"] = floor[name]
        row[f"{name}_above_noise"] = bool(values[name] > floor[name])
    share_defined = row["U_above_noise"] and row["U"] >= share_eps
    row["CI"] = row["U_img"] / row["U"] if share_defined else math.nan
    row["CT"] = 1.0 - row["CI"] if share_defined else math.nan
    row.update(solver=values["solver"], gap=values["gap"], rows=rows, repeats=len(solved) - 1)
    return row


def decompose(
    x1,
    x2,
    y,
    n_x1: int | None = None,
    n_x2: int | None = None,
    n_y: int | None = None,
    repeats: int = 20,
    seed: int = 0,
    quantile: float = 0.95,
    share_eps: float = SHARE_EPS,
) -> dict:
    """PID of y by image codes x1 and text codes x2, each term with its noise floor.

    Returns, for T in R, U_img, U_txt, S, I and U (= U_img + U_txt): ``T`` (bits), ``T_floor``
    (its ``quantile`` under ``repeats`` permutations of y) and ``T_above_noise``; then
    ``CI`` = U_img / U, the image's share of the unique information, and ``CT`` = 1 - CI, both
    NaN when U is not above its floor or below ``share_eps`` bits; and the solver's ``solver`` and
    ``gap``, ``rows`` and ``repeats``.
    """
    _check_quantile(quantile)
    tasks = decomposition_tasks(x1, x2, y, n_x1, n_x2, n_y, repeats, seed)
    solved = [broja(table, gap_tol) for table, gap_tol in tasks]
    return decomposition_row(solved, int(np.size(y)), quantile, share_eps)


def _check_quantile(quantile: float) -> None:
    if not 0.0 < quantile < 1.0:
        raise AlignfuseError(f"PID: the null quantile must be in (0, 1), got {quantile}.")


def _codes(codes, name: str) -> np.ndarray:
    """A 1-D array of non-negative integer codes."""
    array = np.asarray(codes)
    if array.ndim != 1:
        raise AlignfuseError(f"PID: {name} must be a 1-D array of codes, got shape {array.shape}.")
    if array.size and not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise AlignfuseError(
            f"PID: {name} must hold integer codes (e.g. Codebook.assign), got {array.dtype}."
        )
    if array.size and array.min() < 0:
        raise AlignfuseError(f"PID: {name} has a negative code {int(array.min())}.")
    return array.astype(np.int64)
