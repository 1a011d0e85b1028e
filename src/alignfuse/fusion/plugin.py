"""The contract a head of the study's own (``head: python``) meets, checked before any job runs.

A plug-in head is a subclass of :class:`alignfuse.fusion.head.FusionHead` built as
``Class(d_image, d_text, **its config keys)``: its forward maps (image [B, d_image], text
[B, d_text]) to logits [B, 2] as ``readout(fused(image, text))``, so diagnostics read the vector it
classifies; it declares its ``family`` (one of ``FAMILIES``), which places it in the comparisons,
figures and theory. Evaluation scores every pair as ``combine(encode_image(image),
encode_text(text))``, so it implements ``encode_image``, ``encode_text`` and ``join`` (identity
encodes where the head cannot split its work per image and caption); its dropout is
:class:`alignfuse.fusion.layers.Dropout`, whose masks a seed ensemble draws from each seed's own
stream. ``with_width(config, width)`` is optional, for ``param_match``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from alignfuse.errors import AlignfuseError
from alignfuse.fusion import FAMILIES, head_class
from alignfuse.fusion.head import FusionHead
from alignfuse.fusion.layers import Dropout
from alignfuse.plugins import load

PAIRS = 4  # pairs of random features a plug-in is run on


def check_plugin_class(label: str, model: str) -> str:
    """The family that the class ``model`` of method ``label`` declares, after checking that it
    is a FusionHead with a known family."""
    key = f"methods.{label}.model"
    cls = load(model, key)
    if not (isinstance(cls, type) and issubclass(cls, FusionHead)):
        raise AlignfuseError(
            f"config key '{key}': {model} is not a subclass of alignfuse.fusion.head.FusionHead; "
            "subclass it and implement fused() and readout() (docs/extending.md)"
        )
    family = getattr(cls, "family", None)
    if family not in FAMILIES:
        raise AlignfuseError(
            f"config key '{key}': {model} declares family {family!r}; set the class attribute "
            f"family to one of: {', '.join(FAMILIES)}"
        )
    return family


def check_plugin_head(label: str, reference: str, config: dict, d_image: int, d_text: int) -> int:
    """Build method ``label``'s plug-in head at the given widths with its constructor arguments
    and run it on random pairs: logits [pairs, 2] that equal ``readout(fused(...))``. Returns its
    parameter count."""
    key = f"methods.{label}"
    torch.manual_seed(0)
    try:
        head = head_class(reference)(d_image, d_text, **config)
    except Exception as err:
        raise AlignfuseError(
            f"config key '{key}': {reference}({d_image}, {d_text}, **{config}) failed ({err}); its "
            "constructor takes the feature widths and the method's other keys"
        ) from err
    unseeded = [
        name
        for name, module in head.named_modules()
        if isinstance(module, nn.modules.dropout._DropoutNd) and not isinstance(module, Dropout)
    ]
    if unseeded:
        raise AlignfuseError(
            f"config key '{key}': {reference} uses torch's dropout ({', '.join(unseeded)}); use "
            "alignfuse.fusion.layers.Dropout, whose masks come from each seed's own stream"
        )
    if any(re.search(r"\.(q|k)\.weight$", name) for name, _ in head.named_parameters()):
        raise AlignfuseError(
            f"config key '{key}': {reference} names parameters '.q.weight' or '.k.weight', which "
            "training reads as a built-in attention head's (attention entropy); rename them"
        )
    head.eval()
    image, text = torch.randn(PAIRS, d_image), torch.randn(PAIRS, d_text)
    try:
        with torch.no_grad():
            logits = head(image, text)
            again = head.readout(head.fused(image, text))
            scored = head.combine(head.encode_image(image), head.encode_text(text))
    except NotImplementedError as err:
        raise AlignfuseError(
            f"config key '{key}': {reference} does not implement {err or 'a part of FusionHead'}; "
            "evaluation scores pairs as combine(encode_image(image), encode_text(text)): implement "
            "encode_image, encode_text and join (identity encodes where the head cannot split)"
        ) from err
    except Exception as err:
        raise AlignfuseError(
            f"config key '{key}': {reference} fails on {PAIRS} pairs of {d_image}/{d_text}-d "
            f"features ({type(err).__name__}: {err}); forward(image, text) must give logits"
        ) from err
    if tuple(logits.shape) != (PAIRS, 2):
        raise AlignfuseError(
            f"config key '{key}': {reference} gives logits of shape {tuple(logits.shape)} for "
            f"{PAIRS} pairs; it must give [{PAIRS}, 2] (one logit per class)"
        )
    if not torch.allclose(again, logits, atol=1e-5):
        raise AlignfuseError(
            f"config key '{key}': {reference}'s forward is not readout(fused(image, text)); "
            "diagnostics read the fused view, so the logits must come from it"
        )
    if not torch.allclose(scored, logits, atol=1e-5):
        raise AlignfuseError(
            f"config key '{key}': {reference}'s combine(encode_image(image), encode_text(text)) "
            "differs from its forward; evaluation scores pairs through those parts"
        )
    return sum(p.numel() for p in head.parameters())
