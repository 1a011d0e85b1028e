"""Pseudo-token split and the cross-attention block."""

from __future__ import annotations

import math

import pytest
import torch

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.layers import (
    CrossAttentionBlock,
    PseudoTokens,
    attention_entropy,
    masked_mean,
    merge_tokens,
    split_tokens,
)


def block(**kwargs) -> CrossAttentionBlock:
    torch.manual_seed(0)
    return CrossAttentionBlock(
        **{"dim": 16, "heads": 4, "ffn": 32, "dropout": 0.1, **kwargs}
    ).eval()


def test_split_tokens_zero_pads_to_k_equal_chunks():
    x = torch.arange(1.0, 11.0).expand(3, 10)
    tokens = split_tokens(x, 4)
    assert tokens.shape == (3, 4, 3)
    assert tokens[0, 0].tolist() == [1.0, 2.0, 3.0]
    assert tokens[0, 3].tolist() == [10.0, 0.0, 0.0]


@pytest.mark.parametrize(("d", "k"), [(512, 8), (10, 4), (5, 8), (7, 1)])
def test_split_then_merge_round_trips(d, k):
    x = torch.randn(2, 5, d)
    assert torch.equal(merge_tokens(split_tokens(x, k), d), x)


def test_pseudo_tokens_carry_chunk_identity():
    torch.manual_seed(0)
    embed = PseudoTokens(d=8, tokens=4, dim=16)
    out = embed(torch.zeros(2, 8))
    assert out.shape == (2, 4, 16)
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_block_maps_queries_to_queries_shape():
    assert block()(torch.randn(3, 5, 16), torch.randn(3, 7, 16)).shape == (3, 5, 16)


def test_block_is_invariant_to_permuting_keys_and_values():
    queries, context = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    perm = torch.randperm(7)
    torch.testing.assert_close(block()(queries, context), block()(queries, context[:, perm]))


def test_masked_keys_get_no_attention_whatever_their_values():
    queries, context = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] * 2 + [False] * 5])
    out = block()(queries, context, mask)
    noisy = context.clone()
    noisy[~mask] = 1e3 * torch.randn(int((~mask).sum()), 16)
    torch.testing.assert_close(block()(queries, noisy, mask), out)
    torch.testing.assert_close(block()(queries[1:2], context[1:2, :4]), out[1:2])  # = truncated


def test_masked_mean_counts_only_real_positions():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(x, torch.tensor([[True, True, False]])).item() == 2.0
    assert masked_mean(x, None).item() == pytest.approx(104 / 3)


def test_block_is_equivariant_to_permuting_queries():
    queries, context = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    perm = torch.randperm(5)
    torch.testing.assert_close(
        block()(queries, context)[:, perm], block()(queries[:, perm], context)
    )


def test_attention_output_depends_on_the_query_when_there_are_several_keys():
    def attend(queries, context):
        return block().attention(queries, context)[0]

    context = torch.randn(1, 4, 16)
    assert not torch.allclose(
        attend(torch.randn(1, 1, 16), context), attend(torch.randn(1, 1, 16), context)
    )


def test_with_a_single_key_attention_ignores_the_query():
    def attend(queries, context):
        return block().attention(queries, context)[0]

    context = torch.randn(1, 1, 16)
    torch.testing.assert_close(
        attend(torch.randn(1, 1, 16), context), attend(torch.randn(1, 1, 16), context)
    )


def test_block_runs_under_vmap_with_per_sample_randomness():
    module = block().train()
    out = torch.vmap(module, randomness="different")(
        torch.randn(2, 3, 5, 16), torch.randn(2, 3, 7, 16)
    )
    assert out.shape == (2, 3, 5, 16)


def test_dim_not_divisible_by_heads_is_a_config_error():
    with pytest.raises(AlignfuseError, match="heads"):
        CrossAttentionBlock(dim=10, heads=4, ffn=8)


def test_attention_entropy_is_log_keys_when_uniform_and_zero_when_one_key_is_picked():
    uniform = torch.full((2, 4, 3, 5), 1 / 5)  # [batch, heads, queries, keys]
    torch.testing.assert_close(attention_entropy(uniform, None), torch.full((2,), math.log(5)))
    picked = torch.zeros(2, 4, 3, 5)
    picked[..., 2] = 1.0
    torch.testing.assert_close(attention_entropy(picked, None), torch.zeros(2))
    mixed = torch.cat([uniform[0], picked[0]], dim=1)[None]  # queries: 3 uniform, 3 picked
    mask = torch.tensor([[True, True, True, False, False, False]])
    torch.testing.assert_close(attention_entropy(mixed, mask), torch.tensor([math.log(5)]))


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_both_block_norms_attend_and_keep_the_width(norm):
    layer = CrossAttentionBlock(16, 4, 32, dropout=0.0, norm=norm)
    out, weights = layer(torch.randn(2, 3, 16), torch.randn(2, 5, 16), return_weights=True)
    assert out.shape == (2, 3, 16) and weights.shape == (2, 4, 3, 5)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 4, 3))


def test_mixed_pseudo_tokens_let_every_token_see_every_coordinate():
    torch.manual_seed(0)
    chunks, mixed = PseudoTokens(16, 4, 8, "chunks"), PseudoTokens(16, 4, 8, "mixed")
    x = torch.randn(1, 16)
    nudged = x.clone()
    nudged[0, 0] += 1.0  # a coordinate of the first chunk only
    assert torch.equal(chunks(x)[0, 1:], chunks(nudged)[0, 1:])
    assert not torch.allclose(mixed(x)[0, 1:], mixed(nudged)[0, 1:])
