"""A pid job's solves on several processes: the same numbers, and a failure stops the job."""

from __future__ import annotations

import numpy as np
import pytest

from alignfuse.errors import AlignfuseError
from alignfuse.pid.contributions import decompose, decomposition_row, decomposition_tasks
from alignfuse.pid.pool import solve_all


def codes(seed: int):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.integers(0, 6, 600), rng.integers(0, 5, 600)
    return x1, x2, (x1 + x2 + rng.integers(0, 2, 600)) % 4


def test_workers_give_the_decomposition_of_one_process():
    x1, x2, y = codes(0)
    tasks = decomposition_tasks(x1, x2, y, repeats=5, seed=3)
    serial, pooled = solve_all(tasks, 1), solve_all(tasks, 2)
    for one, other in zip(serial, pooled, strict=True):
        for term in ("R", "U_img", "U_txt", "S", "I", "gap"):
            assert one[term] == pytest.approx(other[term], abs=1e-12)
    row = decomposition_row(pooled, len(y))
    expected = decompose(x1, x2, y, repeats=5, seed=3)
    assert row.keys() == expected.keys()
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, abs=1e-12, nan_ok=True)


def test_a_table_that_fails_in_a_worker_fails_the_call():
    x1, x2, y = codes(1)
    tasks = decomposition_tasks(x1, x2, y, repeats=3)
    broken = np.full((2, 2, 2), 0.25)  # sums to 2: not a distribution
    with pytest.raises(AlignfuseError, match="sum to 2"):
        solve_all([*tasks, (broken, 1e-4)], 2)
