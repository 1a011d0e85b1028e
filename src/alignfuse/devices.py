"""The torch device a job runs on, chosen from a config or CLI value."""

from __future__ import annotations

import torch

from alignfuse.errors import AlignfuseError


def pick_device(device: str) -> torch.device:
    """``auto`` takes CUDA, then Apple's MPS, then the CPU; a named one must be available."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise AlignfuseError(
            f"device '{device}': not a torch device; use auto, cpu, cuda or mps"
        ) from err
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if not available.get(chosen.type, lambda: True)():
        raise AlignfuseError(f"device '{device}': not available on this machine; use auto or cpu")
    return chosen


def describe(device: torch.device) -> str:
    """The device as results record it: the GPU's model name, else the device type."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
