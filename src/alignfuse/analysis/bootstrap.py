"""Test-set sampling variance: a bootstrap over test images, the clusters the test pairs share.

Every condition is tested on the same test pairs, so the spread across seeds says nothing about
how a different test set would have scored. Resampling test *pairs* would understate it: the ten
or so pairs of one image (its captions as positives and negatives) are not independent. So the
bootstrap draws images with replacement and weights each pair by how often its image was drawn;
one set of draws serves every condition and method, so differences between methods stay paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from alignfuse.errors import AlignfuseError

CHUNK = 256  # resamples per block when scores are ranked (memory ~ CHUNK x pairs)


@dataclass(frozen=True)
class ImageBootstrap:
    """Resampling weights of the test pairs: ``weights[b, i]`` is how often pair i's image was
    drawn in resample b (each resample draws as many images as the test split holds)."""

    weights: np.ndarray  # [B, N] float64
    label: np.ndarray  # [N] 0/1

    @classmethod
    def draw(cls, test_pairs: pd.DataFrame, resamples: int, seed: int) -> ImageBootstrap:
        """Draw ``resamples`` image resamples of the test split (its pairs file, in order)."""
        if resamples < 2:
            raise AlignfuseError(
                f"analysis.bootstrap_resamples: {resamples} resamples give no spread; use 1000"
            )
        image, image_of_pair = np.unique(test_pairs["image_id"].to_numpy(), return_inverse=True)
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(len(image), np.full(len(image), 1 / len(image)), size=resamples)
        return cls(counts[:, image_of_pair].astype(np.float64), test_pairs["label"].to_numpy())

    def __len__(self) -> int:
        return self.weights.shape[0]

    def accuracy(self, prob: np.ndarray) -> np.ndarray:
        """The seeds' mean accuracy in every resample: [B] from probabilities [S, N]."""
        correct = ((prob > 0.5) == self.label).mean(axis=0)  # [N], seed-averaged
        return self.weights @ correct / self.weights.sum(axis=1)

    def auroc(self, prob: np.ndarray) -> np.ndarray:
        """The seeds' mean AUROC in every resample: [B] from probabilities [S, N]."""
        return np.mean([self.weighted_auroc(p) for p in prob], axis=0)

    def weighted_auroc(self, score: np.ndarray) -> np.ndarray:
        """AUROC of one seed's scores under every resample's pair weights (ties count one half).

        With pair weights w, AUROC = sum over positive i, negative j of w_i w_j [s_i > s_j]
        (+ half for ties), over (sum of positive w)(sum of negative w); the scores are ranked
        once and each resample's negative weight below every score is a cumulative sum.
        """
        values, group = np.unique(score, return_inverse=True)
        positive = self.label == 1
        # one-hot [N, distinct scores]: a pair's weight goes to its score's column
        onehot = sparse.csr_matrix(
            (np.ones(len(score)), (np.arange(len(score)), group)), shape=(len(score), len(values))
        )
        to_pos, to_neg = onehot[positive].T.tocsr(), onehot[~positive].T.tocsr()
        out = np.empty(len(self))
        for start in range(0, len(self), CHUNK):
            w = self.weights[start : start + CHUNK]
            pos = (to_pos @ w[:, positive].T).T  # [chunk, distinct scores]
            neg = (to_neg @ w[:, ~positive].T).T
            below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each score
            pairs = (pos * (below + 0.5 * neg)).sum(axis=1)
            out[start : start + len(w)] = pairs / (pos.sum(axis=1) * neg.sum(axis=1))
        return out

    def draws(self, metric: str, prob: np.ndarray) -> np.ndarray:
        """The metric (``test_accuracy`` or ``test_auroc``) of the seeds' mean in every resample."""
        if metric == "test_accuracy":
            return self.accuracy(prob)
        if metric == "test_auroc":
            return self.auroc(prob)
        raise ValueError(f"no test bootstrap for metric {metric!r}")


def percentile_interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` share of the bootstrap draws."""
    tail = 50 * (1 - confidence)
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)
