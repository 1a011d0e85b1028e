"""The cross-attention heads: one registry name per direction."""

from __future__ import annotations

import pytest
import torch
from fusion_task import LEARNS, assert_vmap_matches_each_seed, matching_accuracy

from alignfuse.errors import AlignfuseError
from alignfuse.fusion import FUSION_METHODS
from alignfuse.fusion.build import build_head
from alignfuse.fusion.xattn import CrossAttentionHead
from alignfuse.train.ensemble import SeedEnsemble

SMALL = {"tokens": 4, "dim": 16, "heads": 2, "ffn": 32}
NAMES = {"xattn_txt2img": "txt2img", "xattn_img2txt": "img2txt", "xattn_bidir": "bidir"}


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("direction", ["txt2img", "img2txt", "bidir"])
def test_maps_a_pair_batch_to_two_logits_per_pair(direction):
    head = CrossAttentionHead(12, 10, direction=direction, **SMALL)
    assert head(torch.randn(5, 12), torch.randn(5, 10)).shape == (5, 2)


@pytest.mark.parametrize(("name", "direction"), NAMES.items())
def test_each_registry_name_binds_its_direction(name, direction):
    head = build_head(name, 12, 10, SMALL)
    assert isinstance(head, CrossAttentionHead)
    assert head.direction == direction
    assert head(torch.randn(5, 12), torch.randn(5, 10)).shape == (5, 2)


def test_the_generic_name_is_gone_and_the_direction_is_not_a_setting():
    assert "xattn" not in FUSION_METHODS
    with pytest.raises(TypeError):
        build_head("xattn_txt2img", 12, 10, {**SMALL, "direction": "img2txt"})


@pytest.mark.parametrize(
    ("name", "expected"),
    [("xattn_txt2img", 1_156_098), ("xattn_img2txt", 1_156_098), ("xattn_bidir", 1_748_738)],
)
def test_default_head_on_512_by_512_features_has_a_known_size(name, expected):
    """Per modality a learned 512 -> 512 token map (262,656) and token embeddings (64 -> 256, 8
    positions), a block per direction, an MLP."""
    assert n_params(build_head(name, 512, 512, {})) == expected
    chunks = n_params(build_head(name, 512, 512, {"token_map": "chunks"}))
    assert expected - chunks == 2 * (512 * 512 + 512)


@pytest.mark.parametrize(
    ("name", "target", "expected"),
    [
        ("xattn_txt2img", 757_000, 757_570),
        ("xattn_img2txt", 757_000, 757_570),
        ("xattn_bidir", 1_468_386, 1_466_786),
    ],
)
def test_the_paper_config_has_about_757k_parameters(name, target, expected):
    """config.yaml sizes dim with param_match to the paper's 757K (bidir: two such blocks)."""
    config = {"tokens": 8, "dim": 256, "heads": 4, "ffn": 512, "param_match": target}
    assert n_params(build_head(name, 512, 512, config)) == expected
    assert abs(expected - target) < 0.002 * target


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


@pytest.mark.parametrize("name", NAMES)
def test_runs_under_vmap_as_each_seed_alone(name):
    assert_vmap_matches_each_seed(name, SMALL)


def test_unknown_direction_is_a_config_error():
    with pytest.raises(AlignfuseError, match="direction"):
        CrossAttentionHead(8, 8, direction="sideways")


@pytest.mark.parametrize("name", NAMES)
def test_param_match_sizes_dim_in_multiples_of_heads_within_one_percent(name):
    head = build_head(name, 512, 512, {"token_map": "chunks", "param_match": 295_554})
    assert head.hparams["dim"] % head.hparams["heads"] == 0
    assert head.hparams["ffn"] == 2 * head.hparams["dim"]  # the default ffn/dim ratio is kept
    assert abs(n_params(head) - 295_554) <= 0.01 * 295_554


def test_param_match_finds_the_exact_width_when_one_exists():
    config = {"dim": 144, "ffn": 256, "token_map": "chunks", "param_match": 755_650}
    head = build_head("xattn_txt2img", 512, 512, config)
    assert head.hparams["dim"] == 288 and n_params(head) == 755_650  # ffn/dim = 512/288 kept


def test_a_mixed_token_map_cannot_be_matched_below_its_own_size():
    """At 512-d the two 512 x 512 token maps alone hold 525,312 parameters: concat's 295,554 is
    out of reach, and the error says so instead of building a different head."""
    with pytest.raises(AlignfuseError, match="no width of this head comes within"):
        build_head("xattn_txt2img", 512, 512, {"param_match": 295_554})


@pytest.mark.parametrize("name", NAMES)
def test_learns_matching_far_above_chance(name):
    assert min(matching_accuracy(name, SMALL, epochs=10, batch_size=100, lr=5e-3)) > LEARNS


ENCODER = {**SMALL, "token_source": "encoder"}


def ragged(batch: int, longest: int, d: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences [batch, longest, d] of lengths 1..longest, padded with garbage, and masks."""
    lengths = torch.randint(1, longest + 1, (batch,), generator=generator)
    mask = torch.arange(longest) < lengths[:, None]
    return torch.randn(batch, longest, d, generator=generator), mask


@pytest.mark.parametrize("name", NAMES)
def test_encoder_tokens_map_ragged_sequences_to_two_logits_per_pair(name):
    head = build_head(name, 12, 10, ENCODER)
    assert head.token_source == "encoder" and head.pseudo_tokens is None
    (image, image_mask), (text, text_mask) = ragged(5, 7, 12), ragged(5, 9, 10)
    assert head(image, text, image_mask, text_mask).shape == (5, 2)


@pytest.mark.parametrize("name", NAMES)
def test_encoder_token_head_ignores_padding_and_the_order_of_tokens(name):
    """Keys are a set (no position embedding is added to encoder tokens) and padded positions,
    queries or keys, change nothing; pooling over queries makes their order irrelevant too."""
    torch.manual_seed(0)
    head = build_head(name, 12, 10, ENCODER).eval()
    (image, image_mask), (text, text_mask) = ragged(4, 7, 12), ragged(4, 9, 10)
    out = head(image, text, image_mask, text_mask)
    garbage_image, garbage_text = image.clone(), text.clone()
    garbage_image[~image_mask] = 1e3
    garbage_text[~text_mask] = -1e3
    torch.testing.assert_close(head(garbage_image, garbage_text, image_mask, text_mask), out)
    flip_image, flip_text = torch.randperm(7), torch.randperm(9)
    torch.testing.assert_close(
        head(
            image[:, flip_image],
            text[:, flip_text],
            image_mask[:, flip_image],
            text_mask[:, flip_text],
        ),
        out,
    )


def test_encoder_tokens_replace_the_pseudo_token_embeddings_with_one_projection():
    """At dim 288 on 512-d tokens: the chunk-token head's 755,650 - 2 x 21,024 (64 -> 288 and 8
    positions) + 2 x 147,744 (512 -> 288); token_map does not apply to encoder tokens."""
    config = {"tokens": 8, "dim": 288, "heads": 4, "ffn": 512, "token_source": "encoder"}
    assert n_params(build_head("xattn_txt2img", 512, 512, config)) == 1_009_090


def test_unknown_token_source_is_a_config_error():
    with pytest.raises(AlignfuseError, match="token_source 'patches'.*pseudo, encoder"):
        CrossAttentionHead(8, 8, token_source="patches")


@pytest.mark.parametrize("name", NAMES)
def test_encoder_token_head_runs_under_vmap_as_each_seed_alone(name):
    seeds = [3, 7]
    ensemble = SeedEnsemble(name, ENCODER, 12, 10, seeds)
    generator = torch.Generator().manual_seed(0)
    (image, image_mask), (text, text_mask) = (
        ragged(5, 7, 12, generator),
        ragged(5, 9, 10, generator),
    )
    stacked = [t.expand(2, *t.shape) for t in (image, text, image_mask, text_mask)]
    ensemble.eval()
    out = ensemble(*stacked)
    for s, seed in enumerate(seeds):
        torch.manual_seed(seed)
        alone = build_head(name, 12, 10, ENCODER).eval()
        torch.testing.assert_close(out[s], alone(image, text, image_mask, text_mask))


@pytest.mark.parametrize("name", NAMES)
def test_encoder_token_head_learns_which_caption_tokens_its_image_holds(name):
    accuracy = matching_accuracy(name, ENCODER, epochs=40, batch_size=100, lr=5e-3, tokens=True)
    assert min(accuracy) > LEARNS, accuracy
