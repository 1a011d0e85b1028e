"""The feature rows a training job holds in memory, and their gathering into batches.

A job reads each distinct image and caption it needs once; pairs refer to them by row. Pooled
features are a matrix. Token sequences are ragged (a caption has as many tokens as it has words),
so they stay packed as the token file stores them, in its float16, and are padded only per batch,
where they become float32 with a mask of the real tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from alignfuse.features.scaling import Scaler
from alignfuse.parquet import (
    FEATURES_FIX,
    is_token_file,
    read_embedding_rows,
    read_token_rows,
    readable,
)

FIX = "the features and pairs come from different data; rebuild them together"


class PooledRows:
    """Pooled feature vectors [R, d]; a batch of rows [...] gathers to ([..., d],)."""

    tokens_per_row = 1.0

    def __init__(self, values: torch.Tensor):
        self.values = values

    @property
    def dim(self) -> int:
        return self.values.shape[-1]

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.values.index_select(0, rows.reshape(-1)).view(*rows.shape, -1),)

    def to(self, device: torch.device) -> PooledRows:
        return PooledRows(self.values.to(device))

    def sample(self, rows: torch.Tensor) -> torch.Tensor:
        """The vectors of ``rows`` [n], to fit a scaler on."""
        return self.values.index_select(0, rows)

    def scaled(self, scaler: Scaler) -> PooledRows:
        return PooledRows(scaler(self.values))


class TokenRows:
    """Ragged token sequences: row r is ``values[offsets[r] : offsets[r] + lengths[r]]``.

    A batch of rows [...] gathers to (tokens [..., L, d] float32, mask [..., L]) where L is the
    batch's longest sequence; padded positions are zero and False in the mask.
    """

    def __init__(self, values: torch.Tensor, offsets: torch.Tensor, lengths: torch.Tensor):
        self.values, self.offsets, self.lengths = values, offsets, lengths

    @property
    def dim(self) -> int:
        return self.values.shape[-1]

    @property
    def tokens_per_row(self) -> float:
        return float(self.lengths.double().mean()) if len(self.lengths) else 0.0

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = rows.reshape(-1)
        lengths = self.lengths.index_select(0, flat)
        positions = torch.arange(int(lengths.max()) if len(flat) else 0, device=flat.device)
        mask = positions < lengths[:, None]
        # padded positions read the row's first token (always there), then are zeroed
        index = self.offsets.index_select(0, flat)[:, None] + positions * mask
        tokens = self.values.index_select(0, index.reshape(-1)).view(*index.shape, -1).float()
        tokens = tokens.masked_fill_(~mask[..., None], 0.0)
        return tokens.view(*rows.shape, *tokens.shape[1:]), mask.view(*rows.shape, -1)

    def to(self, device: torch.device) -> TokenRows:
        """The rows on ``device``, still packed in the file's dtype (float16 halves GPU memory)."""
        return TokenRows(*(t.to(device) for t in (self.values, self.offsets, self.lengths)))

    def sample(self, rows: torch.Tensor) -> torch.Tensor:
        """Every token of ``rows`` [n], to fit a scaler on: [tokens, d]."""
        return torch.cat(
            [
                self.values[o : o + n]
                for o, n in zip(
                    self.offsets[rows].tolist(), self.lengths[rows].tolist(), strict=True
                )
            ]
        )

    def scaled(self, scaler: Scaler) -> TokenRows:
        """Every token scaled, kept packed in the file's dtype."""
        return TokenRows(scaler(self.values).to(self.values.dtype), self.offsets, self.lengths)


def load_rows(path: Path, ids: pd.Series) -> tuple[PooledRows | TokenRows, torch.Tensor]:
    """(the distinct rows that ``ids`` name, read from ``path``; each id's row in them [N]).

    A token file gives :class:`TokenRows`, an embedding file :class:`PooledRows`.
    """
    needed = pd.Index(pd.unique(ids))
    row_of_id = torch.from_numpy(needed.get_indexer(ids).astype(np.int64))
    with readable(path, FEATURES_FIX):
        if is_token_file(path):
            values, offsets, lengths = read_token_rows(path, needed, fix=FIX)
            rows = TokenRows(
                torch.from_numpy(values), torch.from_numpy(offsets), torch.from_numpy(lengths)
            )
        else:
            rows = PooledRows(torch.from_numpy(read_embedding_rows(path, needed, fix=FIX)))
    return rows, row_of_id
