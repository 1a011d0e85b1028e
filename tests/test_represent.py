"""The fused view that diagnostics read: each head's own fused representation, projected on
principal axes fitted on the training pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fusion_task import D, matching_split

from alignfuse.fusion import FUSION_METHODS
from alignfuse.fusion.build import build_head
from alignfuse.train.ensemble import SeedEnsemble
from alignfuse.train.represent import fused_representation, representations, shuffled
from alignfuse.train.splits import Split

HEADS = {
    "concat": {"hidden": [16, 12]},
    "xattn_txt2img": {"tokens": 4, "dim": 16, "heads": 2, "ffn": 32},
    "xattn_img2txt": {"tokens": 4, "dim": 16, "heads": 2, "ffn": 32},
    "xattn_bidir": {"tokens": 4, "dim": 16, "heads": 2, "ffn": 32},
    "gated_sum": {"dim": 16, "hidden": [12], "gate_hidden": 8},
    "weighted_sum": {"dim": 16, "hidden": [12]},
    "bilinear": {"rank": 16, "hidden": [12]},
    "late": {"hidden": [16], "combine": "learned"},
    "image_only": {"hidden": [16, 12]},
    "text_only": {"hidden": [16, 12]},
}
# the modalities each head's fused view reads; every other head reads both
READS = {"image_only": {"image"}, "text_only": {"text"}}


def head_of(name: str):
    torch.manual_seed(0)
    return build_head(name, D, D, HEADS[name]).eval()


def test_every_registered_head_is_covered():
    assert set(HEADS) == set(FUSION_METHODS)


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize("modality", ["image", "text"])
def test_shuffling_one_modality_moves_the_fused_view_exactly_when_the_head_reads_it(name, modality):
    """Late fusion reads both towers (its last linear layer is the text tower's alone); the
    unimodal heads' views ignore the other side of the pair."""
    split = matching_split(100, torch.Generator().manual_seed(1))
    head = head_of(name)
    intact = fused_representation(head, split)
    moved = fused_representation(head, shuffled(split, modality))
    reads = READS.get(name, {"image", "text"})
    assert (not np.allclose(intact, moved, atol=1e-6)) == (modality in reads)


def test_the_gated_sums_view_is_the_gated_sum_of_its_projections_not_its_gates_hidden_layer():
    split = matching_split(50, torch.Generator().manual_seed(1))
    head = head_of("gated_sum")
    image, text = split.inputs(torch.arange(len(split)))
    with torch.no_grad():
        p_image, p_text = head.image_proj(image), head.text_proj(text)
        w = head.gate_net(torch.cat([p_image, p_text], dim=-1)).sigmoid()
        expected = w[:, :1] * p_image + w[:, 1:] * p_text
    view = fused_representation(head, split)
    assert view.shape == (len(split), HEADS["gated_sum"]["dim"])
    np.testing.assert_allclose(view, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_late_fusions_view_is_both_towers_logits():
    split = matching_split(50, torch.Generator().manual_seed(1))
    head = head_of("late")
    image, text = split.inputs(torch.arange(len(split)))
    with torch.no_grad():
        expected = torch.cat([head.image_head(image), head.text_head(text)], dim=-1)
    np.testing.assert_allclose(fused_representation(head, split), expected.numpy(), atol=1e-6)


def with_pairs(split: Split, image_row: torch.Tensor, text_row: torch.Tensor) -> Split:
    label = torch.zeros(len(image_row), dtype=torch.long)
    return Split(split.image, split.text, label, image_row, text_row)


def test_the_principal_axes_do_not_depend_on_the_test_pairs():
    """Replacing the half of the test pairs that PID scores leaves every other pair's
    coordinates unchanged: the axes come from the seeds' train pairs."""
    generator = torch.Generator().manual_seed(2)
    train = matching_split(150, generator)
    train.subsets = torch.stack([torch.arange(300), torch.arange(299, -1, -1)])
    model = SeedEnsemble("concat", HEADS["concat"], D, D, [4, 5])
    test = matching_split(100, generator)
    rows = torch.randint(0, 100, (2, 100), generator=generator)
    changed = with_pairs(
        test,
        torch.cat([test.image_row[:100], rows[0]]),
        torch.cat([test.text_row[:100], rows[1]]),
    )
    a = representations(model, train, test, [4, 5], [0, 1])
    b = representations(model, train, changed, [4, 5], [0, 1])
    kept = a["pair"] < 100
    assert (a["seed"] == b["seed"]).all() and not np.array_equal(
        np.stack(a.loc[~kept, "z"]), np.stack(b.loc[~kept, "z"])
    )
    np.testing.assert_array_equal(np.stack(a.loc[kept, "z"]), np.stack(b.loc[kept, "z"]))


def test_a_seed_left_out_gets_no_fused_view():
    generator = torch.Generator().manual_seed(2)
    train = matching_split(50, generator)
    train.subsets = torch.stack([torch.arange(100)] * 3)
    model = SeedEnsemble("late", HEADS["late"], D, D, [1, 2, 3])
    test = matching_split(30, generator)
    fused = representations(model, train, test, [1, 2, 3], [0, 2])
    assert fused["seed"].unique().tolist() == [1, 3] and len(fused) == 2 * len(test)
    assert np.stack(fused["z"]).shape == (2 * len(test), 16)  # 4 wide, zero-padded
