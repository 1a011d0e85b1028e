"""What a trained head does with its inputs, kept for the diagnostics stages.

Per seed, the best checkpoint's fused representation of every test pair (what the head names as
such, :meth:`alignfuse.fusion.head.FusionHead.fused`; partial information decomposition clusters
it as a view of the head), kept compactly as its coordinates on the leading principal axes of the
seed's training pairs' representations, in float16: the axes are fitted where nothing that PID
scores is seen. And the modality ablation: test accuracy when one modality's features are
shuffled across test pairs.
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


def seed_head(model: SeedEnsemble, position: int, d_image: int, d_text: int) -> nn.Module:
    """The head of the seed at ``position`` of the ensemble, in eval mode, with its weights."""
    head = build_head(model.head, d_image, d_text, model.hparams)
    weights = {k: v[position] for k, v in model.weights().items()}
    buffers = {k: v[position] for k, v in model.buffers.items()}
    head.load_state_dict({**weights, **buffers})
    return head.to(next(iter(weights.values())).device).eval()


@torch.no_grad()
def fused_representation(head: nn.Module, split: Split) -> np.ndarray:
    """The head's fused representation of every pair of the split [N, width]."""
    step = max(1, int(EVAL_PAIRS / split.tokens_per_pair))
    captured = []
    for i in range(0, len(split), step):
        index = torch.arange(i, min(i + step, len(split)), device=split.label.device)
        captured.append(head.fused(*split.inputs(index)).float().cpu())
    return torch.cat(captured).numpy()


def principal_axes(x: np.ndarray, components: int = COMPONENTS) -> tuple[np.ndarray, np.ndarray]:
    """The rows' mean [width] and their leading principal axes [<= components, width]."""
    mean = x.mean(axis=0)
    _, _, axes = np.linalg.svd(x - mean, full_matrices=False)
    return mean, axes[:components]


def project(x: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """The rows' coordinates on the given axes [N, COMPONENTS] (zero-padded when there are fewer
    axes, as for a representation narrower than COMPONENTS)."""
    z = (x - mean) @ axes.T
    return np.pad(z, ((0, 0), (0, COMPONENTS - z.shape[1])))


def seed_pairs(train: Split, position: int) -> Split:
    """The train pairs that the seed at ``position`` trained on."""
    index = train.subsets[position].to(train.label.device)
    return Split(
        train.image, train.text, train.label[index], train.image_row[index], train.text_row[index]
    )


def representations(
    model: SeedEnsemble, train: Split, test: Split, seeds: list[int], positions: list[int]
) -> pd.DataFrame:
    """Per seed at the given ``positions`` of ``seeds`` and per test pair, the fused
    representation's coordinates on the principal axes of that seed's train pairs (float16)."""
    z = np.zeros((0, COMPONENTS), dtype=np.float16)
    for position in positions:
        head = seed_head(model, position, test.image.dim, test.text.dim)
        mean, axes = principal_axes(fused_representation(head, seed_pairs(train, position)))
        z = np.concatenate([z, project(fused_representation(head, test), mean, axes)])
    column = pa.FixedSizeListArray.from_arrays(
        pa.array(z.astype(np.float16).reshape(-1)), COMPONENTS
    )
    return pd.DataFrame(
        {
            "seed": np.repeat(np.asarray(seeds, dtype=np.int64)[positions], len(test)),
            "pair": np.tile(np.arange(len(test), dtype=np.int32), len(positions)),
            "z": pd.arrays.ArrowExtensionArray(column),
        }
    )


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
