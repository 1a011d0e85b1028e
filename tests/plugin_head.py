"""A fusion head of a study's own, written as docs/extending.md says, for the tests' studies.

The caption's query attends over tokens cut from the image (a small resampler): an attention head
that is not in the registry. On the Python path of Snakemake and its jobs through conftest's
``plugin_path``.
"""

import torch
from torch import nn

from alignfuse.fusion.head import FusionHead
from alignfuse.fusion.layers import Dropout


class TokenAttentionHead(FusionHead):
    """The image as ``tokens`` learned tokens of width ``dim``; the caption's query attends over
    them; an MLP reads the attended vector beside the query."""

    family = "attention"

    def __init__(self, d_image: int, d_text: int, tokens: int = 4, dim: int = 16, dropout=0.1):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.image_tokens = nn.Linear(d_image, tokens * dim)
        self.query = nn.Linear(d_text, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.hidden = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), Dropout(dropout))
        self.out = nn.Linear(dim, 2)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_tokens(image).unflatten(-1, (self.tokens, self.dim))

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.query(text)

    def join(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        scores = (self.key(image) @ text.unsqueeze(-1)).squeeze(-1) / self.dim**0.5
        attended = (scores.softmax(dim=-1).unsqueeze(-1) * self.value(image)).sum(dim=-2)
        return self.hidden(torch.cat([attended, text], dim=-1))

    def readout(self, fused: torch.Tensor) -> torch.Tensor:
        return self.out(fused)
