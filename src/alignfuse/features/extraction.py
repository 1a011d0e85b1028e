"""Frozen-encoder features of a dataset's images or captions, cached as Parquet.

Every later stage reads these files instead of running a backbone, so extraction runs once per
(dataset, encoder, modality). Images are decoded straight from the zip in DataLoader workers while
the encoder runs; batches stream into the file, so memory does not grow with the dataset.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import PIL
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from alignfuse.data.archives import DECODE_ERRORS
from alignfuse.data.images import ImageSource
from alignfuse.devices import describe, pick_device
from alignfuse.errors import AlignfuseError
from alignfuse.features.encoders import Encoder, key, load_encoder
from alignfuse.parquet import TOKEN_DTYPE, EmbeddingWriter, TokenWriter

ID_COLUMNS = {"image": "image_id", "text": "caption_id"}
BAD_IMAGE_POLICIES = ("error", "skip")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Half precision on CUDA only (bfloat16 where supported); CPU and MPS run float32."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def to_device(batch, device: torch.device):
    """A prepared batch on ``device``: a tensor, or a mapping of tensors (a Hugging Face
    tokenizer's output), given on as a dict whose tensors are moved and other values kept."""
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return batch


def embed(
    encoder: Encoder,
    batch,
    device: torch.device,
    dtype: torch.dtype | None = None,
    with_tokens: bool = False,
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Float32 pooled embeddings (and each row's token sequence) of one prepared batch (a tensor
    or a mapping of tensors, as the encoder's ``prepare`` makes it)."""
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        batch = to_device(batch, device)
        if not with_tokens:
            return encoder.model(batch).float().cpu().numpy(), None
        pooled, seq, lengths = encoder.tokens(batch)
        seq = seq.float().cpu().numpy()
        return pooled.float().cpu().numpy(), [
            s[:n] for s, n in zip(seq, lengths.tolist(), strict=True)
        ]


class SourceImages(Dataset):
    """Images read from a zip or a directory, decoded and prepared in DataLoader workers.

    Each worker opens its own ZipFile on first use (one handle shared across processes would
    interleave seeks). A bad image yields its reason instead of raising, so the main process can
    name the file or skip it rather than surface a worker traceback.
    """

    def __init__(self, source: ImageSource, locations: list[str], prepare):
        self.source = source
        self.locations = locations
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, i: int):
        try:
            with Image.open(io.BytesIO(self.source.read(self.locations[i]))) as image:
                return i, self.prepare(image.convert("RGB")), None
        except DECODE_ERRORS as err:
            return i, None, f"cannot be decoded ({err})"


def collate(items):
    """Stack the prepared images of a batch; bad ones pass through as (position, reason)."""
    good = [(i, x) for i, x, _ in items if x is not None]
    bad = [(i, reason) for i, _, reason in items if reason is not None]
    batch = torch.stack([x for _, x in good]) if good else None
    return [i for i, _ in good], batch, bad


def image_batches(source, names, locations, prepare, batch_size, workers, pin_memory):
    """(names, tensor or None, [(name, reason)]) per batch, in the order of ``names``."""
    loader = DataLoader(
        SourceImages(source, locations, prepare),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
    )
    for positions, batch, bad in loader:
        yield [names[i] for i in positions], batch, [(names[i], reason) for i, reason in bad]


def text_batches(ids, texts, tokenize, batch_size):
    for start in range(0, len(ids), batch_size):
        yield ids[start : start + batch_size], tokenize(texts[start : start + batch_size]), []


def read_captions(path: Path, columns: list[str]) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise AlignfuseError(f"{path}: captions table not found; run the workflow's data stage")
    missing = set(columns) - set(pq.read_schema(path).names)
    if missing:
        raise AlignfuseError(
            f"{path}: no column(s) {sorted(missing)}; it is not a captions table of the data stage"
        )
    return pq.read_table(path, columns=columns)


def bad_image_error(images: str, name: str, reason: str) -> AlignfuseError:
    return AlignfuseError(
        f"{images}: image '{name}' {reason}; replace it with an intact copy, or set "
        "on_bad_image: skip in the dataset's config to leave such images out"
    )


def versions() -> dict[str, str]:
    """The libraries' versions, from their installed metadata: importing torchvision and
    open_clip only to ask costs a plug-in encoder's job seconds (torch's carries the build)."""
    return {
        "torch": torch.__version__,
        "torchvision": importlib.metadata.version("torchvision"),
        "open_clip": importlib.metadata.version("open_clip_torch"),
        "pillow": PIL.__version__,
    }


def extract_features(
    spec: dict,
    modality: str,
    captions: Path,
    out: Path | None,
    images: Path | list[Path] | None = None,
    device: str = "auto",
    workers: int = 2,
    on_bad_image: str = "error",
    tokens_out: Path | None = None,
    image_key: str = "name",
) -> dict:
    """Encode every image or caption of a captions table; return the run's report.

    ``out`` receives the pooled features and ``tokens_out`` the token sequences (encoders that
    have them); either may be None (the workflow writes them in separate jobs, so that turning on
    tokens does not rewrite the pooled features). Images: the table's unique ``image_id`` in
    sorted order, read from ``images`` (a zip, several zips, or a directory; ids are file names or, with
    ``image_key="path"``, paths relative to it). Text: every ``caption_id`` in table order. A missing or
    undecodable image raises ``AlignfuseError`` naming it, or with ``on_bad_image="skip"`` is left
    out, logged and listed in the metadata. Nothing is left under ``out`` or ``tokens_out`` unless
    the whole run succeeds.
    """
    if out is None and tokens_out is None:
        raise AlignfuseError("nothing to write: pass an output for features, tokens or both")
    if modality not in ID_COLUMNS:
        raise AlignfuseError(f"modality '{modality}': use one of {sorted(ID_COLUMNS)}")
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise AlignfuseError(f"on_bad_image '{on_bad_image}': use one of {BAD_IMAGE_POLICIES}")
    if modality == "image" and images is None:
        raise AlignfuseError("image features need the images (a zip or a directory); pass images")
    chosen = pick_device(device)
    dtype = autocast_dtype(chosen)
    encoder = load_encoder(spec, modality)
    if tokens_out and encoder.tokens is None:
        raise AlignfuseError(
            f"{key(spec, 'tokens')}: {spec['model']} has no {modality} token sequences; "
            "set it to false"
        )
    encoder.model.to(chosen)
    batch_size = spec.get("batch_size", 128)
    skipped: dict[str, str] = {}

    if modality == "image":
        names = sorted(set(read_captions(captions, ["image_id"]).column(0).to_pylist()))
        source = ImageSource(images, image_key)
        found, missing = source.locate(names)
        for name, reason in missing.items():
            if on_bad_image == "error":
                raise bad_image_error(source.where, name, reason)
            skipped[name] = reason
        names = [name for name in names if name in found]
        total = len(names)
        batches = image_batches(
            source,
            names,
            [found[name] for name in names],
            encoder.prepare,
            batch_size,
            workers,
            chosen.type == "cuda",
        )
    else:
        table = read_captions(captions, ["caption_id", "caption"])
        ids, texts = table.column(0).to_pylist(), table.column(1).to_pylist()
        total = len(ids)
        batches = text_batches(ids, texts, encoder.prepare, batch_size)

    metadata = {
        "encoder": spec,
        "weights_id": encoder.weights_id,
        "preprocessing": encoder.preprocessing,
        "modality": modality,
        "device": describe(chosen),
        "dtype": f"{dtype} autocast" if dtype else "float32",
        "stored_as": "float32",
        "versions": versions(),
    }
    rows = 0
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.closing(batches))
        id_column = ID_COLUMNS[modality]
        writers = {}
        if out:
            writers["pooled"] = stack.enter_context(
                EmbeddingWriter(out, id_column, encoder.dim, metadata)
            )
        if tokens_out:
            token_metadata = metadata | {
                "tokens": encoder.token_description,
                "stored_as": np.dtype(TOKEN_DTYPE.to_pandas_dtype()).name,
            }
            writers["tokens"] = stack.enter_context(
                TokenWriter(tokens_out, id_column, encoder.token_dim, token_metadata)
            )
        progress = stack.enter_context(
            tqdm(total=total, desc=f"{spec.get('name', spec['model'])} {modality}", file=sys.stderr)
        )
        for name, reason in skipped.items():
            tqdm.write(f"skipping image {name}: {reason}", file=sys.stderr)
        for batch_ids, batch, bad in batches:
            for name, reason in bad:
                if on_bad_image == "error":
                    raise bad_image_error(source.where, name, reason)
                skipped[name] = reason
                tqdm.write(f"skipping image {name}: {reason}", file=sys.stderr)
            if batch is not None:
                pooled, sequences = embed(encoder, batch, chosen, dtype, bool(tokens_out))
                if "pooled" in writers:
                    writers["pooled"].write(batch_ids, pooled)
                if "tokens" in writers:
                    writers["tokens"].write(batch_ids, sequences)
                rows += len(batch_ids)
            progress.update(len(batch_ids) + len(bad))
        if rows == 0:
            raise AlignfuseError(f"{captions}: no {modality} could be encoded; nothing to write")
        summary = {"rows": rows, "skipped_count": len(skipped), "skipped": sorted(skipped)}
        for writer in writers.values():
            writer.metadata.update(summary)
    return metadata | summary | {"seconds": time.perf_counter() - start}
