"""Input scaling of feature vectors, the same for every head of a study and recorded with each run.

Encoders emit features at very different scales (a CLIP caption embedding has norm ~1, a ResNet
image feature ~17): attention heads fed tiny inputs get near-zero scores, a uniform softmax that
ignores the query, and sit at chance. A comparison of fusion heads is fair only if every head sees
the same inputs, so scaling is a setting of the study, fitted on training rows only:

- ``none``: the features as cached;
- ``zscore``: per coordinate, minus its mean and over its standard deviation (rescales coordinates
  independently per modality, so matched image and text vectors no longer share a scale);
- ``scalar``: minus the per-coordinate mean, over one standard deviation for the whole modality
  (the RMS of the centred values): relative scales of coordinates are kept;
- ``l2``: each row (each token) divided by its norm and multiplied by sqrt(d): angles are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alignfuse.errors import AlignfuseError

SCALINGS = ("none", "zscore", "scalar", "l2")
EPS = 1e-6


@dataclass(frozen=True)
class Scaler:
    """x -> (x - shift) / scale, or rows to norm sqrt(d) for ``l2``; fitted by :func:`fit_scaler`."""

    kind: str
    shift: torch.Tensor | None = None  # [d]
    scale: torch.Tensor | None = None  # [d] or []

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """Scaled rows [..., d] in float32 (token values stay in their own dtype once scaled)."""
        x = values.float()
        if self.kind == "none":
            return x
        if self.kind == "l2":
            return x * (math.sqrt(x.shape[-1]) / x.norm(dim=-1, keepdim=True).clamp_min(EPS))
        return (x - self.shift) / self.scale


def fit_scaler(kind: str, rows: torch.Tensor) -> Scaler:
    """The scaler of ``kind`` fitted on ``rows`` [n, d] (training rows, or their tokens)."""
    if kind not in SCALINGS:
        raise AlignfuseError(f"features.scaling '{kind}': use one of {', '.join(SCALINGS)}")
    if kind in ("none", "l2"):
        return Scaler(kind)
    x = rows.double()
    mean = x.mean(dim=0)
    centred = x - mean
    if kind == "zscore":
        std = centred.pow(2).mean(dim=0).sqrt()
        std = torch.where(std > EPS * std.max().clamp_min(EPS), std, torch.ones_like(std))
    else:
        std = centred.pow(2).mean().sqrt().clamp_min(EPS)
    return Scaler(kind, mean.float(), std.float())
