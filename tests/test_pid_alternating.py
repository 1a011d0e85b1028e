"""Alternating minimisation and the certificate every BROJA answer rests on."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from test_pid_broja import gate

from alignfuse.pid import broja
from alignfuse.pid.alternating import alternating
from alignfuse.pid.certificate import dual_bound, objective
from alignfuse.pid.contributions import FLOOR_GAP_TOL, joint_table, null_floor

broja_module = importlib.import_module("alignfuse.pid.broja")
alternating_module = importlib.import_module("alignfuse.pid.alternating")


def sampled_table(shape, rows: int, seed: int) -> np.ndarray:
    """A plug-in table from ``rows`` draws, sparse and lumpy like clustered features."""
    rng = np.random.default_rng(seed)
    weights = rng.random(shape) ** 4
    counts = rng.multinomial(rows, (weights / weights.sum()).ravel()).reshape(shape)
    return counts / rows


def optimum(p: np.ndarray) -> float:
    """min I_Q in bits from the cone program, to 1e-6 bits."""
    outcome = broja_module._Program(p).solve("CLARABEL", {}, 1e-6)
    assert outcome["trusted"], outcome["status"]
    return outcome["I_Q"]


@pytest.mark.parametrize(
    "p",
    [
        gate(lambda a, b: a & b),
        gate(lambda a, b: a | b),
        sampled_table((6, 5, 4), 3000, seed=1),
        sampled_table((12, 12, 10), 5000, seed=2),
    ],
    ids=["and", "or", "sampled-6x5x4", "sampled-12x12x10"],
)
def test_alternating_minimisation_reaches_the_cone_programs_optimum(p):
    outcome = alternating(p, 1e-6, 1e-7, 20_000)
    assert outcome["trusted"], outcome["status"]
    assert outcome["status"] == "optimal"
    assert outcome["I_Q"] == pytest.approx(optimum(p), abs=2e-6)


def test_an_uncertified_answer_says_how_far_it_got():
    outcome = alternating(sampled_table((12, 12, 10), 5000, seed=2), 1e-9, 1e-7, 3)
    assert not outcome["trusted"]
    assert outcome["status"].startswith("not certified after 3 iterations (gap ")


def test_certificate_brackets_the_optimum_whatever_the_candidate():
    p = sampled_table((5, 4, 3), 2000, seed=3)
    best = optimum(p) * np.log(2)  # nats, without H(Y): compare objective values below
    h_y = -np.sum(p.sum(axis=(0, 1)) * np.log(p.sum(axis=(0, 1))))
    p1y, p2y, py = p.sum(axis=1), p.sum(axis=0), p.sum(axis=(0, 1))
    # Q = P(x1|y) P(x2|y) P(y) keeps both marginals, so it bounds the optimum from above.
    independent = p1y[:, None, :] * p2y[None, :, :] / py
    assert objective(independent) + h_y >= best - 1e-9
    rng = np.random.default_rng(0)
    for _ in range(20):  # any multipliers bound it from below
        l1, l2 = rng.normal(size=p1y.shape), rng.normal(size=p2y.shape)
        assert dual_bound(l1, l2, p1y, p2y) + h_y <= best + 1e-9
    # multipliers that give no finite bound give no bound, never a wrong one
    assert dual_bound(np.full(p1y.shape, -np.inf), np.zeros(p2y.shape), p1y, p2y) == -np.inf


def test_big_tables_at_loose_gaps_go_to_alternating_minimisation_first():
    p = sampled_table((20, 20, 10), 5000, seed=4)
    loose = broja(p, 1e-4)
    tight = broja(p)
    assert loose["attempts"] == ("ALTERNATING: optimal",) and loose["gap"] <= 1e-4
    assert tight["attempts"] == ("CLARABEL: optimal",) and tight["gap"] <= 1e-6
    for term in ("R", "U_img", "U_txt", "S"):
        assert loose[term] == pytest.approx(tight[term], abs=1e-4 + 1e-6)


def test_an_uncertified_alternating_answer_falls_back_to_the_cone_program(monkeypatch):
    p = sampled_table((20, 20, 10), 5000, seed=4)
    monkeypatch.setattr(broja_module, "ALTERNATING_MAX_ITER", 2)
    result = broja(p, 1e-4)
    assert result["attempts"][0].startswith("ALTERNATING: not certified after 2 iterations")
    assert result["attempts"][1:] == ("CLARABEL: optimal",)
    assert result["solver"] == "CLARABEL"


def test_noise_floor_at_its_loose_gap_matches_the_tight_one():
    rng = np.random.default_rng(5)
    x1, x2 = rng.integers(0, 20, 4000), rng.integers(0, 20, 4000)
    y = (x1 * 7 + x2 * 3 + rng.integers(0, 3, 4000)) % 10
    loose = null_floor(x1, x2, y, 20, 20, 10, repeats=3, seed=1)
    tight = null_floor(x1, x2, y, 20, 20, 10, repeats=3, seed=1, gap_tol=1e-6)
    assert FLOOR_GAP_TOL == 1e-4
    for term, value in tight.items():
        assert loose[term] == pytest.approx(value, abs=2 * FLOOR_GAP_TOL), term
    assert joint_table(x1, x2, y).size >= broja_module.ALTERNATING_MIN_CELLS


def test_very_big_tables_go_to_alternating_minimisation_first_at_any_gap():
    p = sampled_table((30, 30, 30), 4000, seed=5)
    assert p.size >= broja_module.ALTERNATING_MIN_CELLS_ANY_GAP
    result = broja(p)
    assert result["attempts"][0].startswith("ALTERNATING") and result["gap"] <= 1e-6
    assert result["I"] - result["S"] == pytest.approx(optimum(p), abs=2e-6)


def test_the_iterations_still_needed_follow_the_gaps_rate_of_decrease():
    needed = alternating_module._iterations_needed
    # gap 0.1 -> 0.01 over 50 iterations: 100 more reach 1e-4
    assert needed(100, 1e-2, (50, 1e-1), 1e-4) == pytest.approx(100)
    # no rate yet: the shortest spacing; a gap that did not shrink: never
    assert needed(10, 1e-2, None, 1e-4) == alternating_module.CHECK_EVERY
    assert needed(100, 1e-2, (50, 1e-3), 1e-4) == math.inf


def test_a_run_its_rate_says_will_not_finish_stops_early():
    p = sampled_table((30, 30, 30), 4000, seed=6)
    slow = alternating(p, 1e-12, 1e-7, 2000)  # far below what its rate reaches in 4000
    assert not slow["trusted"]
    stopped_at = int(slow["status"].split("after ")[1].split()[0])
    assert alternating_module.HOPELESS_AFTER <= stopped_at < 2000


def test_the_scalings_meet_both_marginals_to_the_violation_they_report():
    p = sampled_table((8, 7, 5), 4000, seed=4)
    p1y, p2y = p.sum(axis=1), p.sum(axis=0)
    r = np.random.default_rng(0).random((8, 7))
    a, b, violation = alternating_module._scale(r, np.ones_like(p2y), p1y, p2y, 1e-12)
    q = r[:, :, None] * a[:, None, :] * b[None, :, :]
    assert np.abs(q.sum(axis=0) - p2y).max() < 1e-15
    assert np.abs(q.sum(axis=1) - p1y).max() == pytest.approx(violation, abs=1e-16)
    assert violation < 1e-9
