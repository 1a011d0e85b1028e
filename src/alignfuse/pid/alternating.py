"""The BROJA optimum by alternating minimisation: far faster than the cone program on big tables.

min_Q I_Q(X1,X2;Y) over the joints Q that keep P(x1,y) and P(x2,y) equals, up to the constant
H(Y), the minimum over Q and over any R(x1,x2) of KL(Q || R(x1,x2) P(y)). For a fixed R the best
Q scales R, for every y separately, to the two marginals (a Sinkhorn step); for a fixed Q the
best R is Q's (x1,x2) marginal. Alternating the two (Csiszar and Tusnady, 1984) converges to the
optimum; the R step is over-relaxed, which took about half as many iterations on the tables
measured. Convergence is slow when the optimum sits on the boundary, so an answer counts only
once the duality gap of its own multipliers (log of the scalings) certifies it; otherwise the
caller falls back to the cone program.
"""

from __future__ import annotations

import math

import numpy as np

from alignfuse.pid.certificate import certify

OMEGA = 1.9  # over-relaxation of the R step
CHECK_EVERY = 10  # iterations between certificates (one costs about two iterations)


def alternating(p: np.ndarray, gap_tol: float, feas_tol: float, max_iter: int) -> dict:
    """min I_Q (bits) of the distribution p[x1, x2, y] as an outcome: ``I_Q``, the certified
    ``gap`` (bits), the largest marginal ``violation``, ``status`` and ``trusted``."""
    p1y, p2y = p.sum(axis=1), p.sum(axis=0)
    r = np.outer(p.sum(axis=(1, 2)), p.sum(axis=(0, 2)))
    b = (p2y > 0).astype(np.float64)
    outcome = {"solver": "ALTERNATING", "trusted": False, "gap": math.inf, "violation": math.inf}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for iteration in range(1, max_iter + 1):
            a = np.where(p1y > 0, p1y / (r @ b), 0.0)
            b = np.where(p2y > 0, p2y / (r.T @ a), 0.0)
            q = r[:, :, None] * a[:, None, :] * b[None, :, :]
            mass = q.sum(axis=2)
            r = np.where(r > 0, r * np.where(r > 0, mass / r, 1.0) ** OMEGA, 0.0)
            r /= r.sum()
            if iteration % CHECK_EVERY and iteration != max_iter:
                continue
            if not np.all(np.isfinite(q)):
                outcome["status"] = f"diverged after {iteration} iterations"
                return outcome
            i_q, gap = certify(q, np.log(a), np.log(b), p1y, p2y)
            violation = float(np.abs(q.sum(axis=1) - p1y).max())  # q meets P(x2,y) exactly
            if gap <= gap_tol and violation <= feas_tol:
                break
    trusted = gap <= gap_tol and violation <= feas_tol
    outcome.update(
        gap=gap,
        violation=violation,
        I_Q=i_q,
        trusted=trusted,
        status="optimal"
        if trusted
        else f"not certified after {iteration} iterations "
        f"(gap {gap:.2g} bits, violation {violation:.2g})",
    )
    return outcome
