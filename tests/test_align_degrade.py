import numpy as np
import pytest

from alignfuse.align.degrade import (
    DEGRADATIONS,
    add_noise,
    check_level,
    degrade,
    rotate_text,
    shuffle_text,
)
from alignfuse.align.metrics import cosine_gap
from alignfuse.errors import AlignfuseError

N_IMAGES, PER_IMAGE, WIDTH = 200, 5, 32


@pytest.fixture(scope="module")
def features():
    """Captions close to their image: (V, T float32, caption_image)."""
    rng = np.random.default_rng(0)
    v = rng.standard_normal((N_IMAGES, WIDTH)) + 0.5
    caption_image = np.repeat(np.arange(N_IMAGES), PER_IMAGE)
    t = v[caption_image] + 0.3 * rng.standard_normal((len(caption_image), WIDTH))
    return v, t.astype(np.float32), caption_image


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_level_zero_returns_the_features_bit_for_bit(features, kind):
    _, t, caption_image = features
    out = degrade(kind, t, 0.0, seed=3, caption_image=caption_image)
    assert out.dtype == t.dtype and out.tobytes() == t.tobytes()
    assert out is not t


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
@pytest.mark.parametrize("level", [0.3, 1.0])
def test_each_degradation_is_determined_by_its_seed(features, kind, level):
    _, t, caption_image = features
    first, again, other = (
        degrade(kind, t, level, seed=s, caption_image=caption_image) for s in (1, 1, 2)
    )
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == t.shape and first.dtype == t.dtype


def test_full_rotation_keeps_norms_and_gram_matrix(features):
    _, t, _ = features
    rotated = rotate_text(t.astype(np.float64), 1.0, seed=4)
    np.testing.assert_allclose(rotated @ rotated.T, t @ t.T.astype(np.float64), atol=1e-9)
    assert not np.allclose(rotated, t, atol=0.1)


def test_noise_keeps_each_coordinates_mean_and_variance(features):
    _, t, _ = features
    for level in (0.5, 1.0):
        noisy = add_noise(t, level, seed=5)
        np.testing.assert_allclose(noisy.mean(axis=0), t.mean(axis=0), atol=0.1)
        np.testing.assert_allclose(noisy.var(axis=0) / t.var(axis=0), 1.0, atol=0.15)


def test_full_noise_leaves_matched_captions_no_closer_than_chance(features):
    v, t, caption_image = features
    assert cosine_gap(v, t, caption_image) > 0.5
    assert abs(cosine_gap(v, add_noise(t, 1.0, seed=6), caption_image)) < 0.02


def test_noise_statistics_come_from_the_fit_rows_only(features):
    _, t, _ = features
    train = np.arange(500)
    changed = t.copy()
    changed[500:] *= 10.0  # other splits differ wildly; the train rows decide mu and sigma
    a, b = add_noise(t, 0.4, 7, fit_rows=train), add_noise(changed, 0.4, 7, fit_rows=train)
    np.testing.assert_array_equal(a[train], b[train])


@pytest.mark.parametrize("level", [0.1, 0.25, 1.0])
def test_shuffle_replaces_round_level_n_rows_each_by_another_images_caption(features, level):
    _, t, caption_image = features
    out = shuffle_text(t, caption_image, level, seed=8)
    changed = np.flatnonzero(np.any(out != t, axis=1))
    assert len(changed) == round(level * len(t))
    for row in changed:
        donors = np.flatnonzero(np.all(t == out[row], axis=1))
        assert len(donors) == 1 and caption_image[donors[0]] != caption_image[row]


def test_shuffle_draws_donors_from_every_other_image():
    caption_image = np.repeat(np.arange(4), [1, 2, 3, 4])
    t = np.arange(10, dtype=np.float64)[:, None]
    out = shuffle_text(t, caption_image, 1.0, seed=9)
    donors = out[:, 0].astype(int)
    assert np.all(caption_image[donors] != caption_image)
    many = [shuffle_text(t, caption_image, 1.0, seed=s)[0, 0] for s in range(200)]
    assert set(np.asarray(many, int)) == set(range(1, 10))  # any caption not of image 0


def test_shuffle_needs_two_images():
    with pytest.raises(AlignfuseError, match="at least two images"):
        shuffle_text(np.ones((3, 2)), np.zeros(3, int), 0.5, seed=0)


@pytest.mark.parametrize("level", [1.5, -0.1, float("nan"), "high"])
def test_bad_levels_raise_naming_the_config_key_and_range(level):
    with pytest.raises(AlignfuseError, match=r"alignment\.degradations\.rotation.*\[0, 1\]"):
        check_level("alignment.degradations.rotation", level)


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_degrade_checks_the_level_against_the_kinds_key(features, kind):
    _, t, caption_image = features
    with pytest.raises(AlignfuseError, match=rf"alignment\.degradations\.{kind}'"):
        degrade(kind, t, 1.5, seed=0, caption_image=caption_image)


def test_unknown_degradation_names_the_known_ones(features):
    _, t, _ = features
    with pytest.raises(AlignfuseError, match="noise, rotation, shuffle"):
        degrade("blur", t, 0.5, seed=0)
