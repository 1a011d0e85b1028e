"""How aligned two feature sets are: shared-space metrics (cosine gap, modality gap, retrieval) and
geometry metrics (mutual k-NN, debiased linear CKA) that need no shared coordinates.

The study asks whether alignment decides the fusion strategy, so each feature set is summarised by
several alignment numbers, each reported next to its chance level. ``V`` holds one row per image,
``T`` one row per caption, and ``caption_image[c]`` is the row in ``V`` of caption ``c``'s image.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from alignfuse.align.pairing import check_pairing
from alignfuse.errors import AlignfuseError

RECALL_KS = (1, 5, 10)
# Cosines this close count as a tie (float64 rounding is ~1e-16; exact duplicate rows tie).
TIE = 1e-9
# Similarity blocks hold at most this many float64 entries (32 MiB).
BLOCK = 4_000_000


def check_shared_space(V: np.ndarray, T: np.ndarray) -> None:
    """Cosines between modalities need one coordinate system, hence equal widths."""
    if V.shape[1] != T.shape[1]:
        raise AlignfuseError(
            f"widths differ ({V.shape[1]} vs {T.shape[1]}): image and text vectors share no space; "
            "use mutual_knn or linear_cka, or align them first (alignfuse.align.contrastive)"
        )


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64, so dot products are cosines (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(np.float64).tiny)


def first_captions(caption_image: np.ndarray, n_images: int) -> np.ndarray:
    """Row of each image's first caption: the one-caption-per-image pairing of paired metrics."""
    first = np.full(n_images, len(caption_image), dtype=np.int64)
    np.minimum.at(first, caption_image, np.arange(len(caption_image)))
    return first


def cosine_gap(V: np.ndarray, T: np.ndarray, caption_image: np.ndarray) -> float:
    """Mean cosine of images with their own captions minus the mean with other images' captions."""
    caption_image = check_pairing(V, T, caption_image)
    check_shared_space(V, T)
    v, t = unit_rows(V), unit_rows(T)
    own = np.einsum("ij,ij->i", v[caption_image], t)
    others = len(v) * len(t) - len(t)
    if not others:
        return math.nan
    total = v.sum(axis=0) @ t.sum(axis=0)  # sum of every image-caption cosine
    return float(own.mean() - (total - own.sum()) / others)


def modality_gap(V: np.ndarray, T: np.ndarray) -> float:
    """Distance between the centroids of unit image and unit text vectors (Liang et al. 2022)."""
    check_shared_space(V, T)
    return float(np.linalg.norm(unit_rows(V).mean(axis=0) - unit_rows(T).mean(axis=0)))


def retrieval_ranks(
    V: np.ndarray, T: np.ndarray, caption_image: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per query, (wrong candidates ranked above the right ones, wrong candidates tied with them,
    right candidates in that tie).

    ``image_to_text``: per image, against its best-scoring own caption (a hit if any own caption
    ranks high enough), with the own captions that tie with it; ``text_to_image``: per caption,
    against its own image (one right candidate). The cosine matrix is computed in blocks of
    images so memory stays bounded.
    """
    caption_image = check_pairing(V, T, caption_image)
    check_shared_space(V, T)
    v, t = unit_rows(V), unit_rows(T)
    own = np.einsum("ij,ij->i", v[caption_image], t)
    best = np.full(len(v), -np.inf)
    np.maximum.at(best, caption_image, own)
    own_ties = np.bincount(
        caption_image, weights=own >= best[caption_image] - TIE, minlength=len(v)
    )
    i2t_above, i2t_tied = np.zeros(len(v), np.int64), np.zeros(len(v), np.int64)
    t2i_above, t2i_tied = np.zeros(len(t), np.int64), np.zeros(len(t), np.int64)
    step = max(1, BLOCK // max(len(t), 1))
    for start in range(0, len(v), step):
        rows = slice(start, start + step)
        s = v[rows] @ t.T
        hi, lo = best[rows, None] + TIE, best[rows, None] - TIE
        i2t_above[rows] = (s > hi).sum(axis=1)
        i2t_tied[rows] = (s >= lo).sum(axis=1) - i2t_above[rows]
        above = (s > own + TIE).sum(axis=0)
        t2i_above += above
        t2i_tied += (s >= own - TIE).sum(axis=0) - above
    # Ties counted so far include the right candidates themselves; keep only wrong ones.
    own_ties = own_ties.astype(np.int64)
    return {
        "image_to_text": (i2t_above, i2t_tied - own_ties, own_ties),
        "text_to_image": (t2i_above, t2i_tied - 1, np.ones(len(t), np.int64)),
    }


def recall_at(above: np.ndarray, tied: np.ndarray, right: np.ndarray, k: int) -> float:
    """Mean chance that a right candidate lands in the top ``k``, ties broken at random.

    With ``above`` wrong candidates ranked first, k' = k - above slots are left for the tie of
    ``tied`` wrong and ``right`` right candidates; all k' go to wrong ones with probability
    C(tied, k') / C(tied + right, k') = C(tied + right - k', right) / C(tied + right, right)
    (k'/(tied + 1) recall for a single right candidate).
    """
    slots = np.maximum(k - np.asarray(above), 0)
    total = np.asarray(tied) + np.asarray(right)
    miss = special.comb(total - slots, right) / special.comb(total, right)
    return float((1.0 - miss).mean())


def image_to_text_chance(captions_per_image: np.ndarray, k: int) -> float:
    """Recall@k of a random ranking: 1 - C(N - c, k) / C(N, k) for an image with c of N captions.

    The ratio is the product over j < k of (1 - c / (N - j)), summed in logs for precision.
    """
    c = np.asarray(captions_per_image, dtype=np.float64)[:, None]
    n = c.sum()
    if k >= n:
        return 1.0
    j = np.arange(k)
    with np.errstate(divide="ignore"):
        log_miss = np.log1p(-np.minimum(c / (n - j), 1.0)).sum(axis=1)
    return float(-np.expm1(log_miss).mean())


def text_to_image_chance(n_images: int, k: int) -> float:
    return min(k / n_images, 1.0)


def retrieval_recalls(
    V: np.ndarray, T: np.ndarray, caption_image: np.ndarray, ks: tuple[int, ...] = RECALL_KS
) -> dict[str, float]:
    """R@k both ways by cosine, keyed ``image_to_text_R@k`` and ``text_to_image_R@k``."""
    ranks = retrieval_ranks(V, T, caption_image)
    return {
        f"{direction}_R@{k}": recall_at(*ranks[direction], k)
        for direction in ("image_to_text", "text_to_image")
        for k in ks
    }


def knn_sets(x: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k] of each row's k most cosine-similar other rows (itself excluded)."""
    x = unit_rows(x)
    out = np.empty((len(x), k), dtype=np.int64)
    step = max(1, BLOCK // len(x))
    for start in range(0, len(x), step):
        s = x[start : start + step] @ x.T
        s[np.arange(len(s)), np.arange(start, start + len(s))] = -np.inf
        out[start : start + step] = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return out


def mutual_knn(X: np.ndarray, Y: np.ndarray, k: int = 10) -> float:
    """Mean share of each item's k nearest neighbours that both spaces agree on (Huh et al. 2024).

    Rows of ``X`` and ``Y`` are paired; only the neighbourhood structure counts, so the widths may
    differ and any rotation of either space leaves it unchanged.
    """
    if len(X) != len(Y):
        raise AlignfuseError(f"mutual k-NN needs paired rows; got {len(X)} and {len(Y)}")
    if not 0 < k < len(X):
        raise AlignfuseError(f"mutual k-NN with k = {k} needs more than k items; got {len(X)}")
    a, b = knn_sets(X, k), knn_sets(Y, k)
    shared = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))
    return float(shared.mean() / k)


def _hsic_terms(xty_sq, rows_x, rows_y, n):
    """Unbiased HSIC (Song et al. 2012) of centred linear kernels, up to a factor 1/(n(n-3))."""
    return (
        xty_sq - n / (n - 2) * rows_x @ rows_y + rows_x.sum() * rows_y.sum() / ((n - 1) * (n - 2))
    )


def linear_cka(X: np.ndarray, Y: np.ndarray, debiased: bool = True) -> float:
    """Linear CKA of paired rows, in feature space (cost n·d², no n x n kernel).

    The plain estimator is biased upward when width is comparable to n (independent 512-d features
    score 0.3-0.5 at n = 512-1024); the debiased one (Nguyen et al. 2021) uses the unbiased HSIC
    estimator and is about 0 for independent features. Invariant to rotations and isotropic scaling.
    """
    if len(X) != len(Y):
        raise AlignfuseError(f"CKA needs paired rows; got {len(X)} and {len(Y)}")
    n = len(X)
    if n < 4:
        raise AlignfuseError(f"CKA needs at least 4 paired items; got {n}")
    x = np.asarray(X, dtype=np.float64)
    y = np.asarray(Y, dtype=np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    xy, xx, yy = (np.sum((a.T @ b) ** 2) for a, b in ((x, y), (x, x), (y, y)))
    if not debiased:
        return float(xy / math.sqrt(xx * yy))
    rows_x, rows_y = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    hxy = _hsic_terms(xy, rows_x, rows_y, n)
    hxx = _hsic_terms(xx, rows_x, rows_x, n)
    hyy = _hsic_terms(yy, rows_y, rows_y, n)
    denominator = hxx * hyy
    return float(hxy / math.sqrt(denominator)) if denominator > 0 else math.nan


def alignment_metrics(
    V: np.ndarray,
    T: np.ndarray,
    caption_image: np.ndarray,
    k: int = 10,
    ks: tuple[int, ...] = RECALL_KS,
) -> list[dict]:
    """One row {"metric", "value", "chance", "note"} per alignment metric of a feature set.

    Rows, in order: cosine_gap, modality_gap, image_to_text_R@k and text_to_image_R@k for each of
    ``ks``, mutual_knn (``k`` neighbours) and cka (debiased linear). Shared-space metrics are NaN
    when the widths differ: truncating or padding vectors would invent a correspondence.
    """
    caption_image = check_pairing(V, T, caption_image)
    n_images, n_captions = len(V), len(T)
    counts = np.bincount(caption_image, minlength=n_images)
    shared = V.shape[1] == T.shape[1]
    no_space = (
        f"widths differ ({V.shape[1]} vs {T.shape[1]}): no shared space; "
        "not computed on truncated or padded vectors"
    )

    def row(metric: str, value: float, chance: float, note: str) -> dict:
        return {"metric": metric, "value": value, "chance": chance, "note": note}

    nan = math.nan
    values = {}
    if shared:
        values = {
            "cosine_gap": cosine_gap(V, T, caption_image),
            "modality_gap": modality_gap(V, T),
            **retrieval_recalls(V, T, caption_image, ks),
        }

    def in_space(metric: str, chance: float, note: str) -> dict:
        """A shared-space metric's row: NaN with the reason when the widths differ."""
        return (
            row(metric, values[metric], chance, note)
            if shared
            else row(metric, nan, chance, no_space)
        )

    rows = [
        in_space(
            "cosine_gap",
            0.0,
            "mean cosine with own captions minus with other images' captions",
        ),
        in_space(
            "modality_gap",
            nan,
            "no chance level: 0 = both modalities centred on the same point",
        ),
    ]
    for r in ks:
        rows.append(
            in_space(
                f"image_to_text_R@{r}",
                image_to_text_chance(counts, r),
                f"any own caption in the top {r} of {n_captions} captions by cosine; "
                "ties broken at random",
            )
        )
    for r in ks:
        rows.append(
            in_space(
                f"text_to_image_R@{r}",
                text_to_image_chance(n_images, r),
                f"own image in the top {r} of {n_images} images by cosine; ties broken at random",
            )
        )
    first = first_captions(caption_image, n_images)
    paired = f"{n_images} images paired with their first caption"
    knn_ok, cka_ok = k < n_images, n_images >= 4
    rows.append(
        row(
            "mutual_knn",
            mutual_knn(V, T[first], k) if knn_ok else nan,
            k / (n_images - 1) if n_images > 1 else nan,
            f"k = {k}, {paired}" if knn_ok else f"k = {k} needs more than {k} images",
        )
    )
    rows.append(
        row(
            "cka",
            linear_cka(V, T[first]) if cka_ok else nan,
            0.0,
            f"debiased linear CKA, {paired}" if cka_ok else "CKA needs at least 4 images",
        )
    )
    return rows
