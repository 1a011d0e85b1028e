"""How many images and captions each split of a dataset holds, known before any job runs.

The config is checked against these numbers (a training scale larger than the available pairs is
rejected at parse time), so they must agree with what the data stages write.
"""

from __future__ import annotations

from alignfuse.errors import AlignfuseError

SPLITS = ("train", "dev", "test")
KEY = "dataset.synthetic"

# The official Flickr8k split files (Flickr_8k.{train,dev,test}Images.txt) and captions per image.
FLICKR8K_SPLIT_IMAGES = {"train": 6000, "dev": 1000, "test": 1000}
FLICKR8K_CAPTIONS_PER_IMAGE = 5

# Karpathy's splits (caption_datasets.zip), with restval folded into train as the retrieval
# literature does (data/karpathy.py). Flickr30k: 29,000 train, 1,014 val, 1,000 test images of 5
# captions each (145,000 / 5,070 / 5,000 captions; dataset cards of copies of
# dataset_flickr30k.json on the Hugging Face hub, e.g. AnyModal/flickr30k, agree). COCO: 82,783
# train + 30,504 restval = 113,287, 5,000 val, 5,000 test images (the TensorFlow Datasets catalog,
# coco_captions, lists these four splits); a COCO image has 5 to 7 captions, so 5 is a lower
# bound and the parse-time scale check never promises pairs the data lacks.
KARPATHY_SPLIT_IMAGES = {
    "flickr30k": {"train": 29000, "dev": 1014, "test": 1000},
    "coco": {"train": 113287, "dev": 5000, "test": 5000},
}
KARPATHY_MIN_CAPTIONS_PER_IMAGE = 5


def split_counts(table) -> dict:
    """Captions and images per split of a captions table, and images by captions per image: the
    part of a captions report that every kind writes."""
    images = table[["image_id", "split"]].drop_duplicates()["split"].value_counts()
    return {
        "captions": {split: int((table["split"] == split).sum()) for split in SPLITS},
        "images": {split: int(images.get(split, 0)) for split in SPLITS},
        "captions_per_image": {
            str(n): int(count)
            for n, count in table["image_id"].value_counts().value_counts().sort_index().items()
        },
    }


def kept_lines(report: dict) -> list[str]:
    """The log lines of a captions report saying what each split kept, and captions per image."""
    return [
        "  kept: "
        + ", ".join(
            f"{split} {report['captions'][split]} captions of {report['images'][split]} images"
            for split in SPLITS
        ),
        f"  captions per image: {report['captions_per_image']} (images by count)",
    ]


def synthetic_split_images(n_images: int, fractions: dict[str, float]) -> dict[str, int]:
    """Images per split for the synthetic generator: train and dev rounded down, test takes the rest."""
    train = int(n_images * fractions["train"])
    dev = int(n_images * fractions["dev"])
    return {"train": train, "dev": dev, "test": n_images - train - dev}


def split_images(dataset: dict) -> dict[str, int]:
    if dataset["kind"] == "synthetic":
        synth = dataset["synthetic"]
        return synthetic_split_images(synth["n_images"], synth["split"])
    if dataset["kind"] in KARPATHY_SPLIT_IMAGES:
        return dict(KARPATHY_SPLIT_IMAGES[dataset["kind"]])
    return dict(FLICKR8K_SPLIT_IMAGES)


def captions_per_image(dataset: dict) -> int:
    """Captions per image (a lower bound where images differ, as in COCO)."""
    if dataset["kind"] == "synthetic":
        return dataset["synthetic"]["captions_per_image"]
    if dataset["kind"] in KARPATHY_SPLIT_IMAGES:
        return KARPATHY_MIN_CAPTIONS_PER_IMAGE
    return FLICKR8K_CAPTIONS_PER_IMAGE


def available_pairs(dataset: dict, split: str) -> int:
    """Balanced matching pairs of a split: every caption once as a positive, each with one negative."""
    return 2 * split_images(dataset)[split] * captions_per_image(dataset)


def check_synthetic(cfg: dict) -> None:
    """Raise AlignfuseError if the config cannot be generated or paired."""
    k, p = cfg["latent_dim"], cfg["private_dim"]
    dim = max(cfg["d_image"], cfg["d_text"])
    if k + 2 * p > dim:
        raise AlignfuseError(
            f"config keys '{KEY}.latent_dim' + 2 x '{KEY}.private_dim' ({k} + 2 x {p} = {k + 2 * p}) "
            f"exceed max('{KEY}.d_image', '{KEY}.d_text') = {dim}: the shared and the two private "
            "subspaces must fit side by side; lower latent_dim or private_dim, or raise d_image or d_text"
        )
    for split, n in synthetic_split_images(cfg["n_images"], cfg["split"]).items():
        if n < 2:
            raise AlignfuseError(
                f"config keys '{KEY}.n_images' and '{KEY}.split': the {split} split gets {n} image(s) "
                "but matching pairs need at least 2; raise n_images or the split's fraction"
            )
