"""Building blocks shared by fusion heads: an MLP, pseudo-tokens and a cross-attention block.

Attention over a single key is degenerate (its softmax weight is always 1, so the output ignores
the query), so a pooled vector is cut into k chunks that act as tokens; encoders' own token
sequences (ragged, with masks) are the alternative. Attention is written with einsum so that a
head runs under ``torch.func.vmap``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from alignfuse.errors import AlignfuseError


class Dropout(nn.Dropout):
    """Dropout whose mask can be given from outside, so each seed's masks come from its own stream.

    A seed ensemble (``alignfuse.train.ensemble``) trains several seeds under vmap; masks drawn
    there from the global generator would depend on which other seeds train alongside. It draws
    each seed's masks from that seed's generator instead and passes them in as the ``mask``
    buffer (scaled keep-masks, at least as large as the input in every dimension; the input's
    leading block is used). Without a mask this is ``nn.Dropout``.
    """

    def __init__(self, p: float = 0.5):
        super().__init__(p)
        self.register_buffer("mask", None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.mask is None:
            return super().forward(x)
        if any(n > m for n, m in zip(x.shape, self.mask.shape, strict=True)):
            raise ValueError(
                f"dropout mask {tuple(self.mask.shape)} is smaller than its input "
                f"{tuple(x.shape)}; measure the masks on the longest inputs"
            )
        return x * self.mask[tuple(slice(0, n) for n in x.shape)]


def mlp(d_in: int, hidden, d_out: int, dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout per hidden width, then a final Linear to ``d_out``.

    With no hidden widths it is one Linear layer.
    """
    layers, width = [], d_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


def scaled_widths(hidden, width: int) -> list[int]:
    """``hidden`` rescaled so that its first width is ``width``, the others keeping their ratio.

    [256, 128] at width 100 is [100, 50]; used to size MLP heads by one number (param_match).
    """
    hidden = list(hidden)
    if not hidden:
        return []
    return [width] + [max(1, round(width * h / hidden[0])) for h in hidden[1:]]


def split_tokens(x: torch.Tensor, k: int) -> torch.Tensor:
    """Cut [..., d] into [..., k, ceil(d/k)] chunks in order, zero-padding the last ones."""
    d = x.shape[-1]
    chunk = math.ceil(d / k)
    x = F.pad(x, (0, k * chunk - d))
    return x.reshape(*x.shape[:-1], k, chunk)


def merge_tokens(tokens: torch.Tensor, d: int) -> torch.Tensor:
    """Inverse of :func:`split_tokens`: [..., k, c] back to the first d values [..., d]."""
    return tokens.flatten(-2)[..., :d]


TOKEN_MAPS = ("chunks", "mixed")
NORMS = ("post", "pre")


class PseudoTokens(nn.Module):
    """A pooled vector as k tokens of width ``dim``: chunks, one shared projection, positions.

    ``token_map`` says what a chunk holds: "chunks" cuts the vector's own coordinates in order;
    "mixed" first applies a learned map of the whole vector (d -> k chunks), so every token can
    draw on every coordinate. The position embedding tells the attention which chunk a token came
    from; without it, chunks that hold different features would be interchangeable.
    """

    def __init__(self, d: int, tokens: int, dim: int, token_map: str = "chunks"):
        super().__init__()
        if token_map not in TOKEN_MAPS:
            raise AlignfuseError(
                f"cross-attention: unknown token_map {token_map!r}; use one of {', '.join(TOKEN_MAPS)}"
            )
        self.tokens = tokens
        chunk = math.ceil(d / tokens)
        self.mix = nn.Linear(d, tokens * chunk) if token_map == "mixed" else None
        self.proj = nn.Linear(chunk, dim)
        self.pos = nn.Parameter(torch.randn(tokens, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is not None:
            x = self.mix(x)
        return self.proj(split_tokens(x, self.tokens)) + self.pos


class CrossAttentionBlock(nn.Module):
    """Transformer block whose queries attend to another sequence's keys and values.

    ``norm="post"``: x = LN(q + Drop(MHA(q, kv))); x = LN(x + Drop(FFN(x))). ``norm="pre"``:
    x = q + Drop(MHA(LN(q), LN(kv))); x = x + Drop(FFN(LN(x))); then a final LN. Dropout acts on
    the sublayer outputs.
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float = 0.1, norm: str = "post"):
        super().__init__()
        if dim % heads:
            raise AlignfuseError(
                f"cross-attention: dim={dim} is not divisible by heads={heads}; "
                "choose dim and heads in the method's config so that heads divides dim"
            )
        if norm not in NORMS:
            raise AlignfuseError(
                f"cross-attention: unknown norm {norm!r}; use one of {', '.join(NORMS)}"
            )
        self.heads = heads
        self.pre_norm = norm == "pre"
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn), nn.ReLU(), Dropout(dropout), nn.Linear(ffn, dim)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.drop = Dropout(dropout)
        if self.pre_norm:
            self.norm_context = nn.LayerNorm(dim)
            self.norm_out = nn.LayerNorm(dim)

    def attention(
        self, queries: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-head scaled dot-product attention: [.., Lq, d], [.., Lk, d] -> [.., Lq, d], and
        the attention weights [.., h, Lq, Lk].

        ``mask`` [.., Lk] marks the real keys; padded ones get no attention weight.
        """
        q, k, v = self.q(queries), self.k(context), self.v(context)
        q, k, v = (t.unflatten(-1, (self.heads, -1)) for t in (q, k, v))  # [..., L, h, dh]
        scores = torch.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask[..., None, None, :], -math.inf)
        weights = scores.softmax(dim=-1)
        y = torch.einsum("...hqk,...khd->...qhd", weights, v)
        return self.out(y.flatten(-2)), weights

    def forward(
        self,
        queries: torch.Tensor,
        context: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ):
        """Queries [.., Lq, d] updated from ``context`` [.., Lk, d] (real keys where ``mask``);
        with ``return_weights`` also the attention weights [.., h, Lq, Lk]."""
        if self.pre_norm:
            attended, weights = self.attention(
                self.norm1(queries), self.norm_context(context), mask
            )
            x = queries + self.drop(attended)
            x = self.norm_out(x + self.drop(self.ffn(self.norm2(x))))
        else:
            attended, weights = self.attention(queries, context, mask)
            x = self.norm1(queries + self.drop(attended))
            x = self.norm2(x + self.drop(self.ffn(x)))
        return (x, weights) if return_weights else x


def attention_entropy(weights: torch.Tensor, query_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean entropy (nats) of the attention distributions [.., h, Lq, Lk] over heads and real
    queries: [..]. A uniform softmax over n keys has log n; a query that picks one key, 0."""
    per_query = torch.special.entr(weights).sum(dim=-1).mean(dim=-2)  # [.., Lq]
    return masked_mean(per_query[..., None], query_mask)[..., 0]


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of [.., L, d] over L, counting only positions where ``mask`` [.., L] (all if None)."""
    if mask is None:
        return x.mean(dim=-2)
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(dim=-2) / weights.sum(dim=-2)
