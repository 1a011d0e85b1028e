"""Token files on disk and the ragged rows a training job gathers from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from alignfuse.errors import AlignfuseError
from alignfuse.features.rows import PooledRows, TokenRows, load_rows
from alignfuse.parquet import TokenWriter, read_token_rows, write_embeddings

DIM = 4


@pytest.fixture
def sequences():
    """Ten captions of 1..5 tokens; token j of caption k is k + j/10 in every coordinate."""
    lengths = [1 + k % 5 for k in range(10)]
    return {
        f"c{k}": np.repeat((k + np.arange(n) / 10)[:, None], DIM, axis=1).astype(np.float32)
        for k, n in enumerate(lengths)
    }


@pytest.fixture
def token_file(tmp_path, sequences):
    """The sequences written in batches of three, so the file has several row groups."""
    path = tmp_path / "text_tokens.parquet"
    names = list(sequences)
    with TokenWriter(path, "caption_id", DIM, {"tokens": "test"}) as writer:
        for start in range(0, len(names), 3):
            batch = names[start : start + 3]
            writer.write(batch, [sequences[name] for name in batch])
    return path


def test_token_files_store_float16_ragged_sequences(token_file, sequences):
    table = pq.read_table(token_file)
    assert table.schema.field("tokens").type == pa.list_(pa.list_(pa.float16(), DIM))
    assert table.column("tokens").to_pylist()[2] == sequences["c2"].astype(np.float16).tolist()
    tokens = pq.read_metadata(token_file).row_group(0).column(1)
    # plain values, no dictionary: a dictionary of float16 values makes reading five times slower
    assert "RLE_DICTIONARY" not in tokens.encodings and tokens.compression == "UNCOMPRESSED"


def test_read_token_rows_gives_each_ids_sequence_whatever_the_order(token_file, sequences):
    wanted = ["c7", "c0", "c3", "c9"]
    values, offsets, lengths = read_token_rows(token_file, wanted, batch_rows=2)
    assert values.dtype == np.float16 and values.shape == (
        sum(len(sequences[c]) for c in wanted),
        DIM,
    )
    for i, name in enumerate(wanted):
        got = values[offsets[i] : offsets[i] + lengths[i]]
        np.testing.assert_array_equal(got, sequences[name].astype(np.float16))


def test_read_token_rows_names_the_file_and_the_missing_ids(token_file):
    with pytest.raises(AlignfuseError, match=r"text_tokens.parquet: 1 of 2 id\(s\).*'x1'"):
        read_token_rows(token_file, ["c1", "x1"])


def test_a_pooled_file_is_not_a_token_file(tmp_path):
    write_embeddings(tmp_path / "text.parquet", "caption_id", ["c0"], np.zeros((1, DIM)))
    with pytest.raises(AlignfuseError, match="text.parquet: no 'tokens' column"):
        read_token_rows(tmp_path / "text.parquet", ["c0"])


def test_gather_pads_each_batch_to_its_longest_sequence_and_masks_the_rest():
    # rows of lengths 3, 1, 2 packed out of order: row 0 at 3, row 1 at 0, row 2 at 1
    values = torch.arange(6, dtype=torch.float16)[:, None].expand(6, DIM).contiguous()
    rows = TokenRows(values, torch.tensor([3, 0, 1]), torch.tensor([3, 1, 2]))
    tokens, mask = rows.gather(torch.tensor([[1, 2], [2, 1]]))
    assert tokens.dtype == torch.float32 and tokens.shape == (2, 2, 2, DIM)
    assert mask.tolist() == [[[True, False], [True, True]], [[True, True], [True, False]]]
    assert tokens[0, 0, :, 0].tolist() == [0.0, 0.0]  # row 1 = value 0, then padding (zero)
    assert tokens[0, 1, :, 0].tolist() == [1.0, 2.0]  # row 2
    assert rows.gather(torch.tensor([0]))[0][0, :, 0].tolist() == [3.0, 4.0, 5.0]
    assert rows.tokens_per_row == 2.0


def test_load_rows_reads_pooled_or_token_files_and_maps_every_id_to_its_row(
    tmp_path, token_file, sequences
):
    ids = pd.Series(["c4", "c2", "c4", "c8"])
    rows, row_of_id = load_rows(token_file, ids)
    assert isinstance(rows, TokenRows) and row_of_id.tolist() == [0, 1, 0, 2]
    tokens, mask = rows.gather(row_of_id)
    assert mask.sum(dim=1).tolist() == [5, 3, 5, 4]
    np.testing.assert_allclose(tokens[3, :4].numpy(), sequences["c8"], rtol=2**-11)

    emb = np.arange(3 * DIM, dtype=np.float32).reshape(3, DIM)
    write_embeddings(tmp_path / "text.parquet", "caption_id", ["c2", "c4", "c8"], emb)
    rows, row_of_id = load_rows(tmp_path / "text.parquet", ids)
    assert isinstance(rows, PooledRows) and rows.tokens_per_row == 1
    (gathered,) = rows.gather(row_of_id)
    np.testing.assert_array_equal(gathered.numpy(), emb[[1, 0, 1, 2]])
