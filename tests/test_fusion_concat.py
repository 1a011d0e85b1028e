"""The concatenation head."""

from __future__ import annotations

import torch
from fusion_task import LEARNS, assert_vmap_matches_each_seed, matching_accuracy

from alignfuse.fusion.build import build_head
from alignfuse.fusion.concat import ConcatHead


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_head_has_295554_parameters():
    assert n_params(ConcatHead(512, 512)) == 295_554


def test_registry_builds_it_with_config_hyper_parameters():
    head = build_head("concat", 6, 4, {"hidden": [8], "dropout": 0.0})
    assert isinstance(head, ConcatHead)
    assert n_params(head) == (10 * 8 + 8) + (8 * 2 + 2)


def test_maps_a_pair_batch_to_two_logits_per_pair():
    head = ConcatHead(6, 4, hidden=(8, 8))
    assert head(torch.randn(5, 6), torch.randn(5, 4)).shape == (5, 2)


def test_output_depends_on_both_modalities():
    head = ConcatHead(6, 4, hidden=(8,), dropout=0.0)
    image, text = torch.randn(5, 6), torch.randn(5, 4)
    assert not torch.allclose(head(image, text), head(torch.randn(5, 6), text))
    assert not torch.allclose(head(image, text), head(image, torch.randn(5, 4)))


def test_runs_under_vmap_as_each_seed_alone():
    assert_vmap_matches_each_seed("concat", {"hidden": [8, 4]})


def test_param_match_of_the_paper_size_gives_the_paper_head():
    head = build_head("concat", 512, 512, {"hidden": [64, 32], "param_match": 295_554})
    assert head.hparams["hidden"] == [256, 128]
    assert n_params(head) == 295_554


def test_param_match_keeps_the_ratio_of_the_hidden_widths():
    head = build_head("concat", 512, 512, {"hidden": [300, 100], "param_match": 150_000})
    first, second = head.hparams["hidden"]
    assert second == round(first / 3)
    assert abs(n_params(head) - 150_000) <= 0.01 * 150_000


def test_learns_matching_far_above_chance():
    assert min(matching_accuracy("concat", {"hidden": [32, 16]})) > LEARNS
