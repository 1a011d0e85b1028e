"""The low-rank bilinear head."""

from __future__ import annotations

import torch
from fusion_task import LEARNS, assert_vmap_matches_each_seed, matching_accuracy

from alignfuse.fusion.bilinear import LowRankBilinearHead
from alignfuse.fusion.build import build_head

SMALL = {"rank": 16, "hidden": [16]}


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_maps_a_pair_batch_to_two_logits_per_pair():
    head = build_head("bilinear", 12, 10, SMALL)
    assert head(torch.randn(5, 12), torch.randn(5, 10)).shape == (5, 2)


def test_default_head_on_512_by_512_features_has_295810_parameters():
    """Two 512->256 projections and a 256->128->2 MLP."""
    assert n_params(LowRankBilinearHead(512, 512)) == 295_810


def test_with_a_linear_read_out_the_logits_are_affine_in_each_modality():
    """hidden=[]: logits = sum_k c_k (u_k.v + a_k)(w_k.t + b_k), a rank-r bilinear form."""
    torch.manual_seed(0)
    head = LowRankBilinearHead(12, 10, rank=4, hidden=[], dropout=0.0)
    v1, v2, t = torch.randn(5, 12), torch.randn(5, 12), torch.randn(5, 10)
    zero = torch.zeros(5, 12)
    torch.testing.assert_close(
        head(v1 + v2, t) - head(v2, t), head(v1, t) - head(zero, t), atol=1e-5, rtol=1e-5
    )
    t1, t2, v = torch.randn(5, 10), torch.randn(5, 10), torch.randn(5, 12)
    mixed = head(v, 2 * t1 - t2)
    torch.testing.assert_close(mixed, 2 * head(v, t1) - head(v, t2), atol=1e-5, rtol=1e-5)
    assert n_params(head) == 2 * 4 + 12 * 4 + 10 * 4 + 4 * 2 + 2


def test_output_depends_on_both_modalities():
    torch.manual_seed(0)
    head = LowRankBilinearHead(12, 10, dropout=0.0, **SMALL)
    image, text = torch.randn(5, 12), torch.randn(5, 10)
    assert not torch.allclose(head(image, text), head(torch.randn(5, 12), text))
    assert not torch.allclose(head(image, text), head(image, torch.randn(5, 10)))


def test_runs_under_vmap_as_each_seed_alone():
    assert_vmap_matches_each_seed("bilinear", SMALL)


def test_param_match_sizes_the_rank():
    head = build_head("bilinear", 512, 512, {"hidden": [64], "param_match": 295_554})
    assert abs(n_params(head) - 295_554) <= 0.01 * 295_554
    assert head.hparams["hidden"] == [64] and head.hparams["rank"] > 256


def test_learns_matching_far_above_chance():
    accuracy = matching_accuracy("bilinear", SMALL, epochs=10, batch_size=100, lr=5e-3)
    assert min(accuracy) > LEARNS
