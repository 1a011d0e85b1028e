import numpy as np
import pytest

from alignfuse.rotation import fractional_rotation, rotate

ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@pytest.mark.parametrize("d", [1, 2, 7, 16])
def test_rotation_at_alpha_zero_is_identity(d):
    assert np.array_equal(fractional_rotation(d, 0.0, seed=3), np.eye(d))


@pytest.mark.parametrize("d", [2, 7, 16])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_rotation_is_orthogonal_with_determinant_one_for_any_alpha(d, alpha):
    q = fractional_rotation(d, alpha, seed=1)
    np.testing.assert_allclose(q @ q.T, np.eye(d), atol=1e-12)
    assert np.linalg.det(q) == pytest.approx(1.0)


def test_same_seed_gives_the_same_matrix_and_another_seed_a_different_one():
    assert np.array_equal(fractional_rotation(8, 0.7, seed=5), fractional_rotation(8, 0.7, seed=5))
    assert not np.allclose(fractional_rotation(8, 0.7, seed=5), fractional_rotation(8, 0.7, seed=6))


def test_alphas_of_one_seed_lie_on_one_path():
    """Shared U and angles: the rotations commute and compose, Q(a) Q(b) = Q(a + b)."""
    q = {a: fractional_rotation(9, a, seed=2) for a in (0.3, 0.5, 0.7, 1.0)}
    np.testing.assert_allclose(q[0.3] @ q[0.7], q[1.0], atol=1e-12)
    np.testing.assert_allclose(q[0.5] @ q[0.5], q[1.0], atol=1e-12)
    np.testing.assert_allclose(q[0.3] @ q[0.7], q[0.7] @ q[0.3], atol=1e-12)


def test_odd_dimension_leaves_exactly_one_direction_fixed():
    q = fractional_rotation(7, 1.0, seed=0)
    assert np.linalg.matrix_rank(q - np.eye(7), tol=1e-9) == 6


def test_expected_cosine_falls_from_one_to_zero_as_sinc():
    d, seeds = 256, range(4)
    x = np.random.default_rng(0).standard_normal((200, d))
    measured = []
    for alpha in ALPHAS:
        cosines = [
            np.mean(np.sum(x * rotate(x, alpha, s), axis=1) / np.sum(x * x, axis=1)) for s in seeds
        ]
        measured.append(np.mean(cosines))
    expected = [np.sinc(alpha) for alpha in ALPHAS]  # numpy's sinc is sin(pi a) / (pi a)
    np.testing.assert_allclose(measured, expected, atol=0.06)
    assert measured[0] == pytest.approx(1.0)
    assert all(np.diff(measured) < 0)


def test_rotate_applies_q_to_rows_and_keeps_float32():
    x = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    y = rotate(x, 0.5, seed=4)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x @ fractional_rotation(6, 0.5, seed=4).T, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_the_unit_interval_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        fractional_rotation(4, alpha, seed=0)
