"""Concatenation fusion: an MLP on [image; text], the paper's baseline head.

Its first layer is linear in each modality separately, so it needs O(d_image + d_text) samples;
any interaction between the modalities has to be built by the hidden layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.head import FusionHead
from alignfuse.fusion.layers import mlp, scaled_widths


class ConcatHead(FusionHead):
    """MLP (d_image + d_text) -> hidden... -> 2 with ReLU and dropout after each hidden layer.

    Its fused representation is the last hidden layer: the modalities first meet in the first
    layer's sum W_v v + W_t t and interact through the hidden layers, so the last of them is
    where the fusion ends and the final linear layer (the readout) begins. With 512/512 features
    and the default hidden=(256, 128) it has 295,554 parameters, the paper's 1024-256-128-2 head.
    """

    def __init__(self, d_image: int, d_text: int, hidden=(256, 128), dropout: float = 0.1):
        super().__init__()
        if not hidden:
            raise AlignfuseError("concat: hidden is empty; give at least one hidden width")
        self.d_image = d_image
        self.mlp = mlp(d_image + d_text, hidden, 2, dropout)

    @staticmethod
    def with_width(config: dict, width: int) -> dict:
        """param_match: the first hidden width is ``width``; later ones keep their ratio to it."""
        return {**config, "hidden": scaled_widths(config["hidden"], width)}

    def fused(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.mlp[:-1](torch.cat([image, text], dim=-1))

    def readout(self, fused: torch.Tensor) -> torch.Tensor:
        return self.mlp[-1](fused)

    # The first layer is W [v; t] = W_v v + W_t t: evaluation computes each part once per distinct
    # image and caption and adds them per pair (see train.ensemble.SeedEnsemble.predict).
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return F.linear(image, self.mlp[0].weight[:, : self.d_image])

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        return F.linear(text, self.mlp[0].weight[:, self.d_image :], self.mlp[0].bias)

    def join(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.mlp[1:-1](image + text)
