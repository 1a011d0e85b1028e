"""Late fusion: one head per modality, their logits combined; a baseline that never sees the pair.

The combined logit is additive, f(image) + g(text), so it cannot express whether a caption
matches an image. The matching pairs are built so that every image and every caption occurs
equally often with either label, so neither f nor g carries signal and late fusion sits near
chance; that is the point of including it: the gap between a head and late fusion measures how
much of its accuracy comes from the modalities interacting.
"""

from __future__ import annotations

import torch
from torch import nn

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.head import FusionHead
from alignfuse.fusion.layers import mlp, scaled_widths

COMBINES = ("sum", "learned")


class LateFusionHead(FusionHead):
    """MLP(image) -> 2 logits and MLP(text) -> 2 logits, combined by ``combine``.

    "sum": l_image + l_text; "learned": a_image l_image + a_text l_text with learned scalars
    (initialised to 1). Both combinations stay additive in the modalities: a nonlinear combiner
    of the per-modality logits would let the two-number summaries interact and would no longer
    be late fusion. Its fused representation is what the combination reads, both towers' logits
    side by side [l_image; l_text] (4 wide), so it holds both modalities, each in its own half. At 512/512 features with the default hidden [256, 128] per modality it has
    328,964 parameters (+2 with "learned").
    """

    def __init__(
        self,
        d_image: int,
        d_text: int,
        hidden=(256, 128),
        combine: str = "sum",
        dropout: float = 0.1,
    ):
        super().__init__()
        if combine not in COMBINES:
            raise AlignfuseError(
                f"late: unknown combine {combine!r}; use one of {', '.join(COMBINES)}"
            )
        self.image_head = mlp(d_image, hidden, 2, dropout)
        self.text_head = mlp(d_text, hidden, 2, dropout)
        self.mix = nn.Parameter(torch.ones(2)) if combine == "learned" else None

    @staticmethod
    def with_width(config: dict, width: int) -> dict:
        """param_match: both heads' first hidden width is ``width``; later ones keep their ratio."""
        return {**config, "hidden": scaled_widths(config["hidden"], width)}

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_head(image)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_head(text)

    def join(self, l_image: torch.Tensor, l_text: torch.Tensor) -> torch.Tensor:
        return torch.cat([l_image, l_text], dim=-1)

    def readout(self, fused: torch.Tensor) -> torch.Tensor:
        l_image, l_text = fused[..., :2], fused[..., 2:]
        if self.mix is None:
            return l_image + l_text
        return self.mix[0] * l_image + self.mix[1] * l_text
