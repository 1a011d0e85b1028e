"""Continuous features to discrete codes for plug-in PID: centre, PCA, k-means, fitted on train rows.

The codebook is fitted on the training split only and then applied unchanged to the evaluation
split, so the decomposition measured on evaluation rows never saw them while choosing clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignfuse.errors import AlignfuseError

# Lloyd iterations stop when no row changes cluster, or after this many.
MAX_ITER = 100


@dataclass(frozen=True, eq=False)
class Codebook:
    """A fitted transform: subtract ``mean``, project on ``components``, take the nearest centroid."""

    mean: np.ndarray  # [features]
    components: np.ndarray  # [dims, features], orthonormal rows
    centroids: np.ndarray  # [k, dims]
    inertia: float  # within-cluster sum of squares on the training rows

    @property
    def k(self) -> int:
        return self.centroids.shape[0]

    def project(self, x) -> np.ndarray:
        """Rows of ``x`` in the fitted PCA coordinates."""
        x = _rows(x, "x")
        if x.shape[1] != self.mean.shape[0]:
            raise AlignfuseError(
                f"codebook: rows have {x.shape[1]} features but the codebook was fitted on "
                f"{self.mean.shape[0]}; assign features of the same view and encoder."
            )
        return (x - self.mean) @ self.components.T

    def assign(self, x) -> np.ndarray:
        """The code (0..k-1, int64) of each row of ``x``: its nearest centroid after projection."""
        return _nearest(self.project(x), self.centroids)[0]


def fit_codebook(
    x_train, k: int, dims: int, seed: int, restarts: int = 4, fewer: bool = False
) -> Codebook:
    """Fit centring, PCA to ``dims`` components and k-means with ``k`` clusters on ``x_train``.

    k-means starts from k-means++ seeds, ``restarts`` times, all drawn from ``seed``; the run
    with the lowest within-cluster sum of squares is kept, so the result is deterministic.
    With ``fewer``, rows with fewer than ``k`` distinct values get one cluster per value (a
    variable cannot be split into more clusters than it has values); otherwise that is an error.
    """
    x = _rows(x_train, "x_train")
    n, features = x.shape
    if not (isinstance(dims, int | np.integer) and 1 <= dims <= min(n, features)):
        raise AlignfuseError(
            f"codebook: dims={dims} must be an integer from 1 to min(rows, features) = "
            f"{min(n, features)} for x_train of shape {x.shape}."
        )
    if not (isinstance(k, int | np.integer) and k >= 1):
        raise AlignfuseError(f"codebook: k={k} must be a positive integer number of clusters.")
    if restarts < 1:
        raise AlignfuseError(f"codebook: restarts={restarts} must be at least 1.")
    mean = x.mean(axis=0)
    components = _principal_axes(x - mean, dims)
    z = (x - mean) @ components.T
    distinct = np.unique(z, axis=0).shape[0]
    if fewer:
        k = min(k, distinct)
    if k > distinct:
        raise AlignfuseError(
            f"codebook: k={k} clusters but x_train has only {distinct} distinct rows after PCA to "
            f"{dims} dims; use k <= {distinct} or more training rows."
        )
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(restarts):
        centroids, inertia = _lloyd(z, _kmeans_plus_plus(z, k, rng))
        if best is None or inertia < best[1]:
            best = (centroids, inertia)
    return Codebook(mean=mean, components=components, centroids=best[0], inertia=float(best[1]))


def _rows(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise AlignfuseError(
            f"codebook: {name} must be a non-empty [rows, features] array, got {x.shape}."
        )
    if not np.all(np.isfinite(x)):
        raise AlignfuseError(f"codebook: {name} has non-finite values; drop or impute those rows.")
    return x


def _principal_axes(centred: np.ndarray, dims: int) -> np.ndarray:
    """The top ``dims`` right singular vectors, each signed so its largest loading is positive.

    With at least as many rows as features they are taken from the SVD of the scatter matrix
    X'X (same vectors, to about 1e-15 on the top axes): 5-20x cheaper than the SVD of the rows.
    """
    rows, features = centred.shape
    _, _, vt = np.linalg.svd(
        centred.T @ centred if rows >= features else centred, full_matrices=False
    )
    axes = vt[:dims]
    signs = np.sign(axes[np.arange(dims), np.argmax(np.abs(axes), axis=1)])
    return axes * np.where(signs == 0, 1.0, signs)[:, None]


def _nearest(z: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centroid of each row and the squared distance to it."""
    d2 = (
        np.sum(z**2, axis=1)[:, None]
        - 2.0 * z @ centroids.T
        + np.sum(centroids**2, axis=1)[None, :]
    )
    codes = np.argmin(d2, axis=1)
    return codes.astype(np.int64), np.maximum(d2[np.arange(z.shape[0]), codes], 0.0)


def _kmeans_plus_plus(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds: each next centre drawn with probability proportional to D^2."""
    centres = [z[rng.integers(z.shape[0])]]
    d2 = np.sum((z - centres[0]) ** 2, axis=1)
    for _ in range(1, k):
        # Rows equal to a chosen centre have D^2 = 0, so k distinct rows give k distinct seeds.
        centres.append(z[rng.choice(z.shape[0], p=d2 / d2.sum())])
        d2 = np.minimum(d2, np.sum((z - centres[-1]) ** 2, axis=1))
    return np.array(centres)


def _lloyd(z: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, float]:
    """Lloyd iterations until no row moves; an emptied cluster takes the worst-fitted row."""
    k = centroids.shape[0]
    codes = None
    for _ in range(MAX_ITER):
        new_codes, d2 = _nearest(z, centroids)
        counts = np.bincount(new_codes, minlength=k)
        for empty in np.flatnonzero(counts == 0):
            worst = int(np.argmax(d2))
            new_codes[worst], d2[worst] = empty, 0.0
        if codes is not None and np.array_equal(codes, new_codes):
            break
        codes = new_codes
        sums = np.stack([np.bincount(codes, z[:, j], minlength=k) for j in range(z.shape[1])], 1)
        centroids = sums / np.bincount(codes, minlength=k)[:, None]
    _, d2 = _nearest(z, centroids)
    return centroids, float(d2.sum())
