"""Validation of a study's configuration before any job runs.

The JSON Schema (workflow/schemas/config.schema.yaml) checks keys, types and ranges and fills
defaults; the checks here are the ones a schema cannot express (cross references, sizes).
Every failure is one message naming the config key and the fix.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from alignfuse.align.names import parse_alignment
from alignfuse.analysis.comparisons import declare
from alignfuse.data.datasets import SPLITS, available_pairs, check_synthetic
from alignfuse.data.folder import split_captions as folder_split_captions
from alignfuse.errors import AlignfuseError
from alignfuse.fusion import FUSION_METHODS, METHOD_SETTINGS, PLUGIN
from alignfuse.grid import (
    comparison_spec,
    conditions,
    feature_sets,
    synthetic_generator,
    tuned_methods,
    tuning_target,
)

SCHEMA_NAME = "workflow/schemas/config.schema.yaml"


def key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def schema_error_message(error) -> str:
    """One line from a jsonschema ValidationError: the key, what is wrong, what the key means."""
    message = f"config key '{key_path(error.absolute_path)}': {error.message}"
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if description and error.absolute_path:
        message += f" ({' '.join(description.split())})"
    return message + f". Allowed keys and values are listed in {SCHEMA_NAME}."


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Check ``config`` in place (defaults filled) and return it; raise AlignfuseError if it is bad."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    name_heads(config)
    coerce_strings(config, schema_path)
    try:
        validate(config, str(schema_path))
    except WorkflowError as exc:
        cause = exc.__cause__ or exc.__context__
        if not isinstance(cause, jsonschema.ValidationError):
            raise
        raise AlignfuseError(schema_error_message(cause)) from None
    check_semantics(config)
    return config


def parsed_scalar(text: str, types: list[str]):
    """``text`` as the first of the schema's ``types`` it spells (integer, number, boolean), or
    None where it spells none of them."""
    word = text.strip()
    for kind in types:
        if kind == "integer" and re.fullmatch(r"[+-]?\d+", word):
            return int(word)
        if kind == "number" and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", word):
            return int(word) if re.fullmatch(r"[+-]?\d+", word) else float(word)
        if kind == "boolean" and word.lower() in ("true", "false"):
            return word.lower() == "true"
    return None


def coerce_strings(config: dict, schema_path: str | Path) -> None:
    """Turn strings into the numbers and booleans the schema asks for, in place.

    Snakemake hands ``--config seeds=[0,1,2]`` over as the strings '0', '1', '2' (its YAML
    loader keeps list items and mapping values as text), so every value the schema types as
    integer, number or boolean, but not string, is parsed where it spells one. The schema's own
    type errors find them, so nested and conditional keys are covered; a string that spells no
    such value is left for validation to report.
    """
    import jsonschema
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schema = yaml.load(Path(schema_path).read_text(), Loader=loader)
    validator = jsonschema.validators.validator_for(schema)(schema)
    changed = True
    while changed:  # a coerced value can select another conditional branch: look again
        changed = False
        errors = list(validator.iter_errors(config))
        while errors:
            error = errors.pop()
            errors.extend(error.context or ())
            if error.validator != "type" or not isinstance(error.instance, str):
                continue
            types = error.validator_value
            types = [types] if isinstance(types, str) else list(types)
            value = None if "string" in types else parsed_scalar(error.instance, types)
            if value is None or not error.absolute_path:
                continue
            *parents, last = error.absolute_path
            node = config
            for part in parents:
                node = node[part]
            if node[last] == error.instance:
                node[last] = value
                changed = True


def name_heads(config: dict) -> None:
    """Give every method label its ``head``: a label that is a registry name may leave it out."""
    methods = config.get("methods")
    if not isinstance(methods, dict):
        return
    for label, spec in methods.items():
        if not isinstance(spec, dict) or "head" in spec:
            continue
        if label not in FUSION_METHODS:
            raise AlignfuseError(
                f"config key 'methods.{label}.head' is required: '{label}' is not a head of the "
                f"registry, so name the head it trains (one of {', '.join(FUSION_METHODS)}), or "
                f"{PLUGIN} with model: module:Class for a head of your own"
            )
        spec["head"] = label


def check_semantics(config: dict) -> None:
    dataset = config["dataset"]
    kind = dataset["kind"]
    encoders = config["encoders"]

    for name, encoder in encoders.items():
        library = encoder["library"]
        if (library == "synthetic") != (kind == "synthetic"):
            raise AlignfuseError(
                f"config key 'encoders.{name}.library': '{library}' cannot encode a {kind} dataset; "
                + (
                    "use library: synthetic"
                    if kind == "synthetic"
                    else "use torchvision, open_clip or python"
                )
            )
        if library != "synthetic" and not encoder.get("model"):
            raise AlignfuseError(
                f"config key 'encoders.{name}.model' is required for library '{library}'"
            )
        if (
            library in ("torchvision", "open_clip")
            and "pretrained" not in encoder
            and not encoder.get("checkpoint")
        ):
            raise AlignfuseError(
                f"config key 'encoders.{name}.pretrained' is required: a weights tag such as "
                "IMAGENET1K_V1 or openai, false for random weights, or a local 'checkpoint'"
            )
        if library == "python" and ":" not in encoder["model"]:
            raise AlignfuseError(
                f"config key 'encoders.{name}.model': '{encoder['model']}' must be 'module:function'"
            )
        for synthetic_only in ("rotation", "dim"):
            if synthetic_only in encoder and library != "synthetic":
                raise AlignfuseError(
                    f"config key 'encoders.{name}.{synthetic_only}' applies to synthetic "
                    "encoders only"
                )

    for name, backbone in config["backbones"].items():
        for modality in ("image", "text"):
            if backbone[modality] not in encoders:
                raise AlignfuseError(
                    f"config key 'backbones.{name}.{modality}': encoder '{backbone[modality]}' is not "
                    f"defined under 'encoders' (defined: {', '.join(sorted(encoders))})"
                )

    if kind == "synthetic":
        split = dataset["synthetic"]["split"]
        if abs(sum(split[s] for s in SPLITS) - 1) > 1e-9:
            raise AlignfuseError(
                "config key 'dataset.synthetic.split': train + dev + test must sum to 1"
            )
        check_synthetic(dataset["synthetic"])
        for name in encoders:
            try:
                check_synthetic(synthetic_generator(config, name))
            except AlignfuseError as exc:
                raise AlignfuseError(f"config key 'encoders.{name}.dim': {exc}") from None
    elif kind == "folder":
        check_folder(dataset["folder"])
    elif kind in ("flickr30k", "coco"):
        check_karpathy(kind, dataset[kind])
    else:
        check_local_archives("flickr8k", dataset["flickr8k"]["archives"])

    check_grids(config)
    train_pairs = (
        2 * folder_split_captions(dataset["folder"])["train"]
        if kind == "folder"
        else available_pairs(dataset, "train")
    )
    for key, scales in scale_lists(config):
        too_large = [n for n in scales if n > train_pairs]
        if too_large:
            raise AlignfuseError(
                f"config key '{key}': {too_large} exceed the {train_pairs} training pairs that "
                f"dataset '{dataset['name']}' provides; use scales of at most {train_pairs}"
                + (
                    " (or add images, or raise dataset.folder.split.train: a caption gives two "
                    "pairs, one positive and one negative)"
                    if dataset["kind"] == "folder"
                    else ""
                )
            )
    check_methods(config["methods"])
    check_training(config)
    check_tuning(config)
    check_token_sources(config)
    check_heads(config)  # records plug-ins' families, which the comparisons read
    check_claims(config)


def check_local_archives(kind: str, archives: dict) -> None:
    """Archives the user already has (instead of downloading them) exist."""
    for which, path in archives.items():
        if path is not None and not Path(path).is_file():
            raise AlignfuseError(
                f"config key 'dataset.{kind}.archives.{which}': {path} is not a file; "
                "give the path of the archive you downloaded, or null to download it"
            )


def check_karpathy(kind: str, cfg: dict) -> None:
    """Karpathy's caption_datasets.zip has a checksum from the user (its author publishes
    none), and Flickr30k's images, which come only through the maintainers' form, a path."""
    captions = cfg["captions"]
    if not (captions.get("md5") or captions.get("sha256")):
        raise AlignfuseError(
            f"config key 'dataset.{kind}.captions.sha256' is required: Karpathy publishes no "
            "checksum for caption_datasets.zip, so set that of the copy you trust (download it "
            "once and run 'sha256sum caption_datasets.zip'; docs/data.md#flickr30k-and-coco)"
        )
    check_local_archives(kind, cfg["archives"])
    if kind != "flickr30k":
        return
    images = cfg["images"]
    if not images:
        raise AlignfuseError(
            "config key 'dataset.flickr30k.images' is required for kind flickr30k: the "
            "maintainers hand out flickr30k-images.tar.gz only through the request form at "
            "https://shannon.cs.illinois.edu/DenotationGraph/; set the path of your copy"
        )
    if not Path(images).exists():
        raise AlignfuseError(
            f"config key 'dataset.flickr30k.images': {images} does not exist; give the path of "
            "flickr30k-images.tar.gz (or a zip of the images, or the folder they unpack to)"
        )


def check_folder(folder: dict) -> None:
    """A folder dataset names its images (a directory or a zip) and captions; its split fractions
    sum to 1 (the captions file itself is checked with the split sizes)."""
    for which in ("images", "captions"):
        if not folder[which]:
            raise AlignfuseError(
                f"config key 'dataset.folder.{which}' is required for kind folder: the "
                + (
                    "directory (or zip) of your images"
                    if which == "images"
                    else "CSV or JSON Lines file of image,caption rows"
                )
            )
    images = Path(folder["images"])
    if not images.is_dir() and not (images.is_file() and zipfile.is_zipfile(images)):
        raise AlignfuseError(
            f"config key 'dataset.folder.images': {images} is neither a directory nor a zip "
            "archive; give the folder of your images (or a zip of it)"
        )
    if abs(sum(folder["split"][s] for s in SPLITS) - 1) > 1e-9:
        raise AlignfuseError("config key 'dataset.folder.split': train + dev + test must sum to 1")


def check_methods(methods: dict) -> None:
    """Method hyper-parameters the schema cannot check (defaults are filled by then)."""
    for name, spec in methods.items():
        if spec["head"].startswith("xattn_") and spec["dim"] % spec["heads"]:
            raise AlignfuseError(
                f"config key 'methods.{name}.dim': {spec['dim']} is not divisible by "
                f"heads={spec['heads']}; choose a dim that is a multiple of heads"
            )
        if spec["head"] == "weighted_sum" and not sum(spec["weights"]) > 0:
            raise AlignfuseError(
                f"config key 'methods.{name}.weights': {spec['weights']} are both zero; "
                "give at least one modality a positive weight"
            )


def check_claims(config: dict) -> None:
    """The analysis reference, the claims and the ``comparisons`` entries declare comparisons of
    what the study trains, each two sides trained alike unless it says ``mixed_recipe: true``:
    the same function the aggregate job runs (``comparisons.declare``)."""
    trained = [(c.backbone, c.alignment, c.method, c.n) for c in conditions(config)]
    declare(comparison_spec(config), trained)


def check_token_sources(config: dict) -> None:
    """A head with ``token_source: encoder`` needs token files for every backbone it trains on,
    and raw feature sets (token sequences are not aligned or degraded)."""
    for name, spec in config["methods"].items():
        if spec.get("token_source") != "encoder":
            continue
        key = f"config key 'methods.{name}.token_source'"
        if config["dataset"]["kind"] == "synthetic":
            raise AlignfuseError(
                f"{key}: synthetic features are pooled vectors with no token sequences; "
                "use token_source: pseudo"
            )
        for backbone, encoders in config["backbones"].items():
            for modality in ("image", "text"):
                encoder = encoders[modality]
                if not config["encoders"][encoder]["tokens"]:
                    raise AlignfuseError(
                        f"{key}: encoder tokens need token files, but encoder '{encoder}' "
                        f"(backbones.{backbone}.{modality}) does not cache them; set "
                        f"encoders.{encoder}.tokens: true, or use token_source: pseudo"
                    )
    for condition in conditions(config):
        method = config["methods"][condition.method]
        if method.get("token_source") == "encoder" and condition.alignment != "raw":
            raise AlignfuseError(
                f"config key 'methods.{condition.method}.token_source': encoder tokens exist for "
                f"raw features only, but a grid trains it on {condition.backbone}@"
                f"{condition.alignment}; leave that method out of the grid or use "
                "token_source: pseudo"
            )


def scale_lists(config: dict) -> list[tuple[str, list[int]]]:
    """Every list of scales in the config, with its key."""
    lists = [("scales", config["scales"])]
    if "scale" in config["tuning"]:
        lists.append(("tuning.scale", [config["tuning"]["scale"]]))
    for name, grid in config["grids"].items():
        if "scales" in grid:
            lists.append((f"grids.{name}.scales", grid["scales"]))
    return lists


def check_grids(config: dict) -> None:
    """Alignment names spell a recipe, and grids name backbones and methods the study defines."""
    for i, name in enumerate(config["alignments"]):
        parse_alignment(name, f"alignments.{i}")
    for grid_name, grid in config["grids"].items():
        for i, name in enumerate(grid.get("alignments", [])):
            parse_alignment(name, f"grids.{grid_name}.alignments.{i}")
        for key in ("backbones", "methods"):
            unknown = [x for x in grid.get(key, []) if x not in config[key]]
            if unknown:
                raise AlignfuseError(
                    f"config key 'grids.{grid_name}.{key}': {unknown} not defined under '{key}' "
                    f"(defined: {', '.join(config[key])})"
                )


def check_training(config: dict) -> None:
    """Settings that contradict each other once a method's overrides apply."""
    for label, spec in config["methods"].items():
        training = {**config["training"], **spec.get("training", {})}
        if training["min_epochs"] > training["max_epochs"]:
            overridden = {"min_epochs", "max_epochs"} & set(spec.get("training", {}))
            where = f"methods.{label}.training" if overridden else "training"
            raise AlignfuseError(
                f"config key '{where}.min_epochs': {training['min_epochs']} is more than "
                f"max_epochs = {training['max_epochs']}, so no seed could stop early and none "
                "could reach it; lower min_epochs or raise max_epochs"
            )


def check_tuning(config: dict) -> None:
    """Tuning grids name methods the study defines, and tuning trains on raw features or on a
    feature set the study trains on (the stages that make the others run for those only)."""
    tuning = config["tuning"]
    for label in tuning["methods"]:
        if label != "all" and label not in config["methods"]:
            raise AlignfuseError(
                f"config key 'tuning.methods.{label}': '{label}' is not one of the methods "
                f"(defined: {', '.join(config['methods'])}); name a method label, or 'all'"
            )
    if not tuning["methods"]:
        return
    target = tuning_target(config)
    backbone, alignment = target["backbone"], target["alignment"]
    if backbone not in config["backbones"]:
        raise AlignfuseError(
            f"config key 'tuning.backbone': '{backbone}' is not defined under 'backbones' "
            f"(defined: {', '.join(config['backbones'])})"
        )
    parse_alignment(alignment, "tuning.alignment")
    trained = feature_sets(config)
    if alignment != "raw" and (backbone, alignment) not in trained:
        raise AlignfuseError(
            f"config key 'tuning.alignment': the study trains on no {backbone}@{alignment} "
            f"features (it trains on {', '.join(f'{b}@{a}' for b, a in trained)}); tune on "
            "raw features or one of those"
        )
    for label in tuned_methods(config):
        if config["methods"][label].get("token_source") == "encoder" and alignment != "raw":
            raise AlignfuseError(
                f"config key 'tuning.alignment': method '{label}' reads encoder tokens, which "
                "exist for raw features only; tune on alignment raw"
            )


# Where the outcome of a head check is kept, so the DAG is not slowed on every build.
SIZE_CHECKS = Path(".snakemake/alignfuse")


def size_request(config: dict) -> dict | None:
    """What the head check needs: the methods with a param_match target and every plug-in head
    (``head: python``), and each backbone's widths (known from the config or an existing feature
    file, else the encoder's spec to ask)."""
    targets = {
        label: {k: v for k, v in spec.items() if k not in ("training", "family")}
        for label, spec in config["methods"].items()
        if "param_match" in spec or spec["head"] == PLUGIN
    }
    if not targets:
        return None
    dataset = config["dataset"]
    backbones = {}
    for name, pair in config["backbones"].items():
        backbones[name] = {}
        for modality in ("image", "text"):
            encoder = pair[modality]
            if dataset["kind"] == "synthetic":
                width = synthetic_generator(config, encoder)[f"d_{modality}"]
            else:
                width = cached_width(
                    Path("results/features") / dataset["name"] / encoder / f"{modality}.parquet"
                )
            backbones[name][modality] = width or {"name": encoder, **config["encoders"][encoder]}
    return {"methods": targets, "backbones": backbones}


def cached_width(path: Path) -> int | None:
    """The width of an existing feature file (None if there is none or it cannot be read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path).field("emb").type.list_size
    except (OSError, KeyError, pa.ArrowException):
        return None


def check_heads(config: dict) -> None:
    """Reject a param_match target that no width of its head can reach at a backbone's widths,
    and a plug-in head that cannot be imported, declares no family, or does not build, classify
    and train as a seed ensemble at the study's widths; record each plug-in's family under
    ``methods.<label>.family``.

    Building heads imports torch, which the DAG must not, so the check runs as ``alignfuse
    check-sizes`` in a subprocess, once per distinct request and plug-in source (cached under
    .snakemake/alignfuse); where it runs, it prints each plug-in's parameter count. Plug-in
    encoders' widths are only known to their jobs, which check then.
    """
    request = size_request(config)
    if request is None:
        return
    from alignfuse.codehash import code_hash, plugin_hash

    text = json.dumps(request, sort_keys=True)
    plugins = sorted(
        spec["model"] for spec in request["methods"].values() if spec["head"] == PLUGIN
    )
    sources = ":".join(plugin_hash(model.partition(":")[0]) for model in plugins)
    key = f"{text}{code_hash('config', 'fusion.build', 'features.encoders')}{sources}"
    cached = SIZE_CHECKS / f"sizes-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if cached.is_file():
        outcome = json.loads(cached.read_text())
    else:
        done = subprocess.run(
            [sys.executable, "-m", "alignfuse.cli", "check-sizes", "--request", text],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise AlignfuseError(done.stderr.strip().splitlines()[-1] if done.stderr else text)
        outcome = json.loads(done.stdout)
        for label, counts in outcome["parameters"].items():
            shown = ", ".join(f"{count:,} on {backbone}" for backbone, count in counts.items())
            print(
                f"plug-in head methods.{label}: {shown or 'widths not known yet'}", file=sys.stderr
            )
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".part")
        tmp.write_text(json.dumps(outcome))
        tmp.replace(cached)
    if outcome["error"]:
        raise AlignfuseError(outcome["error"])
    for label, family in outcome["families"].items():
        spec = config["methods"][label]
        if spec.setdefault("family", family) != family:
            raise AlignfuseError(
                f"config key 'methods.{label}.family': '{spec['family']}', but its class "
                f"{spec['model']} declares '{family}'; leave the key out (the class declares it)"
            )


def encoder_width(spec: dict, modality: str) -> int | None:
    """The pooled width of an encoder's features (imported only for encoders: it brings in
    torchvision, which synthetic widths do not need)."""
    from alignfuse.features.encoders import feature_width

    return feature_width(spec, modality)


def check_sizes(request: dict) -> dict:
    """Check every head of ``request`` (see :func:`size_request`): each plug-in's class and
    family, then at each backbone's widths each param_match target resolved and each plug-in
    built, run and counted; the first failure is the error. Imports torch: run it through
    ``alignfuse check-sizes``."""
    from alignfuse.fusion import head_reference, is_plugin
    from alignfuse.fusion.build import resolve_config
    from alignfuse.fusion.plugin import check_plugin_class, check_plugin_head

    checked, unknown, families = [], [], {}
    parameters = {label: {} for label, spec in request["methods"].items() if spec["head"] == PLUGIN}
    try:
        for label in parameters:
            families[label] = check_plugin_class(label, request["methods"][label]["model"])
    except AlignfuseError as exc:
        return {"error": str(exc), "checked": checked, "families": {}, "parameters": {}}
    for backbone, widths in request["backbones"].items():
        dims = {m: w if isinstance(w, int) else encoder_width(w, m) for m, w in widths.items()}
        if None in dims.values():
            unknown.append(backbone)
            continue
        for label, spec in request["methods"].items():
            reference = head_reference(spec)
            hparams = {k: v for k, v in spec.items() if k not in METHOD_SETTINGS}
            try:
                config = resolve_config(reference, dims["image"], dims["text"], hparams, label)
                if is_plugin(reference):
                    parameters[label][backbone] = check_plugin_head(
                        label, reference, config, dims["image"], dims["text"]
                    )
                    check_trains_as_ensemble(label, reference, config, dims["image"], dims["text"])
            except AlignfuseError as exc:
                return {
                    "error": f"{exc} (backbone '{backbone}')",
                    "checked": checked,
                    "families": families,
                    "parameters": parameters,
                }
            checked.append([label, backbone])
    return {
        "error": None,
        "checked": checked,
        "unknown": unknown,
        "families": families,
        "parameters": parameters,
    }


def check_trains_as_ensemble(
    label: str, reference: str, config: dict, d_image: int, d_text: int
) -> None:
    """One training step of a plug-in head as training jobs take it: two seeds' copies with
    stacked parameters under torch.func.vmap, in training mode, and a backward pass."""
    import torch

    from alignfuse.train.ensemble import SeedEnsemble

    try:
        model = SeedEnsemble(reference, config, d_image, d_text, [0, 1], label=label)
        model.train()
        logits = model(torch.randn(2, 4, d_image), torch.randn(2, 4, d_text))
        logits.sum().backward()
    except Exception as err:
        raise AlignfuseError(
            f"config key 'methods.{label}': {reference} does not train as a seed ensemble "
            f"(stacked parameters under torch.func.vmap: {type(err).__name__}: {err}); avoid "
            "in-place changes of parameters or buffers and control flow on tensor values"
        ) from err
