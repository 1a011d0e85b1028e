"""Unimodal baselines: an MLP on the image alone (``image_only``) or the caption alone (``text_only``).

The matching pairs are built so that every image and every caption occurs equally often with
either label, so a head that sees one modality cannot beat chance except by overfitting: these
heads measure how honest the chance level of a study is.
"""

from __future__ import annotations

import torch

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.head import FusionHead
from alignfuse.fusion.layers import mlp, scaled_widths


class UnimodalHead(FusionHead):
    """MLP d -> hidden... -> 2 on one modality; the other input is ignored.

    Its fused representation is the MLP's last hidden layer (as for concatenation), computed from
    its one modality alone, so it does not change when the other side of the pairs is shuffled.
    At 512-d features with the default hidden [256, 128] it has 164,482 parameters.
    """

    MODALITY = "image"

    def __init__(self, d_image: int, d_text: int, hidden=(256, 128), dropout: float = 0.1):
        super().__init__()
        if not hidden:
            raise AlignfuseError(f"{self.MODALITY}_only: hidden is empty; give at least one width")
        self.mlp = mlp(d_image if self.MODALITY == "image" else d_text, hidden, 2, dropout)

    @staticmethod
    def with_width(config: dict, width: int) -> dict:
        """param_match: the first hidden width is ``width``; later ones keep their ratio to it."""
        return {**config, "hidden": scaled_widths(config["hidden"], width)}

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.mlp[:-1](image) if self.MODALITY == "image" else image[..., :0]

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.mlp[:-1](text) if self.MODALITY == "text" else text[..., :0]

    def join(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return image if self.MODALITY == "image" else text

    def readout(self, fused: torch.Tensor) -> torch.Tensor:
        return self.mlp[-1](fused)


class ImageOnlyHead(UnimodalHead):
    """``image_only``: sees the image features only."""

    MODALITY = "image"


class TextOnlyHead(UnimodalHead):
    """``text_only``: sees the caption features only."""

    MODALITY = "text"
