import itertools
import math
from math import comb

import numpy as np
import pytest

from alignfuse.align.metrics import (
    alignment_metrics,
    cosine_gap,
    image_to_text_chance,
    linear_cka,
    modality_gap,
    mutual_knn,
    retrieval_recalls,
    text_to_image_chance,
)
from alignfuse.errors import AlignfuseError
from alignfuse.rotation import haar_frame


def by_metric(rows: list[dict]) -> dict[str, dict]:
    return {row["metric"]: row for row in rows}


def random_features(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def song_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased CKA straight from Song et al.'s unbiased HSIC on n x n kernels (no centring)."""

    def hsic(a, b):
        n = len(a)
        a, b = a - np.diag(np.diag(a)), b - np.diag(np.diag(b))
        one = np.ones(n)
        return (
            np.trace(a @ b)
            + (one @ a @ one) * (one @ b @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ a @ b @ one
        ) / (n * (n - 3))

    kx, ky = x @ x.T, y @ y.T
    return hsic(kx, ky) / math.sqrt(hsic(kx, kx) * hsic(ky, ky))


def test_identical_modalities_retrieve_perfectly_and_agree_on_geometry():
    v = random_features(200, 64, seed=0)
    rows = by_metric(alignment_metrics(v, v.copy(), np.arange(200)))
    for direction in ("image_to_text", "text_to_image"):
        for k in (1, 5, 10):
            assert rows[f"{direction}_R@{k}"]["value"] == 1.0
    assert rows["mutual_knn"]["value"] == 1.0
    assert rows["cka"]["value"] == pytest.approx(1.0)
    assert rows["modality_gap"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert rows["cosine_gap"]["value"] > 0.9


def test_independent_features_score_at_chance():
    n, per_image = 400, 5
    v = random_features(n, 64, seed=1)
    t = random_features(n * per_image, 64, seed=2)
    caption_image = np.repeat(np.arange(n), per_image)
    rows = by_metric(alignment_metrics(v, t, caption_image))
    for direction, queries in (("image_to_text", n), ("text_to_image", n * per_image)):
        for k in (1, 5, 10):
            row = rows[f"{direction}_R@{k}"]
            standard_error = math.sqrt(row["chance"] * (1 - row["chance"]) / queries)
            assert abs(row["value"] - row["chance"]) < 4 * standard_error + 1e-9
    knn = rows["mutual_knn"]
    assert abs(knn["value"] - knn["chance"]) < 0.01
    assert abs(rows["cosine_gap"]["value"]) < 0.01


def test_debiased_cka_is_near_zero_for_independent_wide_features_where_plain_cka_is_not():
    x, y = random_features(512, 512, seed=3), random_features(512, 512, seed=4)
    assert abs(linear_cka(x, y)) < 0.05
    assert linear_cka(x, y, debiased=False) > 0.3


def test_debiased_cka_matches_the_unbiased_hsic_estimator_on_kernels():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 7)) + 3.0  # uncentred: the estimator needs no centring
    y = x[:, :5] @ rng.standard_normal((5, 9)) + rng.standard_normal((40, 9))
    assert linear_cka(x, y) == pytest.approx(song_cka(x, y), rel=1e-9)


def test_rotated_copy_keeps_geometry_but_loses_retrieval():
    """A Haar-random orthogonal Q (trace O(1), unlike one fractional rotation's O(sqrt(d)))."""
    n = 300
    v = random_features(n, 128, seed=6)
    t = v @ haar_frame(128, 128, np.random.default_rng(7))
    rows = by_metric(alignment_metrics(v, t, np.arange(n)))
    assert rows["cka"]["value"] == pytest.approx(1.0)
    assert rows["mutual_knn"]["value"] == 1.0
    for direction in ("image_to_text", "text_to_image"):
        row = rows[f"{direction}_R@1"]
        assert row["value"] < row["chance"] + 4 * math.sqrt(row["chance"] / n)


def test_different_widths_leave_shared_space_metrics_undefined_with_a_reason():
    n = 100
    v = random_features(n, 48, seed=8)
    t = np.concatenate([v, random_features(n, 16, seed=9)], axis=1) @ np.eye(64)[:, ::-1]
    caption_image = np.arange(n)
    rows = by_metric(alignment_metrics(v, t, caption_image))
    shared = ["cosine_gap", "modality_gap"] + [
        f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)
    ]
    for name in shared:
        assert math.isnan(rows[name]["value"])
        assert "widths differ (48 vs 64)" in rows[name]["note"]
    assert rows["cka"]["value"] > 0.5
    assert rows["mutual_knn"]["value"] > 0.5
    with pytest.raises(AlignfuseError, match="widths differ"):
        retrieval_recalls(v, t, caption_image)


def test_chance_levels_follow_their_definitions():
    counts = np.array([5, 5, 3, 1])
    n_captions = counts.sum()
    expected = np.mean([1 - comb(n_captions - c, 3) / comb(n_captions, 3) for c in counts])
    assert image_to_text_chance(counts, 3) == pytest.approx(expected, rel=1e-12)
    assert image_to_text_chance(np.full(1000, 5), 1) == pytest.approx(0.001, rel=1e-12)
    assert image_to_text_chance(counts, 14) == 1.0
    assert text_to_image_chance(1000, 10) == 0.01
    rows = by_metric(alignment_metrics(*two_captions_per_image(50)))
    assert rows["text_to_image_R@5"]["chance"] == 0.1
    assert rows["mutual_knn"]["chance"] == pytest.approx(10 / 49)
    assert rows["cka"]["chance"] == 0.0 and rows["cosine_gap"]["chance"] == 0.0
    assert math.isnan(rows["modality_gap"]["chance"])
    assert "0 = both modalities centred on the same point" in rows["modality_gap"]["note"]


def two_captions_per_image(n: int):
    v = random_features(n, 32, seed=10)
    noise = 0.1 * random_features(2 * n, 32, seed=11)
    return v, np.repeat(v, 2, axis=0) + noise, np.repeat(np.arange(n), 2)


def test_image_to_text_counts_a_hit_when_any_own_caption_ranks_first():
    v = np.eye(3)
    # image 0's first caption points elsewhere, its second one straight at it
    t = np.array([[0, 1.0, 0.2], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    caption_image = np.array([0, 0, 1, 2])
    recalls = retrieval_recalls(v, t, caption_image, ks=(1,))
    assert recalls["image_to_text_R@1"] == 1.0
    assert recalls["text_to_image_R@1"] == 0.75


def test_tied_candidates_count_as_a_random_draw():
    v = np.array([[1.0, 0.0], [1.0, 0.0]])  # two identical images: every caption ties
    t = np.array([[1.0, 0.0], [1.0, 0.0]])
    recalls = retrieval_recalls(v, t, np.array([0, 1]), ks=(1, 2))
    assert recalls["text_to_image_R@1"] == 0.5
    assert recalls["text_to_image_R@2"] == 1.0


def test_cosine_and_modality_gap_known_values():
    v = np.array([[1.0, 0.0], [0.0, 1.0]])
    t = np.array([[2.0, 0.0], [0.0, 3.0]])
    assert cosine_gap(v, t, np.array([0, 1])) == 1.0
    assert modality_gap(v, -t) == pytest.approx(math.sqrt(2))


def test_mutual_knn_is_one_for_the_same_neighbourhoods_and_needs_more_items_than_k():
    x = random_features(30, 8, seed=12)
    assert mutual_knn(x, 5.0 * x, k=3) == 1.0
    with pytest.raises(AlignfuseError, match="more than k"):
        mutual_knn(x[:3], x[:3], k=3)


def test_captions_pointing_at_missing_images_are_rejected():
    v = random_features(3, 4, seed=13)
    with pytest.raises(AlignfuseError, match="outside 0..2"):
        alignment_metrics(v, v, np.array([0, 1, 3]))
    with pytest.raises(AlignfuseError, match="no caption"):
        alignment_metrics(v, v[:2], np.array([0, 1]))
    with pytest.raises(AlignfuseError, match="3 captions"):
        alignment_metrics(v, v, np.array([0, 1]))


def test_image_to_text_recall_with_two_tied_own_captions_is_the_chance_either_comes_first():
    """Image 0's two captions tie with image 1's caption: a random order puts an own caption
    first with probability 2/3 (not 1/2); images 1 and 2 retrieve their caption first."""
    v = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])
    half = 1 / math.sqrt(2)
    t = np.array([[half, 0, half, 0], [half, 0, -half, 0], [half, half, 0, 0], [0, 0, 0, 1.0]])
    recalls = retrieval_recalls(v, t, np.array([0, 0, 1, 2]), ks=(1,))
    assert recalls["image_to_text_R@1"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert recalls["image_to_text_R@1"] == pytest.approx(0.8889, abs=5e-5)


def enumerated_recall(scores: np.ndarray, right: np.ndarray, k: int) -> float:
    """Recall@k of one query averaged over every order of the candidates that breaks ties:
    candidates sorted by score, then by their place in each permutation."""
    hits = []
    for order in itertools.permutations(range(len(scores))):
        ranked = sorted(range(len(scores)), key=lambda c: (-scores[c], order[c]))
        hits.append(any(right[c] for c in ranked[:k]))
    return float(np.mean(hits))


@pytest.mark.parametrize("seed", range(6))
def test_recall_with_ties_matches_enumerating_every_tie_order(seed):
    """Features with entries in {0, 1} tie often; the closed form must equal the average over
    all tie-breaking orders, both ways and at every k."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 2, (3, 3)).astype(float)
    v[v.sum(axis=1) == 0, 0] = 1.0
    caption_image = np.array([0, 0, 0, 1, 2, 2])
    t = rng.integers(0, 2, (len(caption_image), 3)).astype(float)
    t[t.sum(axis=1) == 0, 1] = 1.0
    cosines = np.round(
        (v / np.linalg.norm(v, axis=1, keepdims=True))
        @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T,
        9,
    )
    for k in (1, 2, 3):
        recalls = retrieval_recalls(v, t, caption_image, ks=(k,))
        image_to_text = np.mean(
            [enumerated_recall(cosines[i], caption_image == i, k) for i in range(len(v))]
        )
        text_to_image = np.mean(
            [
                enumerated_recall(cosines[:, c], np.arange(len(v)) == caption_image[c], k)
                for c in range(len(t))
            ]
        )
        assert recalls[f"image_to_text_R@{k}"] == pytest.approx(image_to_text, abs=1e-12)
        assert recalls[f"text_to_image_R@{k}"] == pytest.approx(text_to_image, abs=1e-12)
