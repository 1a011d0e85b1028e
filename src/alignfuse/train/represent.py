"""What a trained head does with its inputs, kept for the diagnostics stages.

Per seed, the best checkpoint's fused representation of every test pair (the input of the head's
final linear layer, what partial information decomposition clusters as a view of the head), kept
compactly as its leading principal components in float16; and the modality ablation: test
accuracy when one modality's features are shuffled across test pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn

from alignfuse.fusion.build import build_head
from alignfuse.train.ensemble import EVAL_PAIRS, SeedEnsemble
from alignfuse.train.splits import Split

COMPONENTS = 16  # principal components of the fused representation kept per seed
ABLATION_SEED = 3  # seeds the permutation of test pairs in the modality ablation


def last_linear(head: nn.Module) -> nn.Linear:
    """The head's final linear layer: its input is the fused representation."""
    return [m for m in head.modules() if isinstance(m, nn.Linear)][-1]


def seed_head(model: SeedEnsemble, position: int, d_image: int, d_text: int) -> nn.Module:
    """The head of the seed at ``position`` of the ensemble, in eval mode, with its weights."""
    head = build_head(model.head, d_image, d_text, model.hparams)
    weights = {k: v[position] for k, v in model.weights().items()}
    buffers = {k: v[position] for k, v in model.buffers.items()}
    head.load_state_dict({**weights, **buffers})
    return head.to(next(iter(weights.values())).device).eval()


@torch.no_grad()
def fused_representation(head: nn.Module, split: Split) -> np.ndarray:
    """The input of the head's final linear layer for every pair of the split [N, width]."""
    captured = []
    handle = last_linear(head).register_forward_pre_hook(
        lambda module, args: captured.append(args[0].float().cpu())
    )
    try:
        step = max(1, int(EVAL_PAIRS / split.tokens_per_pair))
        for i in range(0, len(split), step):
            index = torch.arange(i, min(i + step, len(split)), device=split.label.device)
            head(*split.inputs(index))
    finally:
        handle.remove()
    return torch.cat(captured).numpy()


def principal_components(x: np.ndarray, components: int = COMPONENTS) -> np.ndarray:
    """The rows' coordinates on their leading principal axes [N, components] (zero-padded when
    the representation is narrower)."""
    centred = x - x.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    z = centred @ axes[:components].T
    return np.pad(z, ((0, 0), (0, components - z.shape[1])))


def representations(model: SeedEnsemble, test: Split, seeds: list[int]) -> pd.DataFrame:
    """Per seed and test pair, the fused representation's leading components (float16)."""
    frames = []
    for position, seed in enumerate(seeds):
        head = seed_head(model, position, test.image.dim, test.text.dim)
        z = principal_components(fused_representation(head, test)).astype(np.float16)
        column = pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1)), z.shape[1])
        frames.append(
            pd.DataFrame(
                {
                    "seed": np.full(len(z), seed, dtype=np.int64),
                    "pair": np.arange(len(z), dtype=np.int32),
                    "z": pd.arrays.ArrowExtensionArray(column),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def shuffled(split: Split, modality: str) -> Split:
    """The split with one modality's rows permuted across its pairs (labels kept), seeded."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(ABLATION_SEED))
    order = order.to(split.label.device)
    if modality == "image":
        return Split(split.image, split.text, split.label, split.image_row[order], split.text_row)
    return Split(split.image, split.text, split.label, split.image_row, split.text_row[order])


def modality_ablation(model: SeedEnsemble, test: Split) -> dict[str, np.ndarray]:
    """Per seed, test accuracy with the image side and with the text side shuffled across pairs:
    the drop from the intact accuracy is what the head takes from that modality's pairing."""
    accuracy = {}
    for modality in ("image", "text"):
        logits = model.predict(shuffled(test, modality))
        hits = logits.argmax(dim=-1) == test.label.cpu()
        accuracy[f"{modality}_shuffled_accuracy"] = hits.double().mean(dim=1).numpy()
    return accuracy
