"""Weighted-sum fusion: both modalities projected to one width and added with per-modality weights.

``weighted_sum`` uses fixed weights from the config (a task-driven priority); ``gated_sum`` has a
lightweight gate network compute per-pair weights. Both are additive fusion, like concatenation:
the modalities meet in the MLP classifier after the sum (see :class:`SumHead`).
"""

from __future__ import annotations

import torch
from torch import nn

from alignfuse.errors import AlignfuseError
from alignfuse.fusion.head import FusionHead
from alignfuse.fusion.layers import mlp

GATES = ("sigmoid", "softmax")


def projection(d: int, dim: int) -> nn.Sequential:
    """Linear to the common width, then LayerNorm without gain or bias (unit RMS per sample)."""
    return nn.Sequential(nn.Linear(d, dim), nn.LayerNorm(dim, elementwise_affine=False))


class SumHead(FusionHead):
    """p_v = LN(A v), p_t = LN(B t); fused = w_v p_v + w_t p_t; MLP(fused) -> 2 logits.

    How a sum still lets the classifier compare the modalities (matching needs it): the fused
    vector is additive, f(v) + g(t), like the pre-activation of concatenation's first layer
    (W_v v + W_t t), and the classifier is an MLP, not a linear layer, so its ReLU units compare
    the modalities just as concatenation's hidden layers do (with equal weights, B = -A makes the
    sum vanish exactly when t = v). A sum followed by a linear classifier could not: its logit
    would be additive in v and t, which is late fusion. The projections end in a LayerNorm
    without gain, so both vectors have unit RMS and the weights set the modalities' relative
    scale in the sum; a learned projection cannot undo a weight by rescaling itself. No
    elementwise product p_v * p_t enters the sum: multiplicative (bilinear) fusion is a family of
    its own (``bilinear``, ``xattn_*``), and this one stays at the additive end of the comparison.
    The fused representation is the weighted sum, the input of the MLP classifier.
    """

    def __init__(self, d_image: int, d_text: int, dim: int, hidden, dropout: float):
        super().__init__()
        self.image_proj = projection(d_image, dim)
        self.text_proj = projection(d_text, dim)
        self.classifier = mlp(dim, hidden, 2, dropout)

    @staticmethod
    def with_width(config: dict, width: int) -> dict:
        """param_match: the common width ``dim`` is ``width``; the classifier keeps its widths."""
        return {**config, "dim": width}

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_proj(image)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_proj(text)

    def readout(self, fused: torch.Tensor) -> torch.Tensor:
        return self.classifier(fused)


class WeightedSumHead(SumHead):
    """``weighted_sum``: fixed weights ``[w_image, w_text]`` from the config.

    With the default [0.5, 0.5] the fused vector is the average of the two projections.
    At 512/512 features and the defaults (dim 256, hidden [128]) it has 295,810 parameters.
    """

    def __init__(
        self,
        d_image: int,
        d_text: int,
        dim: int = 256,
        hidden=(128,),
        weights=(0.5, 0.5),
        dropout: float = 0.1,
    ):
        super().__init__(d_image, d_text, dim, hidden, dropout)
        if len(weights) != 2 or min(weights) < 0 or sum(weights) <= 0:
            raise AlignfuseError(
                f"weighted_sum: weights {list(weights)} must be two non-negative numbers "
                "[w_image, w_text], not both zero"
            )
        self.fixed = tuple(float(w) for w in weights)

    def join(self, p_image: torch.Tensor, p_text: torch.Tensor) -> torch.Tensor:
        w_image, w_text = self.fixed
        return w_image * p_image + w_text * p_text


class GatedSumHead(SumHead):
    """``gated_sum``: a gate MLP on [p_v; p_t] gives each pair its own modality weights.

    gate(p) = Linear(2 dim -> gate_hidden) -> ReLU -> Linear(-> 2), then ``gate``: "sigmoid"
    (each weight in (0, 1) on its own) or "softmax" (the weights sum to 1, a convex mix). The
    gate sees both modalities, so the weights depend on the pair; it is the head's only
    multiplicative path between the modalities, two numbers wide. At 512/512 features and the
    defaults (dim 256, gate_hidden 64, hidden [128]) it has 328,772 parameters.
    """

    def __init__(
        self,
        d_image: int,
        d_text: int,
        dim: int = 256,
        hidden=(128,),
        gate: str = "sigmoid",
        gate_hidden: int = 64,
        dropout: float = 0.1,
    ):
        super().__init__(d_image, d_text, dim, hidden, dropout)
        if gate not in GATES:
            raise AlignfuseError(f"gated_sum: unknown gate {gate!r}; use one of {', '.join(GATES)}")
        self.gate = gate
        self.gate_net = nn.Sequential(
            nn.Linear(2 * dim, gate_hidden), nn.ReLU(), nn.Linear(gate_hidden, 2)
        )

    def weights(self, p_image: torch.Tensor, p_text: torch.Tensor) -> torch.Tensor:
        """Per-pair modality weights [..., 2] (image, text)."""
        logits = self.gate_net(torch.cat([p_image, p_text], dim=-1))
        return logits.sigmoid() if self.gate == "sigmoid" else logits.softmax(dim=-1)

    def join(self, p_image: torch.Tensor, p_text: torch.Tensor) -> torch.Tensor:
        w = self.weights(p_image, p_text)
        return w[..., :1] * p_image + w[..., 1:] * p_text
