"""GPU benchmark: feature extraction and training on a CUDA device, against the CPU, in one command.

Offline (random weights, generated data), in two parts:

1. Feature extraction: random-weight ResNet18 and CLIP ViT-B/32 encode the images of a
   Flickr8k-format archive of photo-sized JPEGs, on the device and on the CPU; reported are the
   largest difference between the two (bfloat16 autocast on CUDA, float32 on the CPU) relative
   to the features' scale, and images/s end to end (zip read, JPEG decode, forward, Parquet
   write) for several numbers of DataLoader workers, against the forward pass alone on one
   prepared batch.
2. Training: one concat and one cross-attention condition (5 seeds by default) on Flickr8k-sized
   synthetic features (a fortieth of its images with --quick) with ``training.device`` set to the device, the seeds vmapped together
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


def extraction(
    work: Path, device: torch.device, sizes: dict, workers: list[int], batch: int
) -> list[dict]:
    """Each encoder on the device against the CPU, and its images/s as DataLoader workers grow.

    The CPU comparison runs on a small archive (a ViT on a CPU is slow); the throughput on a
    larger one, so that loading the model and starting the workers are not most of the time.
    """
    side = sizes["side"]
    compare = _archive(work / "compare", sizes["compare"], side)
    throughput = (
        compare
        if sizes["throughput"] == sizes["compare"]
        else _archive(work / "throughput", sizes["throughput"], side)
    )
    rows = []
    for name, spec in ENCODERS.items():
        spec = {**spec, "batch_size": batch}
        outputs = {
            where: _extract(spec, compare, work / f"{name}_{where}.parquet", where, workers[-1])
            for where in dict.fromkeys([device.type, "cpu"])
        }
        features, reference = outputs[device.type][0], outputs["cpu"][0]
        difference = float(np.abs(features - reference).max() / np.abs(reference).max())
        cpu_rate = len(reference) / outputs["cpu"][1]
        forward = _forward_rate(spec, device, batch)
        for count in workers:
            out = work / f"{name}_{device.type}_{count}_workers.parquet"
            images, seconds = _extract(spec, throughput, out, device.type, count)
            rows.append(
                {
                    "encoder": name,
                    "device": describe(device),
                    "image side": side,
                    "workers": count,
                    "max |device − cpu| / max |cpu|": difference,
                    "images/s on cpu": cpu_rate,
                    "images/s end to end": len(images) / seconds,
                    "images/s forward only": forward,
                    "end to end / forward": len(images) / seconds / forward,
                }
            )
    return rows


def _archive(directory: Path, images: int, side: int) -> tuple[Path, Path]:
    """A Flickr8k-format archive of ``images`` photos (8 dev and 8 test, fewer in a tiny one) and
    its captions table."""
    held_out = min(8, images // 4)
    archives = make_flickr8k_archives(
        directory, images - 2 * held_out, held_out, held_out, image_size=side
    )
    captions = directory / "captions.parquet"
    write_captions(archives.text_zip, archives.images_zip, captions)
    return captions, archives.images_zip


def _extract(spec: dict, archive, out: Path, where: str, workers: int):
    """The features of every image and the seconds taken end to end (zip to Parquet)."""
    captions, images_zip = archive
    started = time.perf_counter()
    extract_features(spec, "image", captions, out, images_zip, where, workers=workers)
    return read_embeddings(out)[1], time.perf_counter() - started


def _forward_rate(spec: dict, device: torch.device, batch: int) -> float:
    """Images/s of the encoder's forward pass alone, on one prepared batch kept on the device."""
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
    return 3 * batch / (time.perf_counter() - started)


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

    run(device.type, [seeds])  # warm-up: device initialisation is not what is compared
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
    parser.add_argument(
        "--images", type=int, help="images in the throughput archive (default 2000; 12 --quick)"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", help="DataLoader workers to try (default 2 8 14; 2)"
    )
    parser.add_argument("--only", choices=["extraction", "training"], help="run one part")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path, help="also write both tables here")
    args = parser.parse_args()
    device = pick_device(args.device)
    if args.quick:
        sizes, workers, batch, n, epochs, dim, shrink = (
            {"compare": 12, "throughput": 12, "side": 48},
            [2],
            4,
            256,
            1,
            64,
            40,
        )
    else:
        sizes, workers, batch, n, epochs, dim, shrink = (
            {"compare": 240, "throughput": 2000, "side": 448},
            [2, 8, 14],
            64,
            4096,
            3,
            512,
            1,
        )
    sizes["throughput"] = args.images or sizes["throughput"]
    workers = args.workers or workers
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu_bench."))
    started = time.perf_counter()
    print(f"device: {describe(device)}; torch {torch.__version__}", flush=True)
    encoders, heads = [], []
    if args.only != "training":
        encoders = extraction(work, device, sizes, workers, batch)
        print(pd.DataFrame(encoders).to_markdown(index=False), flush=True)
    if args.only != "extraction":
        files = synthetic_flickr8k(work / "train", dim, shrink)
        heads = [training(files, device, m, n, args.seeds, epochs) for m in HEADS]
        print(pd.DataFrame(heads).to_markdown(index=False))
    if args.json:
        args.json.write_text(json.dumps({"extraction": encoders, "training": heads}, indent=1))
    print(f"\nin {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
