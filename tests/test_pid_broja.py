from __future__ import annotations

import importlib

import numpy as np
import pytest

from alignfuse.errors import AlignfuseError
from alignfuse.pid import broja

# The package re-exports the function under the module's name, so fetch the module itself.
broja_module = importlib.import_module("alignfuse.pid.broja")

TERMS = ("R", "U_img", "U_txt", "S")
BITS = 0.01  # known answers are compared within 0.01 bit


def gate(f, n_y: int = 2) -> np.ndarray:
    """p[x1, x2, y] for independent uniform bits x1, x2 and y = f(x1, x2)."""
    p = np.zeros((2, 2, n_y))
    for a in (0, 1):
        for b in (0, 1):
            p[a, b, f(a, b)] += 0.25
    return p


def random_table(shape, seed: int, sparsity: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.random(shape) ** 3
    p[rng.random(shape) < sparsity] = 0.0
    return p / p.sum()


def mutual_information(joint: np.ndarray) -> float:
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    mask = joint > 0
    return float(np.sum(joint[mask] * np.log2(joint[mask] / outer[mask])))


def assert_terms(result: dict, **expected: float) -> None:
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=BITS), (name, result)


def test_and_gate_is_redundancy_plus_half_a_bit_of_synergy():
    result = broja(gate(lambda a, b: a & b))
    assert_terms(result, R=0.311, S=0.5, U_img=0.0, U_txt=0.0, I=0.811)
    assert result["solver"] == "CLARABEL" and result["status"] == "optimal"


def test_or_gate_decomposes_like_and_gate():
    assert_terms(broja(gate(lambda a, b: a | b)), R=0.311, S=0.5, U_img=0.0, U_txt=0.0)


def test_xor_is_pure_synergy():
    assert_terms(broja(gate(lambda a, b: a ^ b)), S=1.0, R=0.0, U_img=0.0, U_txt=0.0)


def test_target_copying_the_first_source_is_unique_to_image():
    assert_terms(broja(gate(lambda a, b: a)), U_img=1.0, U_txt=0.0, R=0.0, S=0.0)


def test_target_copying_both_sources_is_one_unique_bit_each():
    result = broja(gate(lambda a, b: 2 * a + b, n_y=4))
    assert_terms(result, U_img=1.0, U_txt=1.0, R=0.0, S=0.0, I=2.0)


def test_identical_sources_and_target_are_fully_redundant():
    p = np.zeros((2, 2, 2))
    p[0, 0, 0] = p[1, 1, 1] = 0.5
    assert_terms(broja(p), R=1.0, U_img=0.0, U_txt=0.0, S=0.0)


def test_text_view_that_coarsens_the_image_view_of_an_and_gate():
    """X1 = (a, b), X2 = b, Y = a AND b for independent uniform bits a, b.

    X1 determines Y, so I(X1;Y) = H(Y) = h(1/4) = 0.811 = I(X1,X2;Y). X2 = 0 forces Y = 0 and
    X2 = 1 leaves Y = a, so H(Y|X2) = 1/2 and I(X2;Y) = 0.311. Every Q with P's (x1, y)
    marginal still has Y a function of X1, so I_Q(X1,X2;Y) = 0.811 for all of them: S = 0 and
    U_txt = I_Q - I(X1;Y) = 0; U_img = I_Q - I(X2;Y) = 0.5 and R = I(X1;Y) - U_img = 0.311.
    The text's bit is all redundant; the image adds half a bit of its own.
    """
    p = np.zeros((4, 2, 2))
    for a in (0, 1):
        for b in (0, 1):
            p[2 * a + b, b, a & b] = 0.25
    assert_terms(broja(p), R=0.311, U_img=0.5, U_txt=0.0, S=0.0, I=0.811)


def test_swapping_sources_swaps_unique_terms():
    p = random_table((3, 5, 2), seed=1)
    result, swapped = broja(p), broja(p.transpose(1, 0, 2))
    assert abs(result["U_img"] - result["U_txt"]) > 0.1  # asymmetric, so a swap shows
    assert swapped["U_img"] == pytest.approx(result["U_txt"], abs=1e-6)
    assert swapped["U_txt"] == pytest.approx(result["U_img"], abs=1e-6)
    assert swapped["R"] == pytest.approx(result["R"], abs=1e-6)
    assert swapped["S"] == pytest.approx(result["S"], abs=1e-6)


@pytest.mark.parametrize(
    ("shape", "sparsity"),
    [((3, 3, 2), 0.0), ((6, 5, 3), 0.3), ((20, 20, 2), 0.0), ((8, 8, 10), 0.5)],
)
def test_terms_are_non_negative_and_add_up_to_the_joint_information(shape, sparsity):
    p = random_table(shape, seed=sum(shape), sparsity=sparsity)
    result = broja(p)
    assert all(result[name] >= -1e-9 for name in TERMS), result
    assert sum(result[name] for name in TERMS) == pytest.approx(result["I"], abs=1e-6)
    assert result["I"] == pytest.approx(mutual_information(p.reshape(-1, shape[2])), abs=1e-9)
    assert result["R"] == pytest.approx(
        mutual_information(p.sum(axis=1)) - result["U_img"], abs=1e-6
    )
    assert result["status"] == "optimal"
    assert result["gap"] <= broja_module.GAP_TOL
    assert result["violation"] <= broja_module.FEAS_TOL


@pytest.mark.parametrize(
    ("p", "i_q"),
    [
        (gate(lambda a, b: a ^ b), 0.0),
        (gate(lambda a, b: a), 1.0),
        (np.diag([0.5, 0.5])[:, :, None] * np.eye(2)[:, None, :], 1.0),
    ],
)
def test_solver_reaches_what_the_marginals_fix_on_degenerate_tables(p, i_q):
    # broja() answers these from the marginals alone; the program must agree with them.
    outcome, attempts = broja_module._solve(p)
    assert outcome["I_Q"] == pytest.approx(i_q, abs=1e-6)
    assert attempts == ["CLARABEL: optimal"]


@pytest.mark.parametrize(("shape", "seed"), [((3, 3, 2), 7), ((2, 4, 2), 7), ((3, 2, 3), 8)])
def test_matches_dit_broja_on_small_random_tables(shape, seed):
    dit = pytest.importorskip("dit")
    from dit.pid import PID_BROJA

    p = random_table(shape, seed=seed)
    # dit's alternating divergence minimisation (Banerjee et al. 2017): another algorithm.
    reference = PID_BROJA(
        dit.Distribution.from_ndarray(p), [[0], [1]], [2], method="admui", maxiter=10_000
    )
    expected = {
        "R": reference.get_pi(((0,), (1,))),
        "U_img": reference.get_pi(((0,),)),
        "U_txt": reference.get_pi(((1,),)),
        "S": reference.get_pi(((0, 1),)),
    }
    result = broja(p)
    for name in TERMS:
        assert result[name] == pytest.approx(expected[name], abs=1e-4), name


def uniform_with(**entries) -> np.ndarray:
    """A uniform 2x2x2 table with some entries replaced (index given as e.g. at_0_0_1=value)."""
    p = np.full((2, 2, 2), 0.125)
    for key, value in entries.items():
        p[tuple(int(i) for i in key.split("_")[1:])] = value
    return p


@pytest.mark.parametrize(
    ("p", "reason"),
    [
        (uniform_with(at_0_0_0=-0.125, at_0_0_1=0.375), "negative"),
        (np.full((2, 2, 2), 0.1), "sum to"),
        (np.full((4, 2), 0.125), "axes"),
        (np.full((2, 2, 2, 1), 0.125), "axes"),
        (uniform_with(at_1_0_1=np.nan), "non-finite"),
        (uniform_with(at_1_1_1=np.inf), "non-finite"),
        (np.zeros((0, 2, 2)), "empty"),
    ],
)
def test_invalid_tables_raise_one_clear_error(p, reason):
    with pytest.raises(AlignfuseError, match=reason):
        broja(p)


def test_solver_that_stops_early_is_retried_with_another(monkeypatch):
    p = random_table((3, 3, 2), seed=3)
    expected = broja(p)
    monkeypatch.setattr(
        broja_module,
        "SOLVERS",
        (("CLARABEL", {"max_iter": 3}), ("SCS", {"eps_abs": 1e-9, "eps_rel": 1e-9})),
    )
    result = broja(p)
    assert result["attempts"] == ("CLARABEL: user_limit", "SCS: optimal")
    assert result["solver"] == "SCS"
    for name in TERMS:
        assert result[name] == pytest.approx(expected[name], abs=1e-6)


def test_optimal_status_with_a_loose_gap_is_not_trusted(monkeypatch):
    p = random_table((3, 3, 2), seed=3)
    loose = {"tol_gap_abs": 1e-2, "tol_gap_rel": 1e-2, "tol_feas": 1e-2, "tol_ktratio": 1e-2}
    monkeypatch.setattr(
        broja_module, "SOLVERS", (("CLARABEL", loose), ("SCS", {"eps_abs": 1e-9, "eps_rel": 1e-9}))
    )
    result = broja(p)
    assert result["attempts"][0].startswith("CLARABEL: optimal but not certified")
    assert result["solver"] == "SCS"
    assert result["gap"] <= broja_module.GAP_TOL


def test_error_names_the_table_and_statuses_when_no_solver_is_certified(monkeypatch):
    monkeypatch.setattr(
        broja_module, "SOLVERS", (("CLARABEL", {"max_iter": 2}), ("SCS", {"max_iters": 5}))
    )
    with pytest.raises(AlignfuseError, match=r"\(3, 3, 2\)") as error:
        broja(random_table((3, 3, 2), seed=3))
    assert "CLARABEL: user_limit" in str(error.value)
    assert "SCS: optimal_inaccurate" in str(error.value)
