"""The cross-attention head."""

from __future__ import annotations

import pytest
import torch

from alignfuse.errors import AlignfuseError
from alignfuse.fusion import build_head
from alignfuse.fusion.xattn import CrossAttentionHead

SMALL = {"tokens": 4, "dim": 16, "heads": 2, "ffn": 32}


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("direction", ["txt2img", "img2txt", "bidir"])
def test_maps_a_pair_batch_to_two_logits_per_pair(direction):
    head = CrossAttentionHead(12, 10, direction=direction, **SMALL)
    assert head(torch.randn(5, 12), torch.randn(5, 10)).shape == (5, 2)


@pytest.mark.parametrize(
    ("direction", "expected"), [("txt2img", 630_786), ("img2txt", 630_786), ("bidir", 1_223_426)]
)
def test_default_head_on_512_by_512_features_has_a_known_size(direction, expected):
    """Token embeddings (64->256, 8 positions) per modality, a block per direction, an MLP."""
    assert n_params(build_head("xattn", 512, 512, {"direction": direction})) == expected


@pytest.mark.parametrize("direction", ["txt2img", "img2txt", "bidir"])
def test_output_depends_on_both_modalities(direction):
    torch.manual_seed(0)
    head = CrossAttentionHead(12, 10, direction=direction, **SMALL).eval()
    image, text = torch.randn(5, 12), torch.randn(5, 10)
    assert not torch.allclose(head(image, text), head(torch.randn(5, 12), text))
    assert not torch.allclose(head(image, text), head(image, torch.randn(5, 10)))


def test_runs_under_vmap_over_stacked_seeds():
    heads = [CrossAttentionHead(12, 10, direction="bidir", **SMALL) for _ in range(3)]
    params, buffers = torch.func.stack_module_state(heads)
    base = heads[0].to("meta")

    def forward(p, b, image, text):
        return torch.func.functional_call(base, (p, b), (image, text))

    out = torch.vmap(forward, randomness="different")(
        params, buffers, torch.randn(3, 5, 12), torch.randn(3, 5, 10)
    )
    assert out.shape == (3, 5, 2)


def test_unknown_direction_is_a_config_error():
    with pytest.raises(AlignfuseError, match="direction"):
        CrossAttentionHead(8, 8, direction="sideways")
