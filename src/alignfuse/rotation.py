"""A knob for alignment: rotate features so coordinates stop corresponding, information intact.

Two modalities are *aligned* when matching image and text vectors share coordinates (their dot
product is already a similarity). An orthogonal map keeps every bit of information (it is
invertible) but scrambles that correspondence. ``fractional_rotation`` walks one geodesic from
the identity (alpha = 0, aligned) to a random rotation in a random basis (alpha = 1, unaligned):
the expected cosine between ``x`` and ``Q(alpha) x`` falls as sin(alpha*pi) / (alpha*pi).
"""

from __future__ import annotations

import numpy as np


def haar_frame(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-random orthonormal columns: QR of a Gaussian matrix, R's diagonal signs moved into Q."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def fractional_rotation(d: int, alpha: float, seed: int) -> np.ndarray:
    """Q(alpha) = U · blockdiag(R(alpha·theta_1), ..., R(alpha·theta_m)) · Uᵀ, a d x d rotation.

    U is Haar-random and theta_j ~ Uniform(-pi, pi), both drawn from ``seed`` alone, so all alphas
    of one seed lie on one path. For odd ``d`` the last coordinate of U's basis stays fixed.
    Computed as I + U (B - I) Uᵀ, which is exactly the identity at alpha = 0.
    """
    if d < 1:
        raise ValueError(f"dimension must be positive, got {d}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"rotation alpha must lie in [0, 1], got {alpha}")
    rng = np.random.default_rng(seed)
    u = haar_frame(d, d, rng)
    angles = alpha * rng.uniform(-np.pi, np.pi, size=d // 2)
    cos, sin = np.cos(angles), np.sin(angles)
    b_minus_i = np.zeros((d, d))
    even = 2 * np.arange(d // 2)
    b_minus_i[even, even] = cos - 1
    b_minus_i[even + 1, even + 1] = cos - 1
    b_minus_i[even, even + 1] = -sin
    b_minus_i[even + 1, even] = sin
    return np.eye(d) + u @ b_minus_i @ u.T


def rotate(x: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """Apply ``fractional_rotation(d, alpha, seed)`` to every row of ``x`` (shape [n, d])."""
    q = fractional_rotation(x.shape[-1], alpha, seed)
    return (x @ q.T).astype(np.result_type(x.dtype, np.float32), copy=False)
