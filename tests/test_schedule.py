"""The learning-rate schedule: constant, or a linear warm-up followed by a cosine decay."""

from __future__ import annotations

import math

import pytest

from alignfuse.train.schedule import learning_rate, total_steps, warmup_steps

COSINE = {"lr": 1e-3, "schedule": "warmup_cosine", "warmup_fraction": 0.1, "final_lr_fraction": 0.1}


def rates(cfg: dict, total: int) -> list[float]:
    return [learning_rate(cfg, step, total) for step in range(total)]


def test_constant_schedule_keeps_the_rate_at_every_step():
    assert rates({"lr": 3e-3, "schedule": "constant"}, 50) == [3e-3] * 50
    assert rates({"lr": 3e-3}, 5) == [3e-3] * 5  # the default


def test_total_steps_count_every_batch_of_every_epoch():
    assert total_steps({"max_epochs": 3, "batch_size": 64}, 800) == 3 * 13
    assert total_steps({"max_epochs": 2, "batch_size": 128}, 100) == 2  # one batch of all pairs


def test_warmup_rises_linearly_to_the_rate_from_its_first_step():
    lrs = rates(COSINE, 100)
    assert warmup_steps(COSINE, 100) == 10
    assert lrs[:10] == pytest.approx([1e-3 * (k + 1) / 10 for k in range(10)])
    assert lrs[0] > 0  # the first step already moves the head


def test_cosine_decays_from_the_rate_to_its_final_fraction_at_the_last_step():
    lrs = rates(COSINE, 100)
    assert lrs[10] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    halfway = 10 + (100 - 10 - 1) / 2
    assert learning_rate(COSINE, math.floor(halfway), 100) >= 5.5e-4 >= lrs[math.ceil(halfway)]


def test_warmup_steps_override_the_fraction_and_never_exceed_the_total():
    assert warmup_steps({**COSINE, "warmup_steps": 7}, 100) == 7
    assert warmup_steps({**COSINE, "warmup_steps": 500}, 100) == 100
    assert rates({**COSINE, "warmup_steps": 0}, 100)[0] == pytest.approx(1e-3)
