"""Late fusion: per-modality heads whose logits are combined (a baseline that cannot see the pair)."""

from __future__ import annotations

import pytest
import torch
from fusion_task import CHANCE, assert_vmap_matches_each_seed, matching_accuracy

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.build import build_head
from alignfuse.fusion.late import LateFusionHead

SMALL = {"hidden": [32, 16]}


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_maps_a_pair_batch_to_two_logits_per_pair():
    head = build_head("late", 12, 10, SMALL)
    assert head(torch.randn(5, 12), torch.randn(5, 10)).shape == (5, 2)


def test_default_head_on_512_by_512_features_has_two_paper_sized_towers():
    assert n_params(LateFusionHead(512, 512)) == 2 * 164_482 == 328_964
    assert n_params(LateFusionHead(512, 512, combine="learned")) == 328_966


@pytest.mark.parametrize("combine", ["sum", "learned"])
def test_logits_are_additive_so_swapping_partners_changes_nothing(combine):
    """f(v1, t1) + f(v2, t2) = f(v1, t2) + f(v2, t1): the head cannot tell which caption is whose."""
    torch.manual_seed(0)
    head = LateFusionHead(12, 10, combine=combine, **SMALL).eval()
    v1, v2, t1, t2 = torch.randn(5, 12), torch.randn(5, 12), torch.randn(5, 10), torch.randn(5, 10)
    torch.testing.assert_close(head(v1, t1) + head(v2, t2), head(v1, t2) + head(v2, t1))


def test_sum_adds_the_two_towers_logits():
    torch.manual_seed(0)
    head = LateFusionHead(12, 10, **SMALL).eval()
    image, text = torch.randn(5, 12), torch.randn(5, 10)
    torch.testing.assert_close(head(image, text), head.image_head(image) + head.text_head(text))


@pytest.mark.parametrize("combine", ["sum", "learned"])
def test_runs_under_vmap_as_each_seed_alone(combine):
    assert_vmap_matches_each_seed("late", {**SMALL, "combine": combine})


def test_unknown_combination_is_a_config_error():
    with pytest.raises(AlignfuseError, match="combine"):
        LateFusionHead(8, 8, combine="product")


def test_param_match_scales_both_towers():
    head = build_head("late", 512, 512, {"param_match": 295_554})
    first, second = head.hparams["hidden"]
    assert second == round(first / 2)
    assert abs(n_params(head) - 295_554) <= 0.01 * 295_554


def test_stays_near_chance_on_a_task_that_needs_both_modalities():
    low, high = CHANCE
    for accuracy in matching_accuracy("late", SMALL, epochs=10, batch_size=100, lr=5e-3):
        assert low < accuracy < high
