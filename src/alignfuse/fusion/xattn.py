"""Cross-attention fusion: tokens of one modality attend to tokens of the other.

Attention scores are bilinear in the two modalities (q_i . k_j = x_i^T W_q^T W_k y_j), the
O(d_image * d_text) capacity the paper contrasts with concatenation. The tokens come from one of
two sources (``token_source``): ``pseudo`` cuts each pooled vector into k chunks (see
:mod:`alignfuse.fusion.layers`) so that the softmax has keys to choose between; ``encoder`` reads
the encoders' own sequences (CLIP patch and caption tokens, a ResNet's 7x7 grid), ragged and
masked. The registry binds one direction per method name: ``xattn_txt2img``, ``xattn_img2txt``,
``xattn_bidir``.
"""

from __future__ import annotations

import torch
from torch import nn

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.head import FusionHead
from alignfuse.fusion.layers import (
    CrossAttentionBlock,
    Dropout,
    PseudoTokens,
    attention_entropy,
    masked_mean,
)

DIRECTIONS = ("txt2img", "img2txt", "bidir")
TOKEN_SOURCES = ("pseudo", "encoder")


class CrossAttentionHead(FusionHead):
    """Tokens per modality -> cross-attention block(s) -> mean over queries -> MLP -> 2.

    ``direction``: "txt2img" (text queries image tokens, as in BLIP), "img2txt" (image queries
    text) or "bidir" (both, each pooled, pooled vectors concatenated). Each block is post-norm:
    residual + LayerNorm after attention and after the FFN. ``token_source``: "pseudo" takes
    pooled vectors [B, d] and cuts them into ``tokens`` chunks with position embeddings;
    "encoder" takes sequences [B, L, d] with masks [B, L] and projects each token to ``dim``
    (encoder tokens already carry their position, and ``tokens`` is unused). ``token_map``
    ("mixed", the default, or "chunks"; pseudo tokens only) and ``norm`` ("post" or "pre") are
    described in :mod:`alignfuse.fusion.layers`; the README's "Input scaling" has the ablation
    behind the defaults. The fused representation is the pooled block output(s), concatenated
    for "bidir": the input of the MLP classifier.
    """

    def __init__(
        self,
        d_image: int,
        d_text: int,
        tokens: int = 8,
        dim: int = 256,
        heads: int = 4,
        ffn: int = 512,
        dropout: float = 0.1,
        direction: str = "txt2img",
        token_source: str = "pseudo",
        token_map: str = "mixed",
        norm: str = "post",
    ):
        super().__init__()
        if direction not in DIRECTIONS:
            raise AlignfuseError(
                f"cross-attention: unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}"
            )
        if token_source not in TOKEN_SOURCES:
            raise AlignfuseError(
                f"cross-attention: unknown token_source {token_source!r}; "
                f"use one of {', '.join(TOKEN_SOURCES)}"
            )
        self.direction = direction
        self.token_source = token_source
        if token_source == "pseudo":
            self.pseudo_tokens = tokens
            self.image_tokens = PseudoTokens(d_image, tokens, dim, token_map)
            self.text_tokens = PseudoTokens(d_text, tokens, dim, token_map)
        else:
            self.pseudo_tokens = None
            self.image_tokens = nn.Linear(d_image, dim)
            self.text_tokens = nn.Linear(d_text, dim)
        self.blocks = nn.ModuleDict(
            {
                name: CrossAttentionBlock(dim, heads, ffn, dropout, norm)
                for name in DIRECTIONS[:2]
                if direction in (name, "bidir")
            }
        )
        width = dim * len(self.blocks)
        self.classifier = nn.Sequential(
            nn.Linear(width, dim), nn.ReLU(), Dropout(dropout), nn.Linear(dim, 2)
        )

    @staticmethod
    def with_width(config: dict, width: int) -> dict:
        """param_match: ``dim`` = width x heads (heads must divide it); ``ffn`` keeps its ratio to dim."""
        dim = width * config["heads"]
        return {**config, "dim": dim, "ffn": max(1, round(dim * config["ffn"] / config["dim"]))}

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        return_entropy: bool = False,
    ):
        """Logits [B, 2] of pooled [B, d] or token [B, L, d] inputs (masks: real tokens).

        With ``return_entropy``, also each pair's mean attention entropy [B] and its ceiling, the
        mean log number of keys [B] (both in nats, averaged over the blocks): a head whose
        entropy sits at the ceiling attends uniformly and ignores its queries.
        """
        return self.combine(
            self.encode_image(image), self.encode_text(text), image_mask, text_mask, return_entropy
        )

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """The image's tokens [.., L, dim]: its own computation, shared by every pair it is in."""
        return self.image_tokens(image)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_tokens(text)

    def fused(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.join(self.encode_image(image), self.encode_text(text), image_mask, text_mask)

    def join(
        self,
        img: torch.Tensor,
        txt: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.attend(img, txt, image_mask, text_mask)[0]

    def readout(self, fused: torch.Tensor) -> torch.Tensor:
        return self.classifier(fused)

    def attend(
        self,
        img: torch.Tensor,
        txt: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pooled block outputs concatenated (the fused representation), and the mean
        attention entropy and its ceiling (see :meth:`forward`)."""
        sides = {
            "txt2img": (txt, text_mask, img, image_mask),
            "img2txt": (img, image_mask, txt, text_mask),
        }
        pooled, entropy, ceiling = [], [], []
        for name, block in self.blocks.items():
            queries, query_mask, keys, key_mask = sides[name]
            x, weights = block(queries, keys, key_mask, return_weights=True)
            pooled.append(masked_mean(x, query_mask))
            entropy.append(attention_entropy(weights, query_mask))
            keys_per_pair = (
                key_mask.sum(dim=-1).to(x.dtype)
                if key_mask is not None
                else torch.full(x.shape[:-2], keys.shape[-2], dtype=x.dtype, device=x.device)
            )
            ceiling.append(keys_per_pair.log())
        return (
            torch.cat(pooled, dim=-1),
            torch.stack(entropy).mean(dim=0),
            torch.stack(ceiling).mean(dim=0),
        )

    def combine(
        self,
        img: torch.Tensor,
        txt: torch.Tensor,
        image_mask: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        return_entropy: bool = False,
    ):
        """Logits from both sides' tokens (see :meth:`forward`)."""
        fused, entropy, ceiling = self.attend(img, txt, image_mask, text_mask)
        logits = self.readout(fused)
        return (logits, entropy, ceiling) if return_entropy else logits


class DirectedCrossAttentionHead(CrossAttentionHead):
    """A cross-attention head whose direction is fixed by its class (one per registry name)."""

    DIRECTION = "txt2img"

    def __init__(
        self,
        d_image: int,
        d_text: int,
        tokens: int = 8,
        dim: int = 256,
        heads: int = 4,
        ffn: int = 512,
        dropout: float = 0.1,
        token_source: str = "pseudo",
        token_map: str = "mixed",
        norm: str = "post",
    ):
        super().__init__(
            d_image,
            d_text,
            tokens,
            dim,
            heads,
            ffn,
            dropout,
            self.DIRECTION,
            token_source,
            token_map,
            norm,
        )


class TextToImageHead(DirectedCrossAttentionHead):
    """``xattn_txt2img``: text tokens query image tokens (BLIP's direction)."""

    DIRECTION = "txt2img"


class ImageToTextHead(DirectedCrossAttentionHead):
    """``xattn_img2txt``: image tokens query text tokens."""

    DIRECTION = "img2txt"


class BidirectionalHead(DirectedCrossAttentionHead):
    """``xattn_bidir``: both directions, each pooled over its queries; the two are concatenated."""

    DIRECTION = "bidir"
