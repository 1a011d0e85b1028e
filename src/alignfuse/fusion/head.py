"""What every fusion head is: per-modality codes, their join (the fused representation) and a readout.

Diagnostics (partial information decomposition clusters a head's fused view) must read the vector
where the head has joined the modalities, not a layer found by its position among the modules: a
late-fusion head's last linear layer belongs to its text tower, a gated sum's to its gate. So each
head names that vector by implementing :meth:`FusionHead.join` and :meth:`FusionHead.readout`, and
its forward pass is ``readout(fused(...))``, so the view diagnostics read cannot drift from what
the head classifies.
"""

from __future__ import annotations

import torch
from torch import nn


class FusionHead(nn.Module):
    """logits = readout(join(encode_image(image), encode_text(text))).

    ``encode_image``/``encode_text`` are each modality's own computation (shared by every pair an
    image or caption is in, which evaluation exploits); ``join`` meets them per pair and returns
    the fused representation [..., width]; ``readout`` maps it to the two logits. Heads whose
    per-pair forward is computed differently (concatenation runs one matmul on [image; text])
    override :meth:`fused` with the same mathematics.
    """

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def join(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The fused representation of the pairs whose codes are ``image`` and ``text``."""
        raise NotImplementedError

    def readout(self, fused: torch.Tensor) -> torch.Tensor:
        """The logits [..., 2] of a fused representation."""
        raise NotImplementedError

    def fused(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The fused representation of each pair: the input of :meth:`readout`."""
        return self.join(self.encode_image(image), self.encode_text(text))

    def combine(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Logits from both sides' codes (evaluation's per-pair step)."""
        return self.readout(self.join(image, text))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.readout(self.fused(image, text))
