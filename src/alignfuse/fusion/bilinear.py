"""Low-rank bilinear fusion: the Hadamard product of per-modality projections (MLB-style pooling).

z = (U v + a) * (W t + b) holds r products of an image projection with a text projection, so a
linear read-out of z is a rank-r bilinear form v^T M t (plus linear terms from the biases): the
multiplicative interaction that cross-attention's scores have, with r (d_image + d_text)
parameters instead of d_image * d_text.
"""

from __future__ import annotations

import torch
from torch import nn

from alignfuse.fusion.head import FusionHead
from alignfuse.fusion.layers import Dropout, mlp


class LowRankBilinearHead(FusionHead):
    """z = (U v + a) * (W t + b) of width ``rank`` -> Dropout -> MLP(hidden...) -> 2.

    Its fused representation is the product z (after dropout, which is the identity in
    evaluation): the input of the MLP classifier.
    ``hidden: []`` makes the classifier linear, so the logits are exactly rank-r bilinear forms.
    At 512/512 features with the defaults (rank 256, hidden [128]) it has 295,810 parameters.
    """

    def __init__(
        self, d_image: int, d_text: int, rank: int = 256, hidden=(128,), dropout: float = 0.1
    ):
        super().__init__()
        self.image_proj = nn.Linear(d_image, rank)
        self.text_proj = nn.Linear(d_text, rank)
        self.drop = Dropout(dropout)
        self.classifier = mlp(rank, hidden, 2, dropout)

    @staticmethod
    def with_width(config: dict, width: int) -> dict:
        """param_match: the rank is ``width``; the classifier keeps its hidden widths."""
        return {**config, "rank": width}

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_proj(image)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_proj(text)

    def join(self, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.drop(u * w)

    def readout(self, fused: torch.Tensor) -> torch.Tensor:
        return self.classifier(fused)
