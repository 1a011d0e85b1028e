from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from alignfuse.errors import AlignfuseError
from alignfuse.pid import fit_codebook


def blobs(n: int, centres: np.ndarray, seed: int, scale: float = 1.0):
    """Rows drawn around ``centres`` (one Gaussian each) and the blob each row came from."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, centres.shape[0], size=n)
    return centres[labels] + scale * rng.normal(size=(n, centres.shape[1])), labels


CENTRES = 12.0 * np.random.default_rng(0).normal(size=(4, 16))


def test_codes_are_deterministic_for_a_seed():
    x, _ = blobs(600, CENTRES, seed=1, scale=6.0)  # overlapping: k-means has choices to make
    first, second = fit_codebook(x, k=6, dims=4, seed=3), fit_codebook(x, k=6, dims=4, seed=3)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    np.testing.assert_array_equal(first.assign(x), second.assign(x))
    assert first.assign(x).dtype == np.int64
    assert set(np.unique(first.assign(x))) == set(range(6))


def test_codebook_is_fitted_on_training_rows_only():
    train, _ = blobs(400, CENTRES, seed=1)
    eval_a, _ = blobs(300, CENTRES, seed=2)
    eval_b = eval_a + 100.0  # a very different evaluation split
    codebook = fit_codebook(train, k=4, dims=3, seed=0)
    before = (codebook.mean.copy(), codebook.components.copy(), codebook.centroids.copy())
    train_codes = codebook.assign(train)
    for rows in (eval_a, eval_b):
        assert codebook.assign(rows).shape == (300,)
    for fitted, saved in zip(
        (codebook.mean, codebook.components, codebook.centroids), before, strict=True
    ):
        np.testing.assert_array_equal(fitted, saved)
    # A row's code depends on that row alone, not on the rows assigned with it.
    np.testing.assert_array_equal(codebook.assign(np.vstack([train, eval_b]))[:400], train_codes)
    np.testing.assert_allclose(codebook.mean, train.mean(axis=0))


def test_well_separated_blobs_are_recovered_on_train_and_eval_rows():
    train, train_labels = blobs(800, CENTRES, seed=1)
    held_out, held_out_labels = blobs(800, CENTRES, seed=2)
    codebook = fit_codebook(train, k=4, dims=3, seed=0)
    assert adjusted_rand_score(train_labels, codebook.assign(train)) == 1.0
    assert adjusted_rand_score(held_out_labels, codebook.assign(held_out)) == 1.0


def test_projection_spans_the_same_subspace_as_sklearn_pca():
    x, _ = blobs(500, CENTRES, seed=4, scale=3.0)
    codebook = fit_codebook(x, k=3, dims=3, seed=0)
    reference = PCA(n_components=3).fit(x).components_
    # Same axes up to sign: |<ours_i, theirs_i>| = 1.
    np.testing.assert_allclose(np.abs(np.sum(codebook.components * reference, axis=1)), 1.0)


def test_kmeans_is_as_tight_as_sklearn():
    x, _ = blobs(1000, CENTRES, seed=5, scale=8.0)
    codebook = fit_codebook(x, k=8, dims=5, seed=0)
    z = codebook.project(x)
    reference = KMeans(n_clusters=8, n_init=4, random_state=0).fit(z)
    assert codebook.inertia <= 1.01 * reference.inertia_


def test_more_clusters_than_distinct_rows_is_a_clear_error():
    x = np.repeat(np.eye(3), 10, axis=0)  # 30 rows, 3 distinct
    assert fit_codebook(x, k=3, dims=2, seed=0).k == 3
    with pytest.raises(AlignfuseError, match="only 3 distinct rows"):
        fit_codebook(x, k=4, dims=2, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"k": 2, "dims": 0}, "dims=0"),
        ({"k": 2, "dims": 17}, "dims=17"),
        ({"k": 0, "dims": 2}, "k=0"),
        ({"k": 2.5, "dims": 2}, "k=2.5"),
    ],
)
def test_bad_sizes_are_clear_errors(kwargs, reason):
    x, _ = blobs(50, CENTRES, seed=1)
    with pytest.raises(AlignfuseError, match=reason):
        fit_codebook(x, seed=0, **kwargs)


def test_rows_of_another_width_or_non_finite_rows_are_rejected():
    x, _ = blobs(50, CENTRES, seed=1)
    codebook = fit_codebook(x, k=2, dims=2, seed=0)
    with pytest.raises(AlignfuseError, match="15 features"):
        codebook.assign(x[:, :15])
    x[3, 4] = np.nan
    with pytest.raises(AlignfuseError, match="non-finite"):
        fit_codebook(x, k=2, dims=2, seed=0)
