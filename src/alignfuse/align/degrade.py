"""Controlled damage to the text side of a feature set, each at a level from 0 (unchanged) to 1.

The three kinds separate what alignment is made of: ``rotation`` keeps all information but breaks
the coordinate correspondence, ``noise`` destroys information per caption at constant feature
variance, and ``shuffle`` pairs a share of captions with features of another image's caption.
Every degradation is seeded and deterministic; level 0 returns the features bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from alignfuse.errors import AlignfuseError
from alignfuse.rotation import rotate


def check_level(key: str, level: float) -> float:
    """``level`` as a float if it lies in [0, 1]; otherwise an error naming the config ``key``."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise AlignfuseError(
            f"config key '{key}': level {level!r} is outside [0, 1]; "
            "use 0 (features unchanged) up to 1 (fully degraded)"
        )
    return value


def rotate_text(T: np.ndarray, level: float, seed: int) -> np.ndarray:
    """Rotate every caption vector by ``fractional_rotation(d, level, seed)``: nothing is lost,
    but at level 1 coordinates no longer correspond to the image side's."""
    level = check_level("rotation level", level)
    if level == 0:
        return T.copy()
    return rotate(T, level, seed).astype(T.dtype, copy=False)


def add_noise(
    T: np.ndarray, level: float, seed: int, fit_rows: np.ndarray | None = None
) -> np.ndarray:
    """Variance-preserving noise: t' = mu + sqrt(1 - level) (t - mu) + sqrt(level) sigma eps.

    ``mu`` and ``sigma`` are the per-coordinate mean and standard deviation over ``fit_rows`` (the
    train split; all rows if None), so no test statistics leak in. The signal-to-noise ratio is
    (1 - level) / level, and the features' own mean and variance are kept; at level 1 no
    information about the caption is left.
    """
    level = check_level("noise level", level)
    if level == 0:
        return T.copy()
    x = np.asarray(T, dtype=np.float64)
    fit = x if fit_rows is None else x[fit_rows]
    if not len(fit):
        raise AlignfuseError("noise degradation: fit_rows selects no rows; pass the train rows")
    mu, sigma = fit.mean(axis=0), fit.std(axis=0)
    eps = np.random.default_rng(seed).standard_normal(x.shape)
    noisy = mu + math.sqrt(1 - level) * (x - mu) + math.sqrt(level) * sigma * eps
    return noisy.astype(T.dtype, copy=False)


def other_image_captions(caption_image: np.ndarray, rows: np.ndarray, rng) -> np.ndarray:
    """For each caption in ``rows``, a caption drawn uniformly from those of other images.

    Captions sorted by image form one block per image; a draw from the N - n_i captions outside
    caption's block i is shifted past that block, so no rejection loop is needed.
    """
    order = np.argsort(caption_image, kind="stable")
    counts = np.bincount(caption_image)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    image = caption_image[rows]
    outside = len(caption_image) - counts[image]
    if np.any(outside == 0):
        raise AlignfuseError(
            "shuffle degradation needs captions of at least two images; all captions share one"
        )
    draw = (rng.random(len(rows)) * outside).astype(np.int64)
    draw = np.minimum(draw, outside - 1)  # guard against rounding up to outside
    position = np.where(draw < starts[image], draw, draw + counts[image])
    return order[position]


def shuffle_text(T: np.ndarray, caption_image: np.ndarray, level: float, seed: int) -> np.ndarray:
    """Replace round(level * N) randomly chosen captions' features by those of a random caption of
    another image: pairs that look matched but are not, as mislabelled web data are."""
    level = check_level("shuffle level", level)
    caption_image = np.asarray(caption_image, dtype=np.int64)
    if caption_image.shape != (len(T),):
        raise AlignfuseError(
            f"shuffle degradation: caption_image has {caption_image.size} entries for {len(T)} "
            "captions; give the image row of every caption"
        )
    out = T.copy()
    n = round(level * len(T))
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(T), size=n, replace=False))
    out[rows] = T[other_image_captions(caption_image, rows, rng)]
    return out


def _rotation(T, level, seed, caption_image=None, fit_rows=None):
    return rotate_text(T, level, seed)


def _noise(T, level, seed, caption_image=None, fit_rows=None):
    return add_noise(T, level, seed, fit_rows)


def _shuffle(T, level, seed, caption_image=None, fit_rows=None):
    if caption_image is None:
        raise AlignfuseError("shuffle degradation needs caption_image (the image of each caption)")
    return shuffle_text(T, caption_image, level, seed)


# Every entry: fn(T, level, seed, caption_image=None, fit_rows=None) -> degraded copy of T.
DEGRADATIONS: dict[str, Callable[..., np.ndarray]] = {
    "rotation": _rotation,
    "noise": _noise,
    "shuffle": _shuffle,
}


def degrade(
    kind: str,
    T: np.ndarray,
    level: float,
    seed: int,
    caption_image: np.ndarray | None = None,
    fit_rows: np.ndarray | None = None,
    key: str = "alignment.degradations",
) -> np.ndarray:
    """Apply the degradation named ``kind`` after checking the name and level against ``key``."""
    if kind not in DEGRADATIONS:
        raise AlignfuseError(
            f"config key '{key}': unknown degradation '{kind}'; "
            f"use one of {', '.join(sorted(DEGRADATIONS))}"
        )
    level = check_level(f"{key}.{kind}", level)
    return DEGRADATIONS[kind](T, level, seed, caption_image=caption_image, fit_rows=fit_rows)
