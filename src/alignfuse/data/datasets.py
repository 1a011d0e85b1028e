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


def synthetic_split_images(n_images: int, fractions: dict[str, float]) -> dict[str, int]:
    """Images per split for the synthetic generator: train and dev rounded down, test takes the rest."""
    train = int(n_images * fractions["train"])
    dev = int(n_images * fractions["dev"])
    return {"train": train, "dev": dev, "test": n_images - train - dev}


def split_images(dataset: dict) -> dict[str, int]:
    if dataset["kind"] == "synthetic":
        synth = dataset["synthetic"]
        return synthetic_split_images(synth["n_images"], synth["split"])
    return dict(FLICKR8K_SPLIT_IMAGES)


def captions_per_image(dataset: dict) -> int:
    if dataset["kind"] == "synthetic":
        return dataset["synthetic"]["captions_per_image"]
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
