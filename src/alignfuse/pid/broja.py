"""BROJA partial information decomposition of a joint table p[x1, x2, y] into R, U_img, U_txt, S.

Bertschinger et al. (2014) define synergy as what I(X1,X2;Y) loses when the joint is replaced by
the least informative Q that keeps both pairwise marginals Q(x1,y) and Q(x2,y); that Q is found
here by a convex exponential-cone program, or on big tables first by alternating minimisation,
and a solution is only returned once a duality gap computed from its own dual variables
certifies it.
"""

from __future__ import annotations

import functools
import math
import warnings

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from alignfuse.errors import AlignfuseError
from alignfuse.pid.alternating import alternating
from alignfuse.pid.certificate import certify

# How far the entries of p may sum from 1 before it is not taken for a distribution.
SUM_TOL = 1e-6
# A solution is trusted when its status is optimal, its certified duality gap is below GAP_TOL
# bits and the marginals are met to FEAS_TOL (probability mass). Clarabel's defaults certify
# about 1e-8 to 4e-7 bits on tables up to 100x100x2 and 30x30x10.
GAP_TOL = 1e-6
FEAS_TOL = 1e-7
# Up to this many target values the cones read each block's mass as a sum of entries (fastest
# for binary labels); above it a mass variable per block avoids fill-in that made some tables
# 10x slower (10x10x10: 1.8 s against 0.14 s).
DIRECT_MAX_Y = 4
# Alternating minimisation goes before the cone solvers where it is faster: tables of 500 cells
# or more at loose gaps, such as the noise floor's, and tables of 20000 cells or more at any gap.
# To 1e-4 bits it answers the floor's permuted tables in 0.03-0.1 s (20x20x20 and 30x30x30 of
# clustered features included), where Clarabel took 0.07-0.15 s on 1000-1800 cells and 3.7-10.6 s
# on those big ones, and it certified 30x30x30 estimates to 1e-6 bits in 0.6-0.7 s against
# Clarabel's 2.3-2.7 s. On 8000 cells it often needs more than ALTERNATING_MAX_ITER iterations
# to reach 1e-6 bits, and on 200 cells Clarabel is as quick at any gap.
ALTERNATING_MIN_CELLS = 500
ALTERNATING_TIGHTEST_GAP = 1e-5  # tighter gaps go to the cone solvers first, unless ...
ALTERNATING_MIN_CELLS_ANY_GAP = 20_000  # ... the table has this many cells
ALTERNATING_MAX_ITER = 10_000
# Tried in order until one is certified. Clarabel is an interior-point solver for exponential
# cones; SCS (first order, tight tolerances) is the fallback that ships with cvxpy. ECOS is used
# when installed.
SOLVERS: tuple[tuple[str, dict], ...] = (
    ("CLARABEL", {}),
    ("ECOS", {"abstol": 1e-10, "reltol": 1e-10, "feastol": 1e-10, "max_iters": 500}),
    ("SCS", {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 50_000}),
)


def broja(p, gap_tol: float = GAP_TOL) -> dict:
    """BROJA decomposition (bits) of p[x1, x2, y]: R, U_img (of x1), U_txt (of x2), S and I.

    ``gap_tol`` is the duality gap (bits) a solution must be certified to; every term is then
    within it of the exact decomposition of p. Also returns the solver that produced it, its
    status, the certified duality gap (bits), the largest violation of the marginal constraints
    and every attempt made (solver "none" when the marginals alone fix the answer). U_img is the
    unique information of the first axis, I_Q*(X1;Y|X2); U_txt is I_Q*(X2;Y|X1).
    """
    p = _distribution(p)
    i_x1 = _mutual_information(p.sum(axis=1))
    i_x2 = _mutual_information(p.sum(axis=0))
    i_all = _mutual_information(p.reshape(-1, p.shape[2]))
    # The four terms are non-negative, so min I_Q lies in [lowest, highest].
    lowest, highest = max(i_x1, i_x2), min(i_all, i_x1 + i_x2)
    if highest - lowest <= 1e-12:
        # The marginals alone fix the answer (e.g. Y independent of both, Y = X1, X1 = X2 = Y).
        outcome = {"solver": "none", "status": "optimal", "gap": 0.0, "violation": 0.0}
        outcome["I_Q"], attempts = highest, ["none: determined by the marginals"]
    else:
        outcome, attempts = _solve(p, gap_tol)
    # Clamping to the bounds only moves the estimate towards the optimum; beyond the certified
    # gap it would mean the solver's answer is inconsistent.
    i_q = min(max(outcome["I_Q"], lowest), highest)
    if abs(i_q - outcome["I_Q"]) > outcome["gap"] + 10 * gap_tol:
        raise AlignfuseError(
            f"BROJA: {outcome['solver']} certified I_Q = {outcome['I_Q']:.9g} bits for the table "
            f"of shape {p.shape}, outside [{lowest:.9g}, {highest:.9g}]; please report this table."
        )
    # Only I_Q comes from the solver and the rest are exact properties of p, so the four terms
    # add up to I by construction and R = I(X1;Y) - U_img.
    return {
        "R": i_x1 + i_x2 - i_q,
        "U_img": i_q - i_x2,
        "U_txt": i_q - i_x1,
        "S": i_all - i_q,
        "I": i_all,
        "solver": outcome["solver"],
        "status": outcome["status"],
        "gap": outcome["gap"],
        "violation": outcome["violation"],
        "attempts": tuple(attempts),
    }


def _solve(p: np.ndarray, gap_tol: float = GAP_TOL) -> tuple[dict, list[str]]:
    """The first certified solution of the BROJA program, and every attempt: alternating
    minimisation first on big tables at loose gaps and on very big ones, then the cone solvers
    of SOLVERS in order."""
    attempts = []
    loose = p.size >= ALTERNATING_MIN_CELLS and gap_tol >= ALTERNATING_TIGHTEST_GAP
    if loose or p.size >= ALTERNATING_MIN_CELLS_ANY_GAP:
        outcome = alternating(p, gap_tol, FEAS_TOL, ALTERNATING_MAX_ITER)
        attempts.append(f"ALTERNATING: {outcome['status']}")
        if outcome["trusted"]:
            return outcome, attempts
    program = _Program(p)
    for solver, options in SOLVERS:
        if solver not in _installed_solvers():
            continue
        outcome = program.solve(solver, options, gap_tol)
        attempts.append(f"{solver}: {outcome['status']}")
        if outcome["trusted"]:
            return outcome, attempts
    raise AlignfuseError(
        f"BROJA: no solver certified a solution for the table of shape {p.shape} "
        f"(attempts: {'; '.join(attempts) or 'no solver installed'}); a certified solution needs "
        f"status optimal, a duality gap under {gap_tol} bits and marginals met to {FEAS_TOL}. "
        "Install another exponential-cone solver or use fewer clusters."
    )


@functools.cache
def _installed_solvers() -> frozenset[str]:
    """cvxpy's installed solvers, looked up once per process (each lookup probes every import)."""
    return frozenset(cp.installed_solvers())


def _distribution(p) -> np.ndarray:
    """p as float64 if it is a 3-axis probability table; else one AlignfuseError saying why."""
    p = np.asarray(p, dtype=np.float64)
    problem = None
    if p.ndim != 3:
        problem = f"it has {p.ndim} axes, not 3 ([x1, x2, y])"
    elif p.size == 0:
        problem = "it is empty"
    elif not np.all(np.isfinite(p)):
        problem = "it has non-finite entries"
    elif np.any(p < 0):
        problem = f"it has negative entries (min {p.min():.3g})"
    elif abs(p.sum() - 1.0) > SUM_TOL:
        problem = f"its entries sum to {p.sum():.9g}, not 1 (tolerance {SUM_TOL})"
    if problem:
        raise AlignfuseError(
            f"BROJA needs a joint probability table p[x1, x2, y] of shape {p.shape}, but {problem}; "
            "pass counts divided by their total."
        )
    return p / p.sum()


def _mutual_information(joint: np.ndarray) -> float:
    """I(A;B) in bits of a 2-D joint table (plug-in, 0 log 0 = 0)."""
    a = joint.sum(axis=1, keepdims=True)
    b = joint.sum(axis=0, keepdims=True)
    mask = joint > 0
    ratio = joint[mask] / (a * b)[mask]
    return max(float(np.sum(joint[mask] * np.log2(ratio))), 0.0)


class _Program:
    """The BROJA program for one table: min_Q -H_Q(Y|X1,X2) s.t. Q(x1,y)=P(x1,y), Q(x2,y)=P(x2,y).

    Q lives on the entries where both P(x1,y) > 0 and P(x2,y) > 0 (the rest are forced to 0).
    I_Q(X1,X2;Y) = H(Y) - H_Q(Y|X1,X2) since H(Y) is fixed by the constraints, and
    -H_Q(Y|X1,X2) = sum rel_entr(Q(x1,x2,y), Q(x1,x2)) is jointly convex in Q.
    """

    def __init__(self, p: np.ndarray):
        _, n2, ny = p.shape
        p1y, p2y = p.sum(axis=1), p.sum(axis=0)
        self.p1y, self.p2y = p1y, p2y
        support = (p1y[:, None, :] > 0) & (p2y[None, :, :] > 0)
        i1, i2, iy = np.nonzero(support)
        n = i1.size
        cols = np.arange(n)
        # Rows of the two marginal constraints and the (x1, x2) block of each entry.
        # the [x, y] cell of each constraint row, as a flat index
        self.cells1, self.r1 = np.unique(i1 * ny + iy, return_inverse=True)
        self.cells2, self.r2 = np.unique(i2 * ny + iy, return_inverse=True)
        self.support = (i1, i2, iy)
        self.block = np.unique(i1 * n2 + i2, return_inverse=True)[1]
        self.n_blocks = int(self.block.max()) + 1
        self.b1 = np.zeros(int(self.r1.max()) + 1)
        self.b1[self.r1] = p1y[i1, iy]
        self.b2 = np.zeros(int(self.r2.max()) + 1)
        self.b2[self.r2] = p2y[i2, iy]
        a1 = sp.csr_array((np.ones(n), (self.r1, cols)))
        a2 = sp.csr_array((np.ones(n), (self.r2, cols)))
        blocks = sp.csr_array((np.ones(n), (self.block, cols)))
        self.q = cp.Variable(n)
        self.eq1 = a1 @ self.q == self.b1
        self.eq2 = a2 @ self.q == self.b2
        constraints = [self.eq1, self.eq2]
        if ny <= DIRECT_MAX_Y:
            # Each entry's cone reads its block's mass directly: fewest variables.
            mass = blocks.T @ (blocks @ self.q)
        else:
            # With many y per block that fills in the KKT factor; a mass variable per block
            # keeps every cone at three nonzeros.
            block_mass = cp.Variable(self.n_blocks)
            constraints.append(blocks @ self.q == block_mass)
            mass = block_mass[self.block]
        objective = cp.Minimize(cp.sum(cp.rel_entr(self.q, mass)))
        self.problem = cp.Problem(objective, constraints)

    def solve(self, solver: str, options: dict, gap_tol: float = GAP_TOL) -> dict:
        """One solver's attempt; ``trusted`` only if optimal, feasible and certified by its gap."""
        outcome = {"solver": solver, "trusted": False, "gap": math.inf, "violation": math.inf}
        try:
            with warnings.catch_warnings():
                # cvxpy warns about inaccurate solutions; the status is read and reported below.
                warnings.simplefilter("ignore", UserWarning)
                self.problem.solve(solver=solver, **options)
        except (cp.error.SolverError, ValueError, ArithmeticError) as error:
            outcome["status"] = f"error ({type(error).__name__}: {error})"[:200]
            return outcome
        outcome["status"] = self.problem.status
        if self.problem.status != cp.OPTIMAL or self.q.value is None:
            return outcome
        if self.eq1.dual_value is None or self.eq2.dual_value is None:
            outcome["status"] = f"{self.problem.status} but without dual values to certify it"
            return outcome
        q = np.asarray(self.q.value, dtype=np.float64)
        violation = max(
            float(np.max(np.abs(np.bincount(self.r1, q) - self.b1))),
            float(np.max(np.abs(np.bincount(self.r2, q) - self.b2))),
            float(max(-q.min(), 0.0)),
        )
        table = np.zeros((self.p1y.shape[0], self.p2y.shape[0], self.p1y.shape[1]))
        table[self.support] = np.clip(q, 0.0, None)
        # cvxpy's equality duals enter the Lagrangian with a plus sign: multipliers are minus them.
        l1, l2 = np.full(self.p1y.shape, -np.inf), np.full(self.p2y.shape, -np.inf)
        l1.flat[self.cells1] = -np.asarray(self.eq1.dual_value, dtype=np.float64)
        l2.flat[self.cells2] = -np.asarray(self.eq2.dual_value, dtype=np.float64)
        i_q, gap = certify(table, l1, l2, self.p1y, self.p2y)
        outcome.update(
            violation=violation,
            gap=gap,
            I_Q=i_q,
            trusted=bool(violation <= FEAS_TOL and gap <= gap_tol),
        )
        if not outcome["trusted"]:
            outcome["status"] = (
                f"{self.problem.status} but not certified "
                f"(gap {gap:.2g} bits, violation {violation:.2g})"
            )
        return outcome
