"""A training job's pairs in memory: each split's labels and the feature rows its pairs use.

Pairs refer to feature rows by index, and all splits share one set of rows, so an image used by
many pairs (and by several splits) is read and held once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from alignfuse.data.datasets import SPLITS
from alignfuse.errors import AlignfuseError
from alignfuse.features.rows import PooledRows, TokenRows, load_rows
from alignfuse.features.scaling import fit_scaler
from alignfuse.parquet import read_frame, readable

PAIR_COLUMNS = ("image_id", "caption_id", "label")
CPU = torch.device("cpu")
PAIRS_FIX = "delete it and rerun the workflow's pairs stage to rebuild it"
RESAMPLES = ("per_seed", "fixed")
# A seed's training subset under per_seed comes from np.random.SeedSequence([seed, SUBSET_STREAM]).
SUBSET_STREAM = 2
# Input scaling is fitted on the first this many distinct images and captions of the train pairs
# file: training rows only, and the same whatever the scale, the seeds or the method.
SCALING_ROWS = 2048


@dataclass
class Split:
    """One split's pairs in memory: pair i is image row ``image_row[i]``, text row ``text_row[i]``.

    The rows (:mod:`alignfuse.features.rows`) are shared by every split, so an image used by many
    pairs is held once.
    """

    image: PooledRows | TokenRows
    text: PooledRows | TokenRows
    label: torch.Tensor
    image_row: torch.Tensor
    text_row: torch.Tensor
    subsets: torch.Tensor | None = None  # train only: each seed's pairs, positions [S, n]

    def __len__(self) -> int:
        return len(self.label)

    @property
    def tokens(self) -> bool:
        """Whether the features are token sequences (heads then also take their masks)."""
        return isinstance(self.image, TokenRows)

    @property
    def tokens_per_pair(self) -> float:
        return max(self.image.tokens_per_row, self.text.tokens_per_row)

    def longest(self) -> torch.Tensor:
        """Positions of the pairs with the longest image and the longest text sequence."""
        return torch.stack(
            [
                longest_row(self.image, self.image_row),
                longest_row(self.text, self.text_row),
            ]
        )

    def inputs(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A head's inputs for the pairs at ``index`` (any shape [...]).

        Pooled: (image [..., d_image], text [..., d_text]). Tokens: (image [..., Li, d_image],
        text [..., Lt, d_text], image_mask [..., Li], text_mask [..., Lt]).
        """
        image = self.image.gather(self.image_row[index])
        text = self.text.gather(self.text_row[index])
        return (image[0], text[0], *image[1:], *text[1:])


def longest_row(rows: PooledRows | TokenRows, row_of_pair: torch.Tensor) -> torch.Tensor:
    """The position of a pair whose row in ``rows`` is longest (any pair for pooled rows)."""
    if isinstance(rows, PooledRows):
        return torch.zeros((), dtype=torch.long, device=row_of_pair.device)
    return rows.lengths.to(row_of_pair.device)[row_of_pair].argmax()


def read_pairs(path: Path) -> pd.DataFrame:
    """The pairs of one split, in the file's order."""
    if not path.exists():
        raise AlignfuseError(f"{path}: pairs file not found; run the workflow's pairs stage first")
    with readable(path, PAIRS_FIX):
        names = pq.read_schema(path).names
    missing = [c for c in PAIR_COLUMNS if c not in names]
    if missing:
        raise AlignfuseError(
            f"{path}: missing column(s) {missing}; rebuild it with the pairs stage"
        )
    return read_frame(path, PAIRS_FIX, columns=list(PAIR_COLUMNS))


def training_subsets(available: int, n: int, seeds: list[int], resample: str) -> np.ndarray:
    """Each seed's n training pairs, as positions [S, n] in the train pairs file.

    The file interleaves positives and their negatives, so (2k, 2k+1) is a balanced block.
    ``fixed``: the first n pairs, the same for every seed (the nested prefixes). ``per_seed``: the
    first n/2 blocks of a permutation of the blocks drawn from the seed alone, so each seed trains
    on its own sample of pairs, its scales stay nested, and every subset stays balanced.
    """
    if resample not in RESAMPLES:
        raise AlignfuseError(f"pairs.resample '{resample}': use one of {', '.join(RESAMPLES)}")
    if resample == "fixed":
        return np.tile(np.arange(n), (len(seeds), 1))
    blocks = np.stack(
        [
            np.random.default_rng(np.random.SeedSequence([seed, SUBSET_STREAM])).permutation(
                available // 2
            )[: n // 2]
            for seed in seeds
        ]
    )
    return (2 * blocks[:, :, None] + np.arange(2)).reshape(len(seeds), -1)


def interleaved(labels: np.ndarray) -> bool:
    """Whether labels run 1, 0, 1, 0, ...: each positive followed by its negative."""
    even = len(labels) // 2 * 2
    return bool((labels[:even] == np.tile([1, 0], even // 2)).all())


def load_splits(
    image_features: Path,
    text_features: Path,
    pairs_dir: Path,
    n: int,
    device: torch.device = CPU,
    seeds: list[int] = (0,),
    resample: str = "fixed",
    scaling: str = "none",
    splits: tuple[str, ...] = SPLITS,
) -> dict[str, Split]:
    """Train (each seed's n pairs, see :func:`training_subsets`) and the other ``splits`` (dev
    and test by default) over the feature rows they use, read once, scaled and held on
    ``device``. A split left out is never opened: tuning reads train and dev only.

    The train split holds the union of the seeds' subsets; its ``subsets`` give each seed's pairs
    as positions in it. Each modality's ``scaling`` (:mod:`alignfuse.features.scaling`) is fitted
    on the first ``SCALING_ROWS`` distinct images and captions of the train pairs file.
    """
    pairs_dir = Path(pairs_dir)
    train = read_pairs(pairs_dir / "train.parquet")
    if n > len(train):
        raise AlignfuseError(
            f"{pairs_dir / 'train.parquet'}: {n} training pairs requested but only {len(train)} "
            "available; lower the scale in `scales` or build more training pairs"
        )
    if resample == "per_seed" and not interleaved(train["label"].to_numpy()):
        raise AlignfuseError(
            f"{pairs_dir / 'train.parquet'}: positives and negatives are not interleaved, so "
            "per_seed resampling cannot draw balanced pairs; rebuild it with the pairs stage"
        )
    subsets = training_subsets(len(train), n, list(seeds), resample)
    used, subsets = np.unique(subsets, return_inverse=True)
    pairs = {
        "train": train.iloc[used],
        **{s: read_pairs(pairs_dir / f"{s}.parquet") for s in splits if s != "train"},
    }
    every = pd.concat(pairs.values(), keys=list(pairs))
    fit = {c: pd.unique(train[c])[:SCALING_ROWS] for c in ("image_id", "caption_id")}
    image, image_row = load_rows(
        Path(image_features), pd.concat([every["image_id"], pd.Series(fit["image_id"])])
    )
    text, text_row = load_rows(
        Path(text_features), pd.concat([every["caption_id"], pd.Series(fit["caption_id"])])
    )
    if isinstance(image, TokenRows) != isinstance(text, TokenRows):
        raise AlignfuseError(
            f"{image_features}, {text_features}: one holds token sequences and the other pooled "
            "features; pass two token files (*_tokens.parquet) or two pooled ones"
        )
    image = image.scaled(fit_scaler(scaling, image.sample(image_row[len(every) :])))
    text = text.scaled(fit_scaler(scaling, text.sample(text_row[len(every) :])))
    image_row, text_row = image_row[: len(every)], text_row[: len(every)]
    image, text = image.to(device), text.to(device)
    image_row, text_row = image_row.to(device), text_row.to(device)
    loaded, start = {}, 0
    for name, frame in pairs.items():
        rows = slice(start, start + len(frame))
        loaded[name] = Split(
            image=image,
            text=text,
            label=torch.tensor(frame["label"].to_numpy(), dtype=torch.long, device=device),
            image_row=image_row[rows],
            text_row=text_row[rows],
        )
        start += len(frame)
    loaded["train"].subsets = torch.as_tensor(subsets.reshape(len(seeds), -1))  # on the CPU
    return loaded
