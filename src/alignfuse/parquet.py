"""Parquet files of the workflow's data contracts, written atomically.

A file only appears under its final name once it is complete, so an interrupted job never leaves
an output that looks finished. Embedding files hold an id column and an ``emb`` column of
``fixed_size_list<float32, d>``; provenance goes into the schema metadata as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alignfuse.errors import AlignfuseError

METADATA_KEY = b"alignfuse"
FEATURES_FIX = "delete it and rerun the workflow's features stage to rebuild it"
# Token sequences are stored in half precision: float16 keeps 11 significant bits (relative
# error <= 4.9e-4), finer than the bfloat16 autocast (8 bits) the encoders run in on GPU.
TOKEN_DTYPE = pa.float16()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600; results are shared with collaborators, so honour the umask.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def with_metadata(schema: pa.Schema, metadata: dict | None) -> pa.Schema:
    if not metadata:
        return schema
    return schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})


@contextlib.contextmanager
def readable(path: str | os.PathLike, fix: str) -> Iterator[None]:
    """Turn a corrupt or truncated Parquet file into one error naming it and how to rebuild it."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        reason = " ".join(str(exc).split())[:200]
        raise AlignfuseError(f"{path}: not a readable Parquet file ({reason}); {fix}") from None


def read_frame(path: str | os.PathLike, fix: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file as a DataFrame; a corrupt or truncated file is an error naming it and ``fix``
    (how to rebuild it)."""
    with readable(path, fix):
        return pd.read_parquet(path, columns=columns)


def read_metadata(path: str | os.PathLike) -> dict:
    """The provenance a writer stored in the file's schema metadata (empty if none)."""
    raw = (pq.read_metadata(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_table(table: pa.Table, path: str | os.PathLike, metadata: dict | None = None) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(
            table.replace_schema_metadata(with_metadata(table.schema, metadata).metadata), tmp
        )


def write_frame(frame, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write a pandas DataFrame (index dropped) atomically."""
    write_table(pa.Table.from_pandas(frame, preserve_index=False), path, metadata)


def embedding_schema(id_column: str, dim: int) -> pa.Schema:
    return pa.schema([(id_column, pa.string()), ("emb", pa.list_(pa.float32(), dim))])


def embedding_batch(schema: pa.Schema, ids, emb: np.ndarray) -> pa.RecordBatch:
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    dim = schema.field("emb").type.list_size
    if emb.ndim != 2 or emb.shape[1] != dim:
        raise ValueError(f"embeddings of shape {emb.shape} do not match dimension {dim}")
    values = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim)
    return pa.RecordBatch.from_arrays([pa.array(list(ids), pa.string()), values], schema=schema)


class EmbeddingWriter:
    """Streams embedding batches into one Parquet file; memory stays independent of file size.

    ``metadata`` may still be updated while writing (e.g. counts of skipped images): it goes
    into the file's footer when the writer closes.
    """

    def __init__(
        self, path: str | os.PathLike, id_column: str, dim: int, metadata: dict | None = None
    ):
        self.path = Path(path)
        self.metadata = dict(metadata or {})
        self.schema = embedding_schema(id_column, dim)
        self.options: dict = {}  # ParquetWriter options
        self._atomic = atomic_path(self.path)
        self._writer = None

    def __enter__(self) -> EmbeddingWriter:
        self._writer = pq.ParquetWriter(self._atomic.__enter__(), self.schema, **self.options)
        return self

    def write(self, ids, emb: np.ndarray) -> None:
        self._writer.write_batch(embedding_batch(self.schema, ids, emb))

    def __exit__(self, *exc) -> bool:
        self._writer.add_key_value_metadata(
            {METADATA_KEY: json.dumps(self.metadata, sort_keys=True)}
        )
        self._writer.close()
        return self._atomic.__exit__(*exc)


def write_embeddings(
    path, id_column: str, ids, emb: np.ndarray, metadata: dict | None = None
) -> None:
    with EmbeddingWriter(path, id_column, emb.shape[1], metadata) as writer:
        writer.write(ids, emb)


def feature_file_schema(path: Path) -> pa.Schema:
    """The schema of a feature file (pooled or tokens), or an AlignfuseError if it is missing."""
    if not path.exists():
        raise AlignfuseError(
            f"{path}: feature file not found; run the workflow's features stage first"
        )
    with readable(path, FEATURES_FIX):
        return pq.read_schema(path)


def embedding_file_schema(path: Path) -> pa.Schema:
    """The schema of an embedding file, or an AlignfuseError saying why it is not one."""
    schema = feature_file_schema(path)
    if "emb" not in schema.names or not pa.types.is_fixed_size_list(schema.field("emb").type):
        raise AlignfuseError(
            f"{path}: no fixed-size 'emb' column; it is not an alignfuse feature file"
        )
    return schema


def read_embeddings(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Return (ids, float32 matrix [rows, d]) of an embedding file, reading only those columns."""
    path = Path(path)
    schema = embedding_file_schema(path)
    id_column = schema.names[0]
    with readable(path, FEATURES_FIX):
        table = pq.read_table(path, columns=[id_column, "emb"])
    dim = schema.field("emb").type.list_size
    emb = table.column("emb").combine_chunks().flatten().to_numpy().reshape(-1, dim)
    return table.column(id_column).to_numpy(zero_copy_only=False).astype(str), emb.astype(
        np.float32, copy=False
    )


def file_rows(path: Path, id_column: str, ids, fix: str) -> np.ndarray:
    """The row of each id in the file (int64, in the order of ``ids``), reading only the id column.

    Duplicate ids in the file, or ids it lacks, raise AlignfuseError naming the file (``fix`` ends
    the message).
    """
    file_ids = pq.read_table(path, columns=[id_column]).column(0).combine_chunks()
    if pc.count_distinct(file_ids).as_py() != len(file_ids):
        raise AlignfuseError(f"{path}: duplicate ids; rebuild the feature file")
    wanted = pa.array(np.asarray(ids, dtype=object), pa.string())
    rows = pc.index_in(wanted, value_set=file_ids).fill_null(-1).to_numpy().astype(np.int64)
    if (rows < 0).any():
        absent = wanted.filter(pa.array(rows < 0)).to_pylist()
        raise AlignfuseError(
            f"{path}: {len(absent)} of {len(wanted)} id(s) asked for are not in the file, "
            f"e.g. {absent[:3]}; {fix}"
        )
    return rows


def stream_rows(
    path: Path, column: str, rows: np.ndarray, batch_rows: int
) -> Iterator[tuple[np.ndarray, pa.Array]]:
    """(positions in ``rows``, ``column`` at those file rows) per batch, in file-row order.

    Only the row groups that hold a wanted row are read, batch by batch, so memory holds one batch
    of the column beside what the caller keeps.
    """
    order = np.argsort(rows, kind="stable")  # positions in `rows`, in file-row order
    sorted_rows = rows[order]
    # a buffered stream without pre-buffering reads page by page, not whole column chunks
    parquet = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    group_start = 0
    for group in range(parquet.metadata.num_row_groups):
        group_end = group_start + parquet.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(sorted_rows, [group_start, group_end])
        if lo < hi:
            batch_start = group_start
            for batch in parquet.iter_batches(batch_rows, row_groups=[group], columns=[column]):
                batch_end = batch_start + batch.num_rows
                stop = lo + np.searchsorted(sorted_rows[lo:hi], batch_end)
                if stop > lo:
                    yield order[lo:stop], batch.column(0).take(sorted_rows[lo:stop] - batch_start)
                    lo = stop
                if lo == hi:
                    break
                batch_start = batch_end
        group_start = group_end


def read_embedding_rows(
    path: str | os.PathLike,
    ids,
    fix: str = "check that the ids and the feature file come from the same data",
    batch_rows: int = 4096,
) -> np.ndarray:
    """The float32 rows [len(ids), d] of the given ids, in their order, from an embedding file.

    Only the id column is read whole; ``emb`` is streamed (:func:`stream_rows`), so memory holds
    the result plus one batch whatever the file's size. A float16 ``emb`` is widened to float32.
    """
    path = Path(path)
    schema = embedding_file_schema(path)
    rows = file_rows(path, schema.names[0], ids, fix)
    dim = schema.field("emb").type.list_size
    out = np.empty((len(rows), dim), dtype=np.float32)
    for positions, values in stream_rows(path, "emb", rows, batch_rows):
        out[positions] = values.flatten().to_numpy().reshape(-1, dim)
    return out


def token_schema(id_column: str, dim: int) -> pa.Schema:
    return pa.schema([(id_column, pa.string()), ("tokens", pa.list_(pa.list_(TOKEN_DTYPE, dim)))])


class TokenWriter(EmbeddingWriter):
    """Streams token sequences: ``tokens`` is list<fixed_size_list<float16, d>>, one list per row.

    float16 because token files are tens of times larger than pooled ones; see ``TOKEN_DTYPE``.
    Tokens are written plain: dictionary encoding of float16 (at most 65,536 values) saved 6% of
    the size but made reading five times slower, and compression saves nothing on features.
    """

    def __init__(self, path, id_column: str, dim: int, metadata: dict | None = None):
        super().__init__(path, id_column, dim, metadata)
        self.dim = dim
        self.schema = token_schema(id_column, dim)
        self.options = {
            "use_dictionary": [id_column],
            "compression": {id_column: "snappy", "tokens": "none"},
        }

    def write(self, ids, sequences: list[np.ndarray]) -> None:
        offsets = np.cumsum([0] + [len(s) for s in sequences], dtype=np.int32)
        flat = np.concatenate(sequences).astype(np.float16).reshape(-1)
        values = pa.FixedSizeListArray.from_arrays(pa.array(flat), self.dim)
        column = pa.ListArray.from_arrays(pa.array(offsets), values)
        ids = pa.array(list(ids), pa.string())
        self._writer.write_batch(pa.RecordBatch.from_arrays([ids, column], schema=self.schema))


def is_token_file(path: str | os.PathLike) -> bool:
    """Whether a feature file holds token sequences (``tokens``) rather than pooled rows (``emb``)."""
    return "tokens" in feature_file_schema(Path(path)).names


def token_file_schema(path: Path) -> pa.Schema:
    """The schema of a token file, or an AlignfuseError saying why it is not one."""
    schema = feature_file_schema(path)
    kind = schema.field("tokens").type if "tokens" in schema.names else None
    if kind is None or not (
        pa.types.is_list(kind) and pa.types.is_fixed_size_list(kind.value_type)
    ):
        raise AlignfuseError(
            f"{path}: no 'tokens' column of token sequences; it is not an alignfuse token file"
        )
    return schema


def read_token_rows(
    path: str | os.PathLike,
    ids,
    fix: str = "check that the ids and the feature file come from the same data",
    batch_rows: int = 1024,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The token sequences of the given ids: (values [T, d], offsets [len(ids)], lengths [len(ids)]).

    Sequence i is ``values[offsets[i] : offsets[i] + lengths[i]]``. Values keep the file's dtype
    (float16 as written) and are packed in file order, not in the order of ``ids``, so nothing is
    copied to reorder ragged rows. Only the wanted rows are kept as the file is streamed.
    """
    path = Path(path)
    schema = token_file_schema(path)
    kind = schema.field("tokens").type
    dim = kind.value_type.list_size
    rows = file_rows(path, schema.names[0], ids, fix)
    # Room for every token of the file: pages never written to are never made resident, so this
    # costs only the wanted rows, and no batch is held twice.
    metadata = pq.read_metadata(path)
    column = schema.get_field_index("tokens")
    capacity = sum(
        metadata.row_group(g).column(column).num_values for g in range(metadata.num_row_groups)
    )
    values = np.empty((capacity // dim, dim), dtype=kind.value_type.value_type.to_pandas_dtype())
    offsets, lengths = np.empty_like(rows), np.empty_like(rows)
    filled = 0
    for where, batch in stream_rows(path, "tokens", rows, batch_rows):
        batch_lengths = batch.value_lengths().to_numpy()
        tokens = batch.flatten().flatten().to_numpy().reshape(-1, dim)
        values[filled : filled + len(tokens)] = tokens
        offsets[where] = filled + np.concatenate([[0], np.cumsum(batch_lengths)[:-1]])
        lengths[where] = batch_lengths
        filled += len(tokens)
    # Arrow's allocator keeps freed batches for reuse; hand them back so that they do not stay
    # in a training job's resident memory for hours.
    pa.default_memory_pool().release_unused()
    return values[:filled], offsets, lengths
