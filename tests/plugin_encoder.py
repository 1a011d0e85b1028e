"""A tiny encoder in the ``python:`` form, as a user would plug in any other library."""

import numpy as np
import torch
from PIL import Image
from torch import nn

DIM = 8
TEXT_LENGTH = 32


def text_bytes(texts: list[str]) -> torch.Tensor:
    """Each caption as its first bytes (a module-level function, so DataLoader workers pickle it)."""
    rows = [list(t.encode()[:TEXT_LENGTH].ljust(TEXT_LENGTH, b"\0")) for t in texts]
    return torch.tensor(rows, dtype=torch.long)


def image_pixels(image: Image.Image) -> torch.Tensor:
    """The image at 16x16 as a 3x16x16 tensor in [0, 1] (PIL and torch only: a plug-in need not
    import torchvision, which takes seconds)."""
    pixels = np.asarray(image.resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32)
    return torch.from_numpy(pixels / 255).permute(2, 0, 1)


def build(modality: str, pretrained, checkpoint) -> dict:
    if modality == "image":
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, DIM))
        prepare = image_pixels
    else:
        model = nn.EmbeddingBag(256, DIM)
        prepare = text_bytes
    if checkpoint:
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
    return {"model": model, "prepare": prepare, "dim": DIM}


def incomplete(modality: str, pretrained, checkpoint) -> dict:
    """Breaks the contract (no ``dim``), to test the error message."""
    return {"model": nn.Identity(), "prepare": text_bytes}


def build_with_tokens(modality: str, pretrained, checkpoint) -> dict:
    """``build`` with token sequences: two tokens per image, a caption's bytes as its tokens."""
    fields = build(modality, pretrained, checkpoint)
    model = fields["model"]
    if modality == "image":

        def tokens(batch):
            pooled = model(batch)
            return pooled, torch.stack([pooled, -pooled], dim=1), torch.full((len(batch),), 2)

    else:

        def tokens(batch):
            return model(batch), model.weight[batch], (batch != 0).sum(dim=1).clamp(min=1)

    return {**fields, "tokens": tokens, "token_dim": DIM, "token_description": "test tokens"}


def build_from_mapping(modality: str, pretrained, checkpoint) -> dict:
    """``build`` whose text side takes a mapping of tensors, as a Hugging Face tokenizer gives."""
    fields = build(modality, pretrained, checkpoint)
    if modality == "image":
        return fields
    return {**fields, "model": MappingText(fields["model"]), "prepare": text_mapping}


def text_mapping(texts: list[str]) -> dict:
    ids = text_bytes(texts)
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


class MappingText(nn.Module):
    """Reads ``input_ids`` and ``attention_mask`` from a dict batch."""

    def __init__(self, bag: nn.EmbeddingBag):
        super().__init__()
        self.bag = bag

    def forward(self, batch: dict) -> torch.Tensor:
        return self.bag(batch["input_ids"]) * batch["attention_mask"].float().mean(1, keepdim=True)
