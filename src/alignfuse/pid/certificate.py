"""Certifying an answer to the BROJA program, whichever solver produced it.

The program minimises -H_Q(Y|X1,X2) over the joints Q that keep P's two source-target marginals.
A feasible Q's objective bounds the optimum from above; the Lagrange dual evaluated at any
multipliers bounds it from below. Their difference bounds the error of the answer, so a solver's
own convergence report is never what a result rests on.
"""

from __future__ import annotations

import math

import numpy as np


def certify(
    q: np.ndarray, l1: np.ndarray, l2: np.ndarray, p1y: np.ndarray, p2y: np.ndarray
) -> tuple[float, float]:
    """I_Q(X1,X2;Y) in bits of the candidate q[x1, x2, y], and the duality gap (bits) from the
    multipliers l1, l2 that bounds how far it is from the optimum."""
    primal = objective(q)
    gap = max(primal - dual_bound(l1, l2, p1y, p2y), 0.0) / math.log(2)
    h_y = -float(np.sum(xlogx(p1y.sum(axis=0))))  # fixed by the constraints
    return max((h_y + primal) / math.log(2), 0.0), gap


def objective(q: np.ndarray) -> float:
    """-H_Q(Y|X1,X2) in nats of a joint table q[x1, x2, y]."""
    return float(np.sum(xlogx(q)) - np.sum(xlogx(q.sum(axis=2))))


def dual_bound(l1: np.ndarray, l2: np.ndarray, p1y: np.ndarray, p2y: np.ndarray) -> float:
    """A lower bound (nats) on the optimum from multipliers l1[x1, y] and l2[x2, y].

    The dual is max l1.P(x1,y) + l2.P(x2,y) subject to, for every (x1, x2) block, logsumexp over
    y of l1[x1,y] + l2[x2,y] <= 0, over the entries where both marginals are positive (a
    multiplier of -inf marks an entry outside them). Lowering each l1[x1,y] by the largest
    logsumexp among the blocks it enters makes any multipliers feasible, so the bound holds
    whatever the solver's accuracy; multipliers that give no finite bound give -inf.
    """
    inside = (p1y[:, None, :] > 0) & (p2y[None, :, :] > 0)
    used1, used2 = p1y > 0, p2y > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(inside, l1[:, None, :] + l2[None, :, :], -np.inf)
        top = c.max(axis=2)
        finite = np.isfinite(top)
        safe_top = np.where(finite, top, 0.0)
        lse = np.where(
            finite, safe_top + np.log(np.exp(c - safe_top[..., None]).sum(axis=2)), -np.inf
        )
        worst = np.where(inside, lse[..., None], -np.inf).max(axis=1)  # [x1, y]
        bound = np.sum((l1[used1] - worst[used1]) * p1y[used1]) + np.sum(l2[used2] * p2y[used2])
    return float(bound) if np.isfinite(bound) else -np.inf


def xlogx(values) -> np.ndarray:
    """Elementwise v ln v with 0 ln 0 = 0."""
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(values)
    mask = values > 0
    out[mask] = values[mask] * np.log(values[mask])
    return out
