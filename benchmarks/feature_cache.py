"""Feature-cache throughput: end-to-end extraction against the encoder's forward pass alone.

The features stage should be bound by the encoder, not by JPEG decoding, zip reads or Parquet
writes. Both rates are measured in one run on the same machine, encoder and batch size; their
ratio says how close extraction comes to the forward pass (aim: >= 0.9). Random weights, so it
runs offline:

    python benchmarks/feature_cache.py                       # resnet18 on 384 images, CPU: ~1 min
    python benchmarks/feature_cache.py --encoder clip --images 2048 --batch-size 128   # a GPU
"""

from __future__ import annotations

import argparse
import io
import itertools
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from alignfuse.devices import pick_device
from alignfuse.features.encoders import load_encoder
from alignfuse.features.extraction import autocast_dtype, embed, extract_features

ENCODERS = {
    "resnet18": {"library": "torchvision", "model": "resnet18", "pretrained": False},
    "clip": {"library": "open_clip", "model": "ViT-B-32", "pretrained": False},
}


def photo(rng: np.random.Generator, width: int, height: int) -> bytes:
    """A JPEG with a photo's mix of smooth regions and texture (so decode cost is realistic)."""
    coarse = rng.integers(0, 256, size=(height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), float)
    pixels = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_dataset(directory: Path, n: int, width: int, height: int) -> tuple[Path, Path, float]:
    """An image zip in the Flickr8k layout and its captions table; returns the mean JPEG size."""
    rng = np.random.default_rng(0)
    names = [f"{1000268201 + i}_{i:010x}.jpg" for i in range(n)]
    images_zip, sizes = directory / "images.zip", []
    with zipfile.ZipFile(images_zip, "w", zipfile.ZIP_STORED) as zf:
        for name in names:
            data = photo(rng, width, height)
            sizes.append(len(data))
            zf.writestr(f"Flicker8k_Dataset/{name}", data)
    captions = directory / "captions.parquet"
    frame = pd.DataFrame({"image_id": names, "caption_id": [f"{n}#0" for n in names]})
    frame.assign(caption="A photo .", split="train").to_parquet(captions, index=False)
    return images_zip, captions, float(np.mean(sizes))


def forward_only(spec: dict, images_zip: Path, n: int, device: torch.device) -> float:
    """Images/s of the encoder alone: the same batches, pre-decoded and preprocessed in memory."""
    encoder = load_encoder(spec, "image")
    encoder.model.to(device)
    dtype, batch_size = autocast_dtype(device), spec["batch_size"]
    with zipfile.ZipFile(images_zip) as zf:
        members = zf.namelist()[: min(n, 2 * batch_size)]
        prepared = [
            encoder.prepare(Image.open(io.BytesIO(zf.read(m))).convert("RGB")) for m in members
        ]
    pool = [torch.stack(prepared[i : i + batch_size]) for i in range(0, len(prepared), batch_size)]
    sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
    embed(encoder, pool[0], device, dtype)  # warm-up, untimed (the end-to-end run follows warm)
    start = time.perf_counter()
    for size, batch in zip(sizes, itertools.cycle(pool)):
        embed(encoder, batch[:size], device, dtype)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="resnet18")
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", default="500x375", help="JPEG width x height (Flickr8k's)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    spec = {"name": args.encoder, **ENCODERS[args.encoder], "batch_size": args.batch_size}
    device = pick_device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        images_zip, captions, mean_bytes = make_dataset(Path(tmp), args.images, width, height)
        forward = forward_only(spec, images_zip, args.images, device)
        report = extract_features(
            spec,
            "image",
            captions,
            Path(tmp) / "out.parquet",
            images_zip,
            args.device,
            args.workers,
        )
    end_to_end = report["rows"] / report["seconds"]

    print(
        f"device: {report['device']} ({report['dtype']}), torch threads: {torch.get_num_threads()}"
    )
    print(
        f"encoder: {args.encoder} (random weights), batch size {args.batch_size}, "
        f"{args.workers} DataLoader workers, {args.images} JPEGs of {width}x{height} "
        f"(mean {mean_bytes / 1024:.0f} KiB)"
    )
    print()
    print("| measure                                       | images/s |")
    print("|-----------------------------------------------|---------:|")
    print(f"| end to end: zip read, decode, forward, write  | {end_to_end:8.1f} |")
    print(f"| forward only: pre-decoded, preprocessed input | {forward:8.1f} |")
    print(f"| ratio end to end / forward only               | {end_to_end / forward:8.2f} |")


if __name__ == "__main__":
    main()
