"""Per-seed evaluation metrics of a seed ensemble's logits: loss, accuracy and AUROC."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def auroc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half): the Mann-Whitney U with average ranks."""
    positives = label == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return math.nan
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(score)]
    ranks = np.empty(len(score))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)  # 1-based, ties averaged
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def metrics(logits: torch.Tensor, label: torch.Tensor) -> dict[str, np.ndarray]:
    """Per seed: loss, accuracy and AUROC (softmax probability of class 1) of logits [S, N, 2]."""
    labels = label.expand(len(logits), -1)
    loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(dim=1)
    accuracy = (logits.argmax(dim=-1) == labels).double().mean(dim=1)
    prob = logits.softmax(dim=-1)[..., 1].numpy()
    y = label.numpy()
    return {
        "loss": loss.numpy().astype(np.float64),
        "accuracy": accuracy.numpy(),
        "auroc": np.array([auroc(p, y) for p in prob]),
    }
