"""GPU benchmark: feature extraction and training on a CUDA device, against the CPU, in one command.

Offline (random weights, generated data), in two parts:

1. Feature extraction: random-weight ResNet18 and CLIP ViT-B/32 encode the images (and CLIP the
   captions) of a Flickr8k-format archive, on the device and on the CPU; reported are the largest
   difference between the two (bfloat16 autocast on CUDA, float32 on the CPU) relative to the
   features' scale, and images/s end to end (zip read, JPEG decode, forward, Parquet write)
   against the forward pass alone on the same prepared batch.
2. Training: one concat and one cross-attention condition (5 seeds by default) on Flickr8k-sized
   synthetic features with ``training.device`` set to the device, the seeds vmapped together
   against a loop over the seeds one at a time on the same device; reported are seconds per
   seed-epoch, their ratio, test accuracy against a CPU run of the same condition, and the peak
   device memory.

    python benchmarks/gpu.py                        # on a CUDA machine, under 8 minutes
    python benchmarks/gpu.py --device cpu --quick   # the same code on the CPU, small (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Flickr8k-format archive generator

from _common import study_heads  # noqa: E402
from flickr8k_fixture import make_flickr8k_archives  # noqa: E402
from train_grid import synthetic_flickr8k  # noqa: E402

from alignfuse.data.flickr8k import write_captions  # noqa: E402
from alignfuse.devices import describe, pick_device  # noqa: E402
from alignfuse.features.encoders import load_encoder  # noqa: E402
from alignfuse.features.extraction import autocast_dtype, embed, extract_features  # noqa: E402
from alignfuse.parquet import read_embeddings  # noqa: E402
from alignfuse.train.condition import train_condition  # noqa: E402

ENCODERS = {
    "resnet18": {
        "name": "resnet18",
        "library": "torchvision",
        "model": "resnet18",
        "pretrained": False,
    },
    "clip": {"name": "clip", "library": "open_clip", "model": "ViT-B-32", "pretrained": False},
}
HEADS = study_heads("concat", "xattn_txt2img")  # config.yaml's


def extraction(work: Path, device: torch.device, images: int, batch: int) -> list[dict]:
    """Each encoder on the device and on the CPU: the largest difference and images/s."""
    archives = make_flickr8k_archives(work / "archives", images - 16, 8, 8)
    captions = work / "captions.parquet"
    write_captions(archives.text_zip, archives.images_zip, captions)
    rows = []
    for name, spec in ENCODERS.items():
        spec = {**spec, "batch_size": batch}
        outputs = {}
        for where in dict.fromkeys([device.type, "cpu"]):
            out = work / f"{name}_{where}.parquet"
            started = time.perf_counter()
            extract_features(spec, "image", captions, out, archives.images_zip, where, workers=2)
            seconds = time.perf_counter() - started
            outputs[where] = (read_embeddings(out)[1], seconds)
        features, seconds = outputs[device.type]
        reference = outputs["cpu"][0]
        scale = np.abs(reference).max()
        encoder = load_encoder(spec, "image")
        encoder.model.to(device)
        probe = torch.stack([encoder.prepare(_image()) for _ in range(batch)])
        embed(encoder, probe, device, autocast_dtype(device))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(3):
            embed(encoder, probe, device, autocast_dtype(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        forward = 3 * batch / (time.perf_counter() - started)
        rows.append(
            {
                "encoder": name,
                "device": describe(device),
                "max |device − cpu| / max |cpu|": float(np.abs(features - reference).max() / scale),
                "images/s end to end": len(features) / seconds,
                "images/s forward only": forward,
                "end to end / forward": len(features) / seconds / forward,
            }
        )
    return rows


def _image():
    from PIL import Image

    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8))


def training(files, device: torch.device, method: str, n: int, seeds: int, epochs: int) -> dict:
    """One condition vmapped over its seeds, then seed by seed, on the device; and on the CPU."""

    def run(where: str, seed_list) -> tuple[pd.DataFrame, float]:
        spec = {
            "method": method,
            "head": method,
            "hparams": HEADS[method],
            "training": {
                "max_epochs": epochs,
                "batch_size": 128,
                "lr": 1e-3,
                "weight_decay": 0.01,
                "patience": epochs,
                "eval_every": 1,
                "device": where,
            },
            "seeds": list(seed_list),
            "resample": "fixed",
            "scaling": "l2",
        }
        runs = train_condition(*files, n, spec, 1).runs
        return runs, float(runs["train_s"].iloc[0])

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    together, vmapped = run(device.type, range(seeds))
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else float("nan")
    alone = [run(device.type, [seed]) for seed in range(seeds)]
    looped = sum(seconds for _, seconds in alone)
    cpu, _ = run("cpu", range(seeds))
    seed_epochs = int(together["epochs"].sum())
    return {
        "condition": f"{method} n={n}",
        "device": describe(device),
        "s per seed-epoch vmapped": vmapped / seed_epochs,
        "s per seed-epoch seed by seed": looped / sum(int(r["epochs"].sum()) for r, _ in alone),
        "ratio": looped / vmapped,
        "accuracy on device": float(together["test_accuracy"].mean()),
        "accuracy on cpu": float(cpu["test_accuracy"].mean()),
        "peak device MiB": peak / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a CPU in CI")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path, help="also write both tables here")
    args = parser.parse_args()
    device = pick_device(args.device)
    images, batch, n, epochs, dim = (32, 8, 256, 1, 64) if args.quick else (240, 64, 4096, 3, 512)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu_bench."))
    started = time.perf_counter()
    print(f"device: {describe(device)}; torch {torch.__version__}", flush=True)
    encoders = extraction(work, device, images, batch)
    print(pd.DataFrame(encoders).to_markdown(index=False), flush=True)
    files = synthetic_flickr8k(work / "train", dim)
    heads = [training(files, device, m, n, args.seeds, epochs) for m in HEADS]
    print(pd.DataFrame(heads).to_markdown(index=False))
    if args.json:
        args.json.write_text(json.dumps({"extraction": encoders, "training": heads}, indent=1))
    print(f"\nin {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
