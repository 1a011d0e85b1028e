"""Contrastive-alignment benchmark: time to fit the projections on Flickr8k-sized features.

Generates unaligned synthetic features of Flickr8k's shape (8,091 images, 5 captions each,
512-d, the 6000/1000/1091 image split, text rotation 1.0 so raw retrieval is at chance), fits
``alignfuse.align.contrastive.fit_projections`` on the train split with dev early stopping, and
prints the wall time, the epochs run and test retrieval R@1 before and after. The rule: the fit
runs in well under a minute on 2 CPU threads. Run from the repository root:

    python benchmarks/contrastive.py [--threads 2,1] [--dim 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from alignfuse.align.contrastive import fit_projections
from alignfuse.align.metrics import image_to_text_chance, retrieval_recalls, text_to_image_chance
from alignfuse.features.synthetic import synthetic_features

# Flickr8k: 6000/1000/1000 official images per split (+91 unlisted, here in test), 5 captions each.
FLICKR8K = {"n_images": 8091, "captions_per_image": 5, "train": 6000, "dev": 1000}


def generator(dim: int) -> dict:
    """The synthetic generator at Flickr8k's size (the study's default latent settings)."""
    n = FLICKR8K["n_images"]
    return {
        "n_images": n,
        "captions_per_image": FLICKR8K["captions_per_image"],
        "split": {"train": 0.75, "dev": 0.125, "test": 0.125},  # unused: splits are sliced below
        "latent_dim": 16,
        "private_dim": 16,
        "private_scale": 1.0,
        "caption_noise": 0.5,
        "noise": 0.1,
        "d_image": dim,
        "d_text": dim,
        "seed": 0,
    }


def splits(V: np.ndarray, T: np.ndarray, per_image: int) -> dict[str, tuple]:
    """Images fill train, dev and test in order; (V, T, caption_image) per split."""
    bounds = {
        "train": (0, FLICKR8K["train"]),
        "dev": (FLICKR8K["train"], FLICKR8K["train"] + FLICKR8K["dev"]),
        "test": (FLICKR8K["train"] + FLICKR8K["dev"], len(V)),
    }
    return {
        name: (
            V[a:b],
            T[a * per_image : b * per_image],
            np.repeat(np.arange(b - a), per_image),
        )
        for name, (a, b) in bounds.items()
    }


def report(label: str, recalls: dict[str, float]) -> None:
    print(
        f"  {label:<28} text->image R@1 {recalls['text_to_image_R@1']:.4f}   "
        f"image->text R@1 {recalls['image_to_text_R@1']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", default="2", help="comma-separated thread counts, one fit each (default 2)"
    )
    parser.add_argument("--dim", type=int, default=512, help="feature width of both modalities")
    parser.add_argument("--shared-dim", type=int, default=256, help="fit_projections dim")
    parser.add_argument("--rotation", type=float, default=1.0, help="text rotation of the data")
    args = parser.parse_args()

    per_image = FLICKR8K["captions_per_image"]
    started = time.perf_counter()
    _, V, _, T = synthetic_features(generator(args.dim), args.rotation)
    data = splits(V, T, per_image)
    print(
        f"generated {len(V)} images x {len(T)} captions, {args.dim}-d, rotation "
        f"{args.rotation} in {time.perf_counter() - started:.1f} s\n"
    )

    test_v, test_t, test_caption_image = data["test"]
    n_test = len(test_v)
    print(f"test split: {n_test} images, {len(test_t)} captions")
    print(
        f"  {'chance':<28} text->image R@1 {text_to_image_chance(n_test, 1):.4f}   "
        f"image->text R@1 "
        f"{image_to_text_chance(np.bincount(test_caption_image), 1):.4f}"
    )
    report("raw features (before)", retrieval_recalls(*data["test"], ks=(1,)))
    for threads in (int(t) for t in args.threads.split(",")):
        start = time.perf_counter()
        cpu = time.process_time()
        projection = fit_projections(
            *data["train"], *data["dev"], dim=args.shared_dim, seed=0, threads=threads
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        record = projection.record
        print(
            f"\nfit_projections on {threads} thread(s): {seconds:.1f} s wall ({cpu:.1f} s CPU), "
            f"{record['epochs']} epochs ({seconds / record['epochs']:.2f} s each, dev evaluation "
            f"included), best epoch {record['best_epoch']}, "
            f"temperature {record['final_temperature']:.4f}"
        )
        print(
            "  dev text->image R@1 per epoch: "
            + " ".join(f"{r:.3f}" for r in record["dev_text_to_image_R@1"])
        )
        report(
            "learned projection (after)",
            retrieval_recalls(
                projection.project_image(test_v),
                projection.project_text(test_t),
                test_caption_image,
                ks=(1,),
            ),
        )
    if args.rotation != 0:
        _, V0, _, T0 = synthetic_features(generator(args.dim), 0.0)
        aligned = splits(V0, T0, per_image)["test"]
        print()
        report("raw, rotation 0 (reference)", retrieval_recalls(*aligned, ks=(1,)))


if __name__ == "__main__":
    main()
