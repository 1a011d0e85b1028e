"""Unimodal baselines: an MLP on the image alone or on the caption alone."""

from __future__ import annotations

import pytest
import torch
from fusion_task import CHANCE, assert_vmap_matches_each_seed, matching_accuracy

from alignfuse.fusion.build import build_head
from alignfuse.fusion.unimodal import ImageOnlyHead, TextOnlyHead

SMALL = {"hidden": [32, 16]}
NAMES = ["image_only", "text_only"]


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_maps_a_pair_batch_to_two_logits_per_pair(name):
    head = build_head(name, 12, 10, SMALL)
    assert head(torch.randn(5, 12), torch.randn(5, 10)).shape == (5, 2)


@pytest.mark.parametrize("cls", [ImageOnlyHead, TextOnlyHead])
def test_default_head_on_512_features_is_the_paper_mlp_on_one_modality(cls):
    assert n_params(cls(512, 512)) == (512 * 256 + 256) + (256 * 128 + 128) + 258 == 164_482


def test_each_sees_only_its_modality():
    torch.manual_seed(0)
    image_only, text_only = ImageOnlyHead(12, 10, **SMALL).eval(), TextOnlyHead(12, 10, **SMALL)
    text_only.eval()
    image, text = torch.randn(5, 12), torch.randn(5, 10)
    torch.testing.assert_close(image_only(image, text), image_only(image, torch.randn(5, 10)))
    torch.testing.assert_close(text_only(image, text), text_only(torch.randn(5, 12), text))
    assert n_params(ImageOnlyHead(12, 10, **SMALL)) != n_params(TextOnlyHead(12, 10, **SMALL))


@pytest.mark.parametrize("name", NAMES)
def test_runs_under_vmap_as_each_seed_alone(name):
    assert_vmap_matches_each_seed(name, SMALL)


@pytest.mark.parametrize("name", NAMES)
def test_param_match_scales_the_hidden_widths(name):
    head = build_head(name, 512, 512, {"param_match": 295_554})
    assert abs(n_params(head) - 295_554) <= 0.01 * 295_554


@pytest.mark.parametrize("name", NAMES)
def test_stays_at_chance_on_a_task_that_needs_both_modalities(name):
    low, high = CHANCE
    for accuracy in matching_accuracy(name, SMALL, epochs=10, batch_size=100, lr=5e-3):
        assert low < accuracy < high
