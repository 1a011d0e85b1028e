"""Frozen encoders by configuration: a registry maps each ``library`` to a loader.

A spec is the config's ``encoders.<name>`` entry plus its ``name``. Every loader returns an
:class:`Encoder` whose ``model(batch)`` is the pooled embedding, so feature extraction is one code
path for all libraries, and the ``python`` form plugs in any other library without touching the
package. Weights come from the library's cache, a local ``checkpoint`` file, or (``pretrained:
false``) a seeded random initialisation; ``weights_id`` records which. open_clip and
torchvision are imported where their models are built: they take seconds that other encoders'
jobs and the config checks would spend for nothing.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from alignfuse.errors import AlignfuseError

RANDOM_SEED = 0
CHECKPOINT_ERRORS = (RuntimeError, ValueError, KeyError, pickle.UnpicklingError)


@dataclass
class Encoder:
    """A frozen feature extractor for one modality.

    ``prepare`` maps one PIL image to a tensor [C, H, W] (batches are stacked) or a list of
    strings to a batch of token ids; ``model`` maps such a batch to pooled embeddings [B, dim].
    ``tokens``, where the encoder has token sequences, maps the same batch in one forward pass to
    (pooled [B, dim], tokens [B, L, token_dim], valid lengths [B]).
    """

    model: nn.Module
    prepare: Callable
    dim: int
    weights_id: str = ""
    preprocessing: str = ""
    tokens: Callable | None = None
    token_dim: int | None = None
    token_description: str = ""


class Library(NamedTuple):
    load: Callable[[dict, str], Encoder]
    modalities: tuple[str, ...]


def key(spec: dict, field: str | None = None) -> str:
    """The config key of a spec (``encoders.<name>[.field]``) for error messages."""
    name = f"encoders.{spec.get('name', spec.get('model', '?'))}"
    return f"{name}.{field}" if field else name


def seeded(build: Callable, *args, **kwargs):
    """Build a model under a fixed seed, so random weights are the same in every run and process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return build(*args, **kwargs)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def describe_weights(spec: dict) -> str:
    """What was loaded: ``checkpoint:<path>:sha256:<hex>``, ``<library>:<model>:<tag|random>``,
    or ``python:<module:function>`` for a plug-in left to load its own weights."""
    if spec.get("checkpoint"):
        return f"checkpoint:{spec['checkpoint']}:sha256:{sha256(Path(spec['checkpoint']))}"
    if "pretrained" not in spec and spec["library"] == "python":
        return f"python:{spec['model']}"
    return f"{spec['library']}:{spec['model']}:{spec.get('pretrained') or 'random'}"


def brief(err: Exception, limit: int = 300) -> str:
    """An underlying error on one line and cut short (state-dict errors list every key)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def download_error(spec: dict, err: Exception) -> AlignfuseError:
    offline = " (nodes without internet that share it: set HF_HUB_OFFLINE=1)"
    return AlignfuseError(
        f"{key(spec)}: cannot download the {spec['library']} weights "
        f"'{spec.get('pretrained')}' of {spec['model']} ({brief(err)}). Run `alignfuse "
        "fetch-weights` (the workflow's fetch_weights rule) on a node with internet to fill the "
        f"cache{offline if spec['library'] == 'open_clip' else ''}, or set "
        f"{key(spec, 'checkpoint')} to a local weights file"
    )


def checkpoint_error(spec: dict, err: Exception) -> AlignfuseError:
    return AlignfuseError(
        f"{spec['checkpoint']}: cannot load it as weights of {spec['library']} model "
        f"{spec['model']} ({brief(err)}); point {key(spec, 'checkpoint')} at a state dict "
        "of that model"
    )


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


# torchvision ------------------------------------------------------------------------------------

HEADS = ("fc", "heads", "classifier", "head")


def strip_head(model: nn.Module, spec: dict) -> int:
    """Replace the classification layer by Identity; return the width of the features it read."""
    for attr in HEADS:
        head = getattr(model, attr, None)
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return head.in_features
        if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):
            dim = head[-1].in_features
            head[-1] = nn.Identity()
            return dim
    raise AlignfuseError(
        f"{key(spec, 'model')}: cannot find the classification layer of torchvision model "
        f"'{spec['model']}'; wrap it with library: python instead"
    )


def grid_tokens(model: nn.Module, layer: nn.Module) -> Callable:
    """Token sequences of a CNN: the feature map of ``layer``, one token per position."""

    def tokens(batch: torch.Tensor):
        grids = []
        handle = layer.register_forward_hook(lambda module, inputs, output: grids.append(output))
        try:
            pooled = model(batch)
        finally:
            handle.remove()
        grid = grids[0]
        lengths = torch.full((batch.shape[0],), grid.shape[2] * grid.shape[3])
        return pooled, grid.flatten(2).transpose(1, 2), lengths

    return tokens


def load_torchvision(spec: dict, modality: str) -> Encoder:
    """ImageNet classifiers with the head removed (resnet18 -> 512-d average-pooled features).

    Preprocessing is the weights' own ``transforms()``; random weights and checkpoints without a
    tag use the model's default weights' transforms (the ImageNet resize 256 / crop 224 for
    ResNets). ResNets also give tokens: the layer4 grid, 7x7 = 49 tokens of 512 for resnet18.
    """
    import torchvision

    name, tag, checkpoint = spec["model"], spec.get("pretrained") or None, spec.get("checkpoint")
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise AlignfuseError(
            f"{key(spec, 'model')}: '{name}' is not a torchvision classification model; "
            "see torchvision.models.list_models()"
        )
    available = torchvision.models.get_model_weights(name)
    if tag and tag not in available.__members__:
        raise AlignfuseError(
            f"{key(spec, 'pretrained')}: '{tag}' is not a weights tag of {name}; "
            f"use one of {sorted(available.__members__)} or false"
        )
    weights = available[tag] if tag else available.DEFAULT
    if checkpoint:
        model = seeded(torchvision.models.get_model, name, weights=None)
        try:
            model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        except CHECKPOINT_ERRORS as err:
            raise checkpoint_error(spec, err) from err
    elif tag:
        try:
            model = torchvision.models.get_model(name, weights=weights)
        except OSError as err:
            raise download_error(spec, err) from err
    else:
        model = seeded(torchvision.models.get_model, name, weights=None)
    dim = strip_head(model, spec)
    prepare = weights.transforms()
    layer4 = getattr(model, "layer4", None)
    return Encoder(
        model=model,
        prepare=prepare,
        dim=dim,
        weights_id=describe_weights(spec),
        preprocessing=repr(prepare),
        tokens=grid_tokens(model, layer4) if layer4 is not None else None,
        token_dim=dim if layer4 is not None else None,
        token_description="layer4 feature map, one token per position (row-major)",
    )


# open_clip --------------------------------------------------------------------------------------


class ClipTower(nn.Module):
    """One tower of an open_clip model: ``forward`` is its raw ``encode_image``/``encode_text``.

    Embeddings are not L2-normalised (open_clip's ``normalize=False``): the norm is information a
    fusion head may use, and normalising later is one line while un-normalising is impossible.
    """

    def __init__(self, clip: nn.Module, modality: str):
        super().__init__()
        self.clip = clip
        self.modality = modality

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return getattr(self.clip, f"encode_{self.modality}")(batch)


def project(x: torch.Tensor, projection) -> torch.Tensor:
    return projection(x) if isinstance(projection, nn.Module) else x @ projection


def clip_tokens(clip: nn.Module, modality: str) -> Callable | None:
    """Token sequences in the joint embedding space, through the tower's own projection.

    Images: the patch tokens after ``ln_post`` (ViT-B/32 at 224: 49). Text: the caption's tokens
    from start to end-of-text after ``ln_final``, so the last one equals the pooled embedding.
    Only the standard CLIP architecture (ViT image tower, built-in text tower) has them.
    """
    import open_clip

    if not isinstance(clip, open_clip.CLIP):
        return None
    if modality == "image":
        if not isinstance(clip.visual, open_clip.transformer.VisionTransformer):
            return None

        def tokens(batch):
            out = clip.forward_intermediates(
                image=batch,
                image_indices=1,
                normalize=False,
                normalize_intermediates=True,
                image_output_fmt="NLC",
            )
            seq = project(out["image_intermediates"][-1], clip.visual.proj)
            return out["image_features"], seq, torch.full((batch.shape[0],), seq.shape[1])

        return tokens
    if clip.text_pool_type != "argmax":
        return None

    def tokens(batch):
        out = clip.forward_intermediates(
            text=batch, text_indices=1, normalize=False, normalize_intermediates=True
        )
        seq = project(out["text_intermediates"][-1], clip.text_projection)
        return out["text_features"], seq, batch.argmax(dim=-1) + 1

    return tokens


def load_open_clip(spec: dict, modality: str) -> Encoder:
    """A CLIP tower (ViT-B-32 -> 512-d); one checkpoint holds both towers.

    A tag's quick-GELU flag and preprocessing are applied whether its weights come from the cache
    or from ``checkpoint`` (OpenAI's ViT-B-32 needs quick GELU: a plain ``ViT-B-32`` with
    ``openai`` weights would otherwise run with the wrong activation).
    """
    import open_clip

    name, tag, checkpoint = spec["model"], spec.get("pretrained") or None, spec.get("checkpoint")
    if name not in open_clip.list_models():
        raise AlignfuseError(
            f"{key(spec, 'model')}: '{name}' is not an open_clip architecture; "
            "see open_clip.list_models()"
        )
    tag_cfg = open_clip.get_pretrained_cfg(name, tag) if tag else {}
    if tag and not tag_cfg:
        raise AlignfuseError(
            f"{key(spec, 'pretrained')}: '{tag}' is not a weights tag of {name}; use one of "
            f"{open_clip.list_pretrained_tags_by_model(name)}, false, or a checkpoint"
        )
    weights_file = checkpoint
    if tag and not checkpoint:
        try:
            weights_file = open_clip.download_pretrained(tag_cfg)
        except OSError as err:
            raise download_error(spec, err) from err
    try:
        clip, _, preprocess = seeded(
            open_clip.create_model_and_transforms,
            name,
            pretrained=weights_file,
            force_quick_gelu=tag_cfg.get("quick_gelu", False),
            image_mean=tag_cfg.get("mean"),
            image_std=tag_cfg.get("std"),
            image_interpolation=tag_cfg.get("interpolation"),
            image_resize_mode=tag_cfg.get("resize_mode"),
            pretrained_text=False,
        )
    except CHECKPOINT_ERRORS as err:
        if checkpoint:
            raise checkpoint_error(spec, err) from err
        raise
    if modality == "image":
        prepare = preprocess
    else:
        try:
            prepare = open_clip.get_tokenizer(name)
        except OSError as err:
            raise download_error(spec, err) from err
    dim = open_clip_width(name)
    tokens = clip_tokens(clip, modality)
    return Encoder(
        model=ClipTower(clip, modality),
        prepare=prepare,
        dim=dim,
        weights_id=describe_weights(spec),
        preprocessing=repr(prepare),
        tokens=tokens,
        token_dim=dim if tokens else None,
        token_description=(
            "patch tokens after ln_post, projected to the joint space"
            if modality == "image"
            else "start..end-of-text tokens after ln_final, projected to the joint space"
        ),
    )


# python -----------------------------------------------------------------------------------------


def load_python(spec: dict, modality: str) -> Encoder:
    """Any other encoder, as ``model: "module:function"`` on the Python path.

    ``function(modality, pretrained, checkpoint)`` returns a dict of :class:`Encoder` fields:
    ``model`` (nn.Module: prepared batch -> [B, dim]), ``prepare`` and ``dim`` are required;
    ``preprocessing``, ``weights_id``, ``tokens``, ``token_dim`` and ``token_description`` are
    optional (``weights_id`` defaults to the spec's tag, checkpoint hash or "random", or the
    function's name where the spec has neither). ``pretrained`` is the spec's value as given, None
    where it leaves it out: a plug-in may load its own weights and need no tag. It runs under
    a fixed seed; ``prepare`` must be picklable (a module-level function or transform) for
    DataLoader workers. A modality it does not encode raises ``AlignfuseError``.
    """
    module_name, _, function_name = spec["model"].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise AlignfuseError(
            f"{key(spec, 'model')}: cannot import module '{module_name}' ({err}); "
            "install it or put it on PYTHONPATH"
        ) from err
    build = getattr(module, function_name, None)
    if not callable(build):
        raise AlignfuseError(
            f"{key(spec, 'model')}: module '{module_name}' has no function '{function_name}'; "
            "write model as module:function"
        )
    try:
        fields = seeded(build, modality, spec.get("pretrained"), spec.get("checkpoint"))
    except CHECKPOINT_ERRORS as err:
        if spec.get("checkpoint"):
            raise checkpoint_error(spec, err) from err
        raise
    try:
        return Encoder(
            **{"weights_id": describe_weights(spec), "preprocessing": repr(fields.get("prepare"))}
            | fields
        )
    except (TypeError, AttributeError) as err:
        raise AlignfuseError(
            f"{key(spec, 'model')}: {spec['model']} must return a dict with keys model, prepare "
            f"and dim (optionally preprocessing, weights_id, tokens, token_dim) ({err})"
        ) from err


LIBRARIES = {
    "torchvision": Library(load_torchvision, ("image",)),
    "open_clip": Library(load_open_clip, ("image", "text")),
    "python": Library(load_python, ("image", "text")),
}


# The libraries whose models are named, not loaded from user code.
LIBRARY_MODELS = ("torchvision", "open_clip")


def library_of(spec: dict) -> Library:
    library = LIBRARIES.get(spec.get("library"))
    if library is None:
        raise AlignfuseError(
            f"{key(spec, 'library')}: '{spec.get('library')}' has no weights to load "
            f"(synthetic features are written by the data stage); use one of {sorted(LIBRARIES)}"
        )
    return library


def load_encoder(spec: dict, modality: str) -> Encoder:
    """The frozen (eval mode, no gradients) encoder of ``spec`` for ``modality``."""
    library = library_of(spec)
    if modality not in library.modalities:
        raise AlignfuseError(
            f"{key(spec)}: {spec['library']} encoders have no {modality} tower; pair the "
            f"backbone's {modality} side with an encoder that has one (e.g. open_clip)"
        )
    if not spec.get("model"):
        raise AlignfuseError(f"{key(spec, 'model')}: not set; name the model to load")
    checkpoint = spec.get("checkpoint")
    if "pretrained" not in spec and not checkpoint and spec["library"] != "python":
        raise AlignfuseError(
            f"{key(spec, 'pretrained')}: not set; give a weights tag (IMAGENET1K_V1, openai), "
            "a checkpoint, or false for random weights"
        )
    if checkpoint and not Path(checkpoint).is_file():
        raise AlignfuseError(
            f"{checkpoint}: weights file not found; fix {key(spec, 'checkpoint')} "
            "or set it to null to use the library's cache"
        )
    encoder = library.load(spec, modality)
    freeze(encoder.model)
    return encoder


def fetch_weights(spec: dict, modalities: tuple[str, ...] | None = None) -> str:
    """Load each tower once so its weights land in the library cache (a login-node prefetch).

    ``modalities`` defaults to every tower the library has. Returns the weights id. A library
    model's seeded random initialisation has nothing to fetch: it is built where it encodes.
    """
    if (
        spec["library"] in LIBRARY_MODELS
        and not spec.get("pretrained")
        and not spec.get("checkpoint")
    ):
        return describe_weights(spec)
    weights_id = ""
    for modality in modalities or library_of(spec).modalities:
        weights_id = load_encoder(spec, modality).weights_id
    return weights_id


def feature_width(spec: dict, modality: str) -> int | None:
    """The width of the pooled features ``spec`` gives for ``modality``, known without weights
    (torchvision: the classifier's input, from a model built on the meta device; open_clip: the
    architecture's embedding width), or None for plug-ins, whose width only their code knows."""
    if spec.get("library") == "torchvision":
        import torchvision

        with torch.device("meta"):
            model = torchvision.models.get_model(spec["model"], weights=None)
        return strip_head(model, spec)
    if spec.get("library") == "open_clip":
        return open_clip_width(spec["model"])
    return None


def open_clip_width(model: str) -> int:
    """The embedding width of an open_clip architecture, read from the config file open_clip
    ships for it (the config checks ask before any job, and importing open_clip takes seconds);
    other names (``hf-hub:``, ``local-dir:``) are asked of open_clip itself."""
    package = Path(importlib.util.find_spec("open_clip").origin).parent
    shipped = package / "model_configs" / f"{model}.json"
    if shipped.is_file():
        return json.loads(shipped.read_text())["embed_dim"]
    import open_clip

    return open_clip.get_model_config(model)["embed_dim"]
