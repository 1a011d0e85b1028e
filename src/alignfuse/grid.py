"""The condition grid of a study and the config slice each job uses.

A condition is (backbone, alignment, method, training pairs); its seeds are trained in blocks of
``training.seed_block``, one job per block. The slices returned here become rule ``params``, so a
job reruns only when its own slice changes: adding seeds trains only the blocks they fall in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from alignfuse.fusion import HEAD_FAMILIES, METHOD_SETTINGS, head_reference


@dataclass(frozen=True)
class Condition:
    backbone: str
    alignment: str
    method: str
    n: int


GRID_KEYS = ("backbones", "alignments", "methods", "scales")


def study_grids(config: dict) -> dict[str, dict[str, list]]:
    """The study's sub-grids with every key filled (from the study's own lists where a grid
    leaves one out); a study without ``grids`` is one grid of everything."""
    defaults = {key: list(config[key]) for key in GRID_KEYS}
    grids = config.get("grids") or {"study": {}}
    return {name: {**defaults, **grid} for name, grid in grids.items()}


def conditions(config: dict) -> list[Condition]:
    """Every condition of the study: the union of its grids' products, each once, in a fixed
    order."""
    found = {
        Condition(b, a, m, n)
        for grid in study_grids(config).values()
        for b, a, m, n in itertools.product(
            grid["backbones"], grid["alignments"], grid["methods"], grid["scales"]
        )
    }
    return sorted(found, key=lambda c: (c.backbone, c.alignment, c.method, c.n))


def feature_sets(config: dict) -> list[tuple[str, str]]:
    """The (backbone, alignment) feature sets that the study trains on."""
    return sorted({(c.backbone, c.alignment) for c in conditions(config)})


@dataclass(frozen=True)
class SeedBlock:
    """The study's seeds in [first, last]: what one training job of a condition trains."""

    first: int
    last: int
    seeds: tuple[int, ...]

    @property
    def name(self) -> str:
        """The block in paths: ``{first}-{last}``, e.g. ``0-4``."""
        return f"{self.first}-{self.last}"


def seed_blocks(config: dict, method: str) -> list[SeedBlock]:
    """The study's seeds in blocks of the method's ``training.seed_block`` B, by value: block k
    holds the seeds in [kB, (k+1)B), so a block's seeds stay its own when seeds are added
    elsewhere. Blocks without a seed are left out."""
    size = method_training(config, method)["seed_block"]
    blocks: dict[int, list[int]] = {}
    for seed in sorted(config["seeds"]):
        blocks.setdefault(seed // size, []).append(seed)
    return [SeedBlock(k * size, (k + 1) * size - 1, tuple(s)) for k, s in sorted(blocks.items())]


def run_path(
    study: str, dataset: str, condition: Condition, block: SeedBlock, suffix: str = ""
) -> str:
    """The run file of a condition's seed block, under the study's own root (``results/{study}/``)."""
    c = condition
    return (
        f"results/{study}/runs/{dataset}/{c.backbone}@{c.alignment}/{c.method}/n{c.n}/"
        f"seeds{block.name}{suffix}.parquet"
    )


def run_paths(config: dict, condition: Condition, suffix: str = "") -> list[str]:
    """The run files of every seed block of a condition (or, with a suffix such as
    ``.predictions``, their siblings)."""
    study, dataset = config["study"], config["dataset"]["name"]
    return [
        run_path(study, dataset, condition, block, suffix)
        for block in seed_blocks(config, condition.method)
    ]


def method_training(config: dict, method: str) -> dict:
    """The global training settings with the method's own overrides applied."""
    return {**config["training"], **config["methods"][method].get("training", {})}


# Training settings that decide which job trains a seed, not how it trains: a job's block is in
# its path, so they stay out of its params (a seed's results do not depend on its block).
JOB_LAYOUT = ("seed_block",)
# Settings that only shape a warmup_cosine schedule: a job on the constant rate does not use them.
SCHEDULE_SHAPE = ("warmup_steps", "warmup_fraction", "final_lr_fraction")


def job_training(training: dict, tuned: bool) -> dict:
    """The training settings a job's numbers depend on. On the constant rate of an untuned method
    the schedule's keys are left out, so adding the schedule setting changed no job of a study
    that does not use it; a tuned method keeps them, as its chosen schedule may need them."""
    kept = {k: v for k, v in training.items() if k not in JOB_LAYOUT}
    if not tuned and kept.get("schedule", "constant") == "constant":
        kept = {k: v for k, v in kept.items() if k not in ("schedule", *SCHEDULE_SHAPE)}
    return kept


def train_slice(config: dict, method: str, block: str) -> dict:
    """Everything a training job of method label ``method`` and seed block ``block`` (its name,
    e.g. "0-4") depends on besides its input files: the label, its head's registry name and
    hyper-parameters, training settings and the block's seeds."""
    blocks = {b.name: b for b in seed_blocks(config, method)}
    if block not in blocks:
        raise ValueError(f"method '{method}' has no seed block {block}: {', '.join(blocks)}")
    return {**method_slice(config, method), "seeds": list(blocks[block].seeds)}


def method_slice(config: dict, method: str) -> dict:
    """A method label's head, hyper-parameters, training settings and input handling: what any
    job that trains it depends on besides its seeds and files."""
    spec = config["methods"][method]
    return {
        "method": method,
        "head": head_reference(spec),
        "hparams": {k: v for k, v in spec.items() if k not in METHOD_SETTINGS},
        "training": job_training(method_training(config, method), method in tuned_methods(config)),
        "resample": config["pairs"]["resample"],
        "scaling": spec.get("scaling", config["features"]["scaling"]),
    }


# Training settings that decide where a job runs, not what it learns: no part of a recipe.
EXECUTION_SETTINGS = ("device",)


def recipe(config: dict, method: str) -> dict:
    """How a method label is trained, as comparisons set it beside another: ``shared`` (the
    study's ``training``), ``own`` (the label's own overrides of it) or ``tuned`` (chosen on dev:
    the grid, where and on what it was tuned, and the settings the grid leaves as set). Two
    labels share a recipe when these are equal."""
    tuned = method in tuned_methods(config)
    training = {
        k: v
        for k, v in job_training(method_training(config, method), tuned).items()
        if k not in EXECUTION_SETTINGS
    }
    if tuned:
        values = tuning_grid(config, method)
        return {
            "kind": "tuned",
            "grid": values,
            "on": tuning_target(config),
            "training": {k: v for k, v in training.items() if k not in values},
        }
    shared = {
        k: v
        for k, v in job_training(config["training"], False).items()
        if k not in EXECUTION_SETTINGS
    }
    if training == shared:
        return {"kind": "shared", "training": training}
    changed = {k: v for k, v in training.items() if shared.get(k) != v}
    return {"kind": "own", "training": training, "changed": changed}


def comparison_spec(config: dict) -> dict:
    """What declaring the study's comparisons reads (``analysis.comparisons.declare``): the
    analysis settings, the claims, the ``comparisons`` entries, and each method label's head,
    family and recipe."""
    return {
        "analysis": config["analysis"],
        "claims": config["claims"],
        "comparisons": config.get("comparisons", []),
        "labels": {
            label: {
                "head": head_reference(spec),
                "family": method_family(spec),
                "recipe": recipe(config, label),
            }
            for label, spec in config["methods"].items()
        },
    }


def method_family(spec: dict) -> str:
    """A method's head family: the registry's, or the one a plug-in's class declares (which
    the config check records under ``family``)."""
    return spec.get("family") or HEAD_FAMILIES[spec["head"]]


def tuning_grid(config: dict, method: str) -> dict | None:
    """The values to try of each training setting for ``method`` (its own grid under
    ``tuning.methods``, else the ``all`` grid), or None if the method is not tuned."""
    grids = config.get("tuning", {}).get("methods", {})
    return grids.get(method, grids.get("all"))


def tuned_methods(config: dict) -> list[str]:
    """The method labels whose training settings are chosen on dev before the study trains them."""
    return [m for m in config["methods"] if tuning_grid(config, m)]


def tuning_target(config: dict) -> dict:
    """Where tuning trains: ``tuning``'s backbone (default: the study's first), alignment
    (default raw), scale (default: the study's largest), seeds and the metric it selects on."""
    tuning = config.get("tuning", {})
    return {
        "backbone": tuning.get("backbone", next(iter(config["backbones"]))),
        "alignment": tuning.get("alignment", "raw"),
        "scale": tuning.get("scale", max(c.n for c in conditions(config))),
        "seeds": list(tuning.get("seeds", [0])),
        "metric": tuning.get("metric", "dev_accuracy"),
    }


def tune_slice(config: dict, method: str) -> dict:
    """Everything the tuning job of ``method`` depends on besides its input files: the method's
    slice, its grid, and where and on what it selects (:func:`tuning_target`)."""
    return {
        **method_slice(config, method),
        **tuning_target(config),
        "grid": tuning_grid(config, method),
    }


# Encoder settings that change how a job runs but not what it writes: they are passed to the job
# outside its params, so changing them reruns nothing.
EXECUTION_ONLY = ("batch_size", "tokens")


def encoder_slice(config: dict, encoder: str) -> dict:
    """What an encoder's features depend on: its name, library, model and weights."""
    spec = config["encoders"][encoder]
    return {"name": encoder, **{k: v for k, v in spec.items() if k not in EXECUTION_ONLY}}


def encoder_modalities(config: dict, encoder: str) -> list[str]:
    """The modalities an encoder serves in the study's backbones (the towers its jobs load)."""
    return sorted(
        {m for pair in config["backbones"].values() for m, e in pair.items() if e == encoder}
    )


def pid_conditions(config: dict) -> list[Condition]:
    """The trained conditions the PID stage decomposes (``pid.conditions``, each key defaulting
    to every backbone and method, raw features and the study's largest scale)."""
    trained = conditions(config)
    chosen = config["pid"]["conditions"]
    select = {
        "backbones": chosen.get("backbones", list(config["backbones"])),
        "alignments": chosen.get("alignments", ["raw"]),
        "methods": chosen.get("methods", list(config["methods"])),
        "scales": chosen.get("scales", [max(c.n for c in trained)]),
    }
    return [
        c
        for c in trained
        if c.backbone in select["backbones"]
        and c.alignment in select["alignments"]
        and c.method in select["methods"]
        and c.n in select["scales"]
    ]


def synthetic_generator(config: dict, encoder: str) -> dict:
    """The generator settings of one synthetic encoder: the dataset's, with its own ``dim``."""
    generator = dict(config["dataset"]["synthetic"])
    dim = config["encoders"][encoder].get("dim")
    if dim is not None:
        generator["d_image"] = generator["d_text"] = dim
    return generator
