"""The weighted-sum heads: fixed weights (weighted_sum) and per-pair gate weights (gated_sum)."""

from __future__ import annotations

import pytest
import torch
from fusion_task import LEARNS, assert_vmap_matches_each_seed, matching_accuracy

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.build import build_head
from alignfuse.fusion.weighted import GatedSumHead, WeightedSumHead

SMALL = {"dim": 16, "hidden": [32]}
GATED = {**SMALL, "gate_hidden": 8}


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("name", "config"), [("weighted_sum", SMALL), ("gated_sum", GATED)])
def test_maps_a_pair_batch_to_two_logits_per_pair(name, config):
    assert build_head(name, 12, 10, config)(torch.randn(5, 12), torch.randn(5, 10)).shape == (5, 2)


def test_weighted_sum_on_512_by_512_features_has_295810_parameters():
    """Two 512->256 projections (LayerNorm without parameters) and a 256->128->2 MLP."""
    assert n_params(WeightedSumHead(512, 512)) == 2 * (512 * 256 + 256) + (256 * 128 + 128) + 258


def test_gated_sum_adds_a_gate_of_32962_parameters():
    assert n_params(GatedSumHead(512, 512)) == 295_810 + (512 * 64 + 64) + (64 * 2 + 2)
    assert n_params(GatedSumHead(512, 512)) == 328_772


@pytest.mark.parametrize("gate", ["sigmoid", "softmax"])
def test_gate_gives_each_pair_its_own_weights(gate):
    torch.manual_seed(0)
    head = GatedSumHead(12, 10, gate=gate, **GATED)
    p_image, p_text = head.image_proj(torch.randn(5, 12)), head.text_proj(torch.randn(5, 10))
    w = head.weights(p_image, p_text)
    assert w.shape == (5, 2)
    assert ((w > 0) & (w < 1)).all()
    assert not torch.allclose(w[0], w[1])
    if gate == "softmax":
        torch.testing.assert_close(w.sum(dim=-1), torch.ones(5))


def test_fixed_weights_scale_the_unit_rms_projections():
    torch.manual_seed(0)
    head = WeightedSumHead(12, 10, weights=[0.2, 0.8], **SMALL)
    p_image, p_text = head.image_proj(torch.randn(5, 12)), head.text_proj(torch.randn(5, 10))
    torch.testing.assert_close(p_image.pow(2).mean(dim=-1), torch.ones(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(head.join(p_image, p_text), 0.2 * p_image + 0.8 * p_text)


def test_a_zero_weight_removes_that_modality():
    head = WeightedSumHead(12, 10, weights=[1.0, 0.0], **SMALL).eval()
    image = torch.randn(5, 12)
    torch.testing.assert_close(head(image, torch.randn(5, 10)), head(image, torch.randn(5, 10)))


@pytest.mark.parametrize(("name", "config"), [("weighted_sum", SMALL), ("gated_sum", GATED)])
def test_output_depends_on_both_modalities(name, config):
    torch.manual_seed(0)
    head = build_head(name, 12, 10, {**config, "dropout": 0.0})
    image, text = torch.randn(5, 12), torch.randn(5, 10)
    assert not torch.allclose(head(image, text), head(torch.randn(5, 12), text))
    assert not torch.allclose(head(image, text), head(image, torch.randn(5, 10)))


@pytest.mark.parametrize(
    ("name", "config"),
    [("weighted_sum", SMALL), ("gated_sum", GATED), ("gated_sum", {**GATED, "gate": "softmax"})],
)
def test_runs_under_vmap_as_each_seed_alone(name, config):
    assert_vmap_matches_each_seed(name, config)


def test_bad_gate_and_weights_are_config_errors():
    with pytest.raises(AlignfuseError, match="gate"):
        GatedSumHead(8, 8, gate="tanh")
    with pytest.raises(AlignfuseError, match="weights"):
        WeightedSumHead(8, 8, weights=[0.0, 0.0])


@pytest.mark.parametrize("name", ["weighted_sum", "gated_sum"])
def test_param_match_sizes_the_common_width_within_one_percent(name):
    head = build_head(name, 512, 512, {"param_match": 295_554})
    assert abs(n_params(head) - 295_554) <= 0.01 * 295_554
    assert head.hparams["hidden"] == [128]  # only the common width moves


@pytest.mark.parametrize(
    ("name", "config"),
    [("weighted_sum", SMALL), ("gated_sum", GATED), ("gated_sum", {**GATED, "gate": "softmax"})],
)
def test_learns_matching_far_above_chance(name, config):
    assert min(matching_accuracy(name, config, epochs=10, batch_size=100, lr=5e-3)) > LEARNS
