"""A study's training jobs as numbers, read from its config alone: seeds, pairs, batches, epochs
and the dev and test pairs each job evaluates, so their cost is known before any job runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from alignfuse import grid
from alignfuse.align.names import parse_alignment
from alignfuse.config import cached_width

# Flickr8k's official split files list 6000/1000/1000 images, each with 5 captions; the data
# stage's captions table, once written, gives the exact counts instead.
FLICKR8K_IMAGES = {"train": 6000, "dev": 1000, "test": 1000}
FLICKR8K_CAPTIONS_PER_IMAGE = 5
# Token shapes of a head over encoder tokens where no token file exists yet: ViT-B/32's 49
# patches (ResNet18's 7x7 grid alike) and about 16 CLIP tokens per Flickr8k caption.
ENCODER_TOKENS = {"image": 49, "text": 16}


@dataclass(frozen=True)
class SplitSize:
    """A split's pairs and the distinct images and captions they use (two pairs per caption)."""

    images: int
    captions: int

    @property
    def pairs(self) -> int:
        return 2 * self.captions


@dataclass(frozen=True)
class TrainJob:
    """One training job: a seed block of one condition, with what its loop will do."""

    grid: str  # the first of the study's grids that holds the condition
    condition: grid.Condition
    spec: dict  # the job's config slice (grid.train_slice): head, hparams, training, seeds
    d_image: int
    d_text: int
    tokens: dict[str, int] | None  # tokens per image and caption for encoder-token heads
    # a tuning job trains its grid's candidates one after another and never scores test pairs
    runs: int = 1
    scores_test: bool = True

    @property
    def seeds(self) -> int:
        return len(self.spec["seeds"])

    @property
    def batch_size(self) -> int:
        return min(self.spec["training"]["batch_size"], self.condition.n)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.condition.n / self.batch_size)

    @property
    def max_epochs(self) -> int:
        return self.spec["training"]["max_epochs"]

    def typical_epochs(self, best_epoch: int) -> int:
        """Epochs a seed runs when its dev accuracy peaks at ``best_epoch``: early stopping
        waits ``patience`` evaluations more (never before ``min_epochs``, never past
        ``max_epochs``)."""
        training = self.spec["training"]
        every = training["eval_every"]
        stop = max(training.get("min_epochs", 0), best_epoch + training["patience"] * every)
        return min(self.max_epochs, math.ceil(stop / every) * every)

    def evaluations(self, epochs: int) -> int:
        """Dev evaluations in ``epochs`` epochs (every ``eval_every`` and at the last)."""
        every = self.spec["training"]["eval_every"]
        return epochs // every + (epochs % every != 0)


def split_sizes(config: dict) -> dict[str, SplitSize]:
    """Images and captions of each split: the captions table if the data stage wrote it, else
    the dataset's own definition (the synthetic generator's sizes, Flickr8k's split files)."""
    import pandas as pd

    dataset = config["dataset"]
    captions_file = Path("results/data") / dataset["name"] / "captions.parquet"
    if dataset["kind"] == "synthetic":
        from alignfuse.data.synthetic import synthetic_captions

        captions = synthetic_captions(dataset["synthetic"])
    elif captions_file.is_file():
        captions = pd.read_parquet(captions_file, columns=["image_id", "split"])
    else:
        return {
            split: SplitSize(images, images * FLICKR8K_CAPTIONS_PER_IMAGE)
            for split, images in FLICKR8K_IMAGES.items()
        }
    return {
        split: SplitSize(int(rows["image_id"].nunique()), len(rows))
        for split, rows in captions.groupby("split")
    }


def encoder_width(config: dict, encoder: str, modality: str) -> int:
    """The width of an encoder's pooled features: the synthetic generator's, the cached file's,
    or the architecture's."""
    from alignfuse.errors import AlignfuseError
    from alignfuse.features.encoders import feature_width

    dataset = config["dataset"]
    if dataset["kind"] == "synthetic":
        return grid.synthetic_generator(config, encoder)[f"d_{modality}"]
    cached = Path("results/features") / dataset["name"] / encoder / f"{modality}.parquet"
    width = cached_width(cached) or feature_width(config["encoders"][encoder], modality)
    if width is None:
        raise AlignfuseError(
            f"encoders.{encoder}: the width of its {modality} features is only known once its "
            f"features exist; run the features stage first (`snakemake {cached}`)"
        )
    return width


def feature_widths(config: dict, backbone: str, alignment: str) -> tuple[int, int]:
    """(image, text) widths of a feature set: the encoders' for raw features, the projection's
    for contrastive ones (degradations keep their base's widths)."""
    if parse_alignment(alignment).base == "contrastive":
        dim = config["alignment"]["contrastive"]["dim"]
        return dim, dim
    pair = config["backbones"][backbone]
    return tuple(encoder_width(config, pair[m], m) for m in ("image", "text"))


def token_shapes(config: dict, method: str) -> dict[str, int] | None:
    """Tokens per image and caption that ``method`` attends over, if it reads encoder tokens."""
    if config["methods"][method].get("token_source") == "encoder":
        return dict(ENCODER_TOKENS)
    return None


def training_jobs(config: dict) -> list[TrainJob]:
    """Every training job of the study (a condition's seed blocks), each under the first grid
    that holds its condition (grids may share conditions; each trains once), grid by grid in
    the study's order."""
    grids = grid.study_grids(config)
    widths = {fs: feature_widths(config, *fs) for fs in grid.feature_sets(config)}
    jobs = []
    for condition in grid.conditions(config):
        owner = next(
            name
            for name, g in grids.items()
            if condition.backbone in g["backbones"]
            and condition.alignment in g["alignments"]
            and condition.method in g["methods"]
            and condition.n in g["scales"]
        )
        d_image, d_text = widths[condition.backbone, condition.alignment]
        for block in grid.seed_blocks(config, condition.method):
            spec = grid.train_slice(config, condition.method, block.name)
            jobs.append(
                TrainJob(
                    owner,
                    condition,
                    spec,
                    d_image,
                    d_text,
                    token_shapes(config, condition.method),
                )
            )
    order = list(grids)
    return sorted(jobs, key=lambda job: order.index(job.grid))


def tuning_jobs(config: dict) -> list[TrainJob]:
    """The tuning job of each tuned method (grid ``tuning``): its candidates' training runs at
    the tuning target's scale and seeds; a candidate changes rates and dropout, not the
    arithmetic of a step."""
    from alignfuse.train.tuning import candidates

    methods = grid.tuned_methods(config)
    if not methods:
        return []
    target = grid.tuning_target(config)
    d_image, d_text = feature_widths(config, target["backbone"], target["alignment"])
    jobs = []
    for method in methods:
        spec = grid.tune_slice(config, method)
        jobs.append(
            TrainJob(
                "tuning",
                grid.Condition(target["backbone"], target["alignment"], method, target["scale"]),
                spec,
                d_image,
                d_text,
                token_shapes(config, method),
                runs=len(candidates(spec["grid"])),
                scores_test=False,
            )
        )
    return jobs


def untimed_jobs(config: dict) -> dict[str, int]:
    """Jobs of the other heavy stages, counted from the config (not timed by ``cost``)."""
    recipes = [parse_alignment(a) for _, a in grid.feature_sets(config)]
    contrastive = {b for b, a in grid.feature_sets(config) if parse_alignment(a).base != "raw"}
    return {
        "pid": len(grid.pid_conditions(config)),
        "align: contrastive": len(contrastive),
        "align: degrade": sum(r.degraded for r in recipes),
    }
