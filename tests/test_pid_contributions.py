from __future__ import annotations

import math

import numpy as np
import pytest

from alignfuse.errors import AlignfuseError
from alignfuse.pid import decompose, fit_codebook, joint_table, null_floor

TERMS = ("R", "U_img", "U_txt", "S")


def test_joint_table_is_the_share_of_rows_in_each_cell():
    x1, x2, y = [0, 0, 1, 1, 1], [1, 1, 0, 2, 2], [0, 0, 1, 0, 0]
    p = joint_table(x1, x2, y)
    assert p.shape == (2, 3, 2)
    assert p[0, 1, 0] == pytest.approx(0.4)
    assert p[1, 0, 1] == pytest.approx(0.2)
    assert p[1, 2, 0] == pytest.approx(0.4)
    assert p.sum() == pytest.approx(1.0)


def test_joint_table_counts_boolean_labels_as_two_codes():
    p = joint_table([0, 1, 1, 0], [0, 0, 1, 1], np.array([True, False, True, True]))
    assert p.shape == (2, 2, 2) and p[0, 0, 1] == pytest.approx(0.25)


def test_joint_table_keeps_declared_sizes_for_codes_that_do_not_occur():
    assert joint_table([0, 1], [0, 0], [1, 1], n_x1=5, n_x2=3, n_y=4).shape == (5, 3, 4)


@pytest.mark.parametrize(
    ("x1", "x2", "y", "sizes", "reason"),
    [
        ([0, 1], [0], [0, 1], {}, "same rows"),
        ([0, 3], [0, 1], [0, 1], {"n_x1": 3}, "out of range for n_x1=3"),
        ([0, -1], [0, 1], [0, 1], {}, "negative code"),
        ([0.0, 1.5], [0, 1], [0, 1], {}, "integer codes"),
        ([], [], [], {}, "no rows"),
    ],
)
def test_joint_table_rejects_codes_it_cannot_count(x1, x2, y, sizes, reason):
    with pytest.raises(AlignfuseError, match=reason):
        joint_table(x1, x2, y, **sizes)


def test_null_floor_is_deterministic_for_a_seed_and_grows_with_the_number_of_clusters():
    """Plug-in information of a label that is independent of the codes is biased upward, and
    more so with more cells per row: the floor must show that bias."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=600)
    coarse = rng.integers(0, 2, size=(2, 600))
    fine = rng.integers(0, 8, size=(2, 600))
    floor = null_floor(*fine, y, repeats=8, seed=1)
    assert floor == null_floor(*fine, y, repeats=8, seed=1)
    assert set(floor) == {*TERMS, "I", "U"}
    assert floor["I"] > 2 * null_floor(*coarse, y, repeats=8, seed=1)["I"]
    assert all(value >= 0 for value in floor.values())


def test_unique_share_is_undefined_without_unique_information():
    x1, x2 = np.tile([0, 0, 1, 1], 50), np.tile([0, 1, 0, 1], 50)
    row = decompose(x1, x2, x1 ^ x2, repeats=5)
    assert row["S"] == pytest.approx(1.0, abs=1e-6)
    assert row["S_above_noise"] and not row["U_above_noise"]
    assert math.isnan(row["CI"]) and math.isnan(row["CT"])


def test_a_label_copied_from_the_image_codes_gives_the_image_all_unique_information():
    rng = np.random.default_rng(1)
    x1, x2 = rng.integers(0, 2, size=400), rng.integers(0, 3, size=400)
    row = decompose(x1, x2, x1, repeats=5)
    assert row["U_img"] == pytest.approx(row["I"], abs=0.01)
    assert row["U_img_above_noise"] and not row["U_txt_above_noise"]
    assert row["CI"] == pytest.approx(1.0, abs=0.01)
    assert row["CT"] == pytest.approx(1.0 - row["CI"])
    assert row["rows"] == 400 and row["repeats"] == 5


def two_views(case: str, n: int, seed: int, dim: int = 16, separation: float = 4.0):
    """Continuous image and text features, each embedding two latent bits along its own random
    directions plus unit Gaussian noise, and a label that uses them as ``case`` says.

    image: label = the image's first bit; text: label = the text's first bit; redundant: the
    text's first bit is the image's first bit and the label is that shared bit; synergy: label =
    image bit XOR text bit. The second bit of each view is a nuisance the label ignores.
    """
    rng = np.random.default_rng(seed)
    image_bit, image_nuisance, text_bit, text_nuisance = rng.integers(0, 2, size=(4, n))
    if case == "redundant":
        text_bit = image_bit
    label = {
        "image": image_bit,
        "text": text_bit,
        "redundant": image_bit,
        "synergy": image_bit ^ text_bit,
    }[case]
    directions = np.linalg.qr(rng.normal(size=(dim, 4)))[0].T
    image = np.stack([image_bit, image_nuisance], axis=1) - 0.5
    text = np.stack([text_bit, text_nuisance], axis=1) - 0.5
    image = separation * image @ directions[:2] + rng.normal(size=(n, dim))
    text = separation * text @ directions[2:] + rng.normal(size=(n, dim))
    return image, text, label


@pytest.mark.parametrize(
    ("case", "dominant"),
    [("image", "U_img"), ("text", "U_txt"), ("redundant", "R"), ("synergy", "S")],
)
def test_synthetic_views_rank_the_contribution_that_generated_the_label(case, dominant):
    image, text, label = two_views(case, n=4000, seed=0)
    train, held_out = slice(0, 2000), slice(2000, None)
    image_codes = fit_codebook(image[train], k=4, dims=2, seed=0).assign(image[held_out])
    text_codes = fit_codebook(text[train], k=4, dims=2, seed=0).assign(text[held_out])
    row = decompose(image_codes, text_codes, label[held_out], n_y=2, repeats=20, seed=0)
    assert row[f"{dominant}_above_noise"]
    assert row[dominant] > 0.5
    for other in TERMS:
        if other != dominant:
            assert row[other] < 0.25 * row[dominant], (other, row)
    if case == "image":
        assert row["CI"] > 0.9 and row["CT"] < 0.1
    if case == "text":
        assert row["CT"] > 0.9 and row["CI"] < 0.1
