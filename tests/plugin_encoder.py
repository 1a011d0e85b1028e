"""A tiny encoder in the ``python:`` form, as a user would plug in any other library."""

import torch
from torch import nn
from torchvision import transforms

DIM = 8
TEXT_LENGTH = 32


def text_bytes(texts: list[str]) -> torch.Tensor:
    """Each caption as its first bytes (a module-level function, so DataLoader workers pickle it)."""
    rows = [list(t.encode()[:TEXT_LENGTH].ljust(TEXT_LENGTH, b"\0")) for t in texts]
    return torch.tensor(rows, dtype=torch.long)


def build(modality: str, pretrained, checkpoint) -> dict:
    if modality == "image":
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, DIM))
        prepare = transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor()])
    else:
        model = nn.EmbeddingBag(256, DIM)
        prepare = text_bytes
    if checkpoint:
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
    return {"model": model, "prepare": prepare, "dim": DIM}


def incomplete(modality: str, pretrained, checkpoint) -> dict:
    """Breaks the contract (no ``dim``), to test the error message."""
    return {"model": nn.Identity(), "prepare": text_bytes}
